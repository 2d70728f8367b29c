//! Random valid blobs of any config (feature `alloc`): the runtime's tests, the fuzzers and the
//! benchmarks build models of every kind and shape with it, without a converter. The weights
//! are random; every record is in its valid range; the tokenizer is a made-up unigram
//! vocabulary of `vocab` pieces (`<pad> <unk> <s> </s>`, then `▁a`, `▁b`, …). The tiny
//! configs of each kind ([`tiny_config`], [`tiny_lm`], [`tiny_classifier`]) are the tests'.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::{expected_tensors, write, blob_len, ActKind, Config, DType, HeadKind, InputKind, ModelKind, NormKind, NormParams, Pooling, PosKind, RopeParams, FeatureQuant, Part, Tag, TensorData, TensorSpec, TokPart, TokenizerKind, TokenizerSizes};
use super::{FLAG_ADD_DUMMY_PREFIX, FLAG_FINAL_NORM, FLAG_NORM_FIRST, FLAG_REMOVE_EXTRA_WS};
use crate::kernels::activation::TABLE_LEN;
use crate::kernels::attention::AttentionParams;
use crate::kernels::layout::Layout;
use crate::kernels::residual::ResidualParams;
use crate::quant::Requant;
use crate::tokenizer::SCORE_SCALE_BITS;
use crate::Error;

/// xorshift64, for reproducible weights.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
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
        flags: flags | FLAG_ADD_DUMMY_PREFIX | FLAG_REMOVE_EXTRA_WS | FLAG_FINAL_NORM,
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
        flags: FLAG_NORM_FIRST | FLAG_FINAL_NORM | FLAG_ADD_DUMMY_PREFIX,
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
        flags: FLAG_NORM_FIRST | FLAG_FINAL_NORM,
        ..tiny_config(0)
    }
}

/// Piece `i` of the made-up vocabulary.
pub fn piece(i: usize) -> String {
    match i {
        0 => "<pad>".into(),
        1 => "<unk>".into(),
        2 => "<s>".into(),
        3 => "</s>".into(),
        _ => {
            let mut s = String::from("\u{2581}");
            let mut n = i - 4;
            loop {
                s.push((b'a' + (n % 26) as u8) as char);
                n /= 26;
                if n == 0 {
                    break;
                }
            }
            s
        }
    }
}

/// The tokenizer tables of the made-up vocabulary: offsets, bytes, scores, sorted normal ids.
pub fn vocab_tables(vocab: usize) -> (Vec<u32>, Vec<u8>, Vec<i32>, Vec<u16>) {
    let mut offsets = vec![0u32];
    let mut bytes = Vec::new();
    for i in 0..vocab {
        bytes.extend_from_slice(piece(i).as_bytes());
        offsets.push(bytes.len() as u32);
    }
    let scores: Vec<i32> = (0..vocab).map(|i| if i < 4 { 0 } else { -(((i % 100) as i32 + 1) << SCORE_SCALE_BITS) / 8 }).collect();
    let mut sorted: Vec<u16> = (4..vocab as u16).collect();
    sorted.sort_by_key(|&i| piece(i as usize));
    (offsets, bytes, scores, sorted)
}

fn le<T: bytemuck::Pod>(v: &[T]) -> Vec<u8> {
    bytemuck::cast_slice(v).to_vec()
}

fn rq(m: f64) -> Requant {
    Requant::from_real(m)
}

/// A valid blob for `c` (tokens: a unigram tokenizer) with random weights from `seed`; int8
/// matrices whose shape allows it are stored Block4 when `block4`.
pub fn random_blob(c: &Config, seed: u64, block4: bool) -> Result<Vec<u8>, Error> {
    if c.tokens() && c.tokenizer != TokenizerKind::Unigram {
        return Err(Error::BadConfig { field: "tokenizer" });
    }
    let mut rng = Rng(seed | 1);
    let (offsets, bytes, scores, sorted) = vocab_tables(if c.tokens() { c.vocab } else { 0 });
    let sizes = TokenizerSizes { bytes: bytes.len(), normal: sorted.len(), ..TokenizerSizes::default() };
    let mut specs: Vec<TensorSpec> = Vec::new();
    expected_tensors(c, sizes, |s| {
        specs.push(s);
        Ok(())
    })?;
    let mut data = Vec::new();
    for s in &specs {
        let n = s.dims[0] * s.dims[1];
        let bytes = match (s.tag, s.dtype) {
            (Tag::Tokenizer(TokPart::Offsets), _) => le(&offsets),
            (Tag::Tokenizer(TokPart::Bytes), _) => bytes.clone(),
            (Tag::Tokenizer(TokPart::Scores), _) => le(&scores),
            (Tag::Tokenizer(TokPart::Sorted), _) => le(&sorted),
            (Tag::Tokenizer(TokPart::ByteIds), _) => return Err(Error::BadConfig { field: "byte_fallback" }),
            (Tag::Norm { part: super::NormPart::Gain, .. } | Tag::FinalNorm(_, super::NormPart::Gain), _) => le(&(0..n).map(|_| rng.range(1 << 20, 3 << 20) as i32).collect::<Vec<_>>()),
            (Tag::Norm { part: super::NormPart::Bias, .. } | Tag::FinalNorm(_, super::NormPart::Bias), _) => le(&(0..n).map(|_| rng.range(-500, 500) as i32).collect::<Vec<_>>()),
            (Tag::Norm { part: super::NormPart::Params, .. } | Tag::FinalNorm(_, super::NormPart::Params), _) => le(&[NormParams { shift: 24, eps: 1 }]),
            (Tag::Attention { .. }, _) => le(&[AttentionParams { softmax: rq(0.02), ctx: rq(0.5) }]),
            (Tag::Rope { .. }, _) => le(&[RopeParams { q: rq(0.5 / 32768.0), k: rq(0.5 / 32768.0) }]),
            (Tag::Residual { .. }, _) => le(&[ResidualParams { ma: 3 << 20, mb: 2 << 20, shift: 22 }]),
            (Tag::ActTable { .. }, _) => le(&(0..TABLE_LEN).map(|i| ((256 * i as i32 - 32768) / 4).max(-200) as i16).collect::<Vec<_>>()),
            (Tag::GateMul { .. }, _) => le(&[rq(1e-4)]),
            (Tag::FeatureQuant, _) => le(&vec![FeatureQuant { scale: rq(0.01), zero_point: 0 }; s.dims[0]]),
            (Tag::LogSoftmax, _) => le(&[rq(0.05)]),
            (Tag::HeadScale, _) => le(&[rq(0.01)]),
            (Tag::RopeCos | Tag::RopeSin, _) => le(&(0..n).map(|_| rng.range(-32767, 32767) as i16).collect::<Vec<_>>()),
            (Tag::Output(Part::Requant), _) => le(&(0..n).map(|_| rq(rng.range(1, 100) as f64 * 1e-5)).collect::<Vec<_>>()),
            (_, DType::I8) => (0..n).map(|_| rng.range(-127, 127) as u8).collect(),
            (_, DType::I16) => le(&(0..n).map(|_| rng.range(-3000, 3000) as i16).collect::<Vec<_>>()),
            (_, DType::I32) => le(&(0..n).map(|_| rng.range(-2000, 2000) as i32).collect::<Vec<_>>()),
            (_, DType::Requant) => le(&(0..n).map(|_| rq(rng.range(1, 100) as f64 * 1e-4)).collect::<Vec<_>>()),
            _ => vec![0; s.bytes()],
        };
        data.push(bytes);
    }
    let tensors: Vec<TensorData<'_>> = specs
        .iter()
        .zip(&data)
        .map(|(&spec, d)| {
            let blocked = block4 && spec.dtype == DType::I8 && Layout::from_code(Layout::Block4.code(), spec.dims[0], spec.dims[1]).is_some();
            TensorData { spec, layout: if blocked { Layout::Block4.code() } else { 0 }, data: d }
        })
        .collect();
    // the data above is row-major; a Block4 tensor of random bytes is as random in any order
    let mut out = vec![0u8; blob_len(&tensors)];
    let n = write(c, &tensors, &mut out)?;
    out.truncate(n);
    Ok(out)
}
