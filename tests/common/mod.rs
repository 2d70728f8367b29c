//! Tiny models of every kind for the runtime's tests: random int8 weights and valid
//! quantization parameters from the blob format's own generator (`blob::synthetic`), so
//! bad-blob tests run over every byte quickly.
#![allow(dead_code)]

use picoformer::blob::{self, ActKind, Config, HeadKind, InputKind, ModelKind, NormKind, Pooling, PosKind, TokenizerKind};

pub use picoformer::align::AlignedBuf;

/// A small deterministic generator (xorshift).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

/// A tiny encoder-decoder: d 8, 2 heads, 1 + 2 layers, FFN 16, vocabulary 16, max_len 8.
pub fn tiny_config(flags: u32) -> Config {
    Config {
        kind: ModelKind::EncoderDecoder,
        tokenizer: TokenizerKind::Unigram,
        positions: PosKind::Sinusoidal,
        d_model: 8,
        nhead: 2,
        n_kv_heads: 2,
        n_enc: 1,
        n_dec: 2,
        d_ff: 16,
        vocab: 16,
        max_len: 8,
        pad: 0,
        unk: 1,
        bos: 2,
        eos: 3,
        flags: flags | blob::FLAG_ADD_DUMMY_PREFIX | blob::FLAG_REMOVE_EXTRA_WS | blob::FLAG_FINAL_NORM,
        ..Config::default()
    }
}

/// [`tiny_config`] with the GELU table.
pub fn with_act(mut c: Config, act: ActKind) -> Config {
    c.act = act;
    c
}

/// A tiny decoder-only language model with Llama blocks: RMSNorm, RoPE, SwiGLU, 4 query heads
/// over 2 key/value heads.
pub fn tiny_lm() -> Config {
    Config {
        kind: ModelKind::DecoderOnly,
        norm: NormKind::RmsNorm,
        act: ActKind::SwiGlu,
        positions: PosKind::Rope,
        nhead: 4,
        n_kv_heads: 2,
        n_enc: 0,
        n_dec: 2,
        max_len: 12,
        flags: blob::FLAG_NORM_FIRST | blob::FLAG_FINAL_NORM | blob::FLAG_ADD_DUMMY_PREFIX,
        ..tiny_config(0)
    }
}

/// A tiny encoder-only classifier over frames of 3 features, mean-pooled, 5 classes.
pub fn tiny_classifier() -> Config {
    Config {
        kind: ModelKind::EncoderOnly,
        input: InputKind::Features,
        tokenizer: TokenizerKind::None,
        positions: PosKind::Learned,
        pooling: Pooling::Mean,
        head: HeadKind::Classification,
        act: ActKind::Gelu,
        n_enc: 2,
        n_dec: 0,
        vocab: 0,
        n_features: 3,
        n_outputs: 5,
        pad: 0,
        unk: 0,
        bos: 0,
        eos: 0,
        flags: blob::FLAG_NORM_FIRST | blob::FLAG_FINAL_NORM,
        ..tiny_config(0)
    }
}

/// A valid blob for `c` with random weights from `seed`: odd seeds row-major, even Block4.
pub fn tiny_blob(c: &Config, seed: u64) -> AlignedBuf {
    AlignedBuf::from_bytes(&blob::synthetic::random_blob(c, seed, seed % 2 == 0).unwrap())
}
