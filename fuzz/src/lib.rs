//! Shared support for the fuzz targets: the tiny models of the host tests
//! (`tests/common/mod.rs`, included here so there is one generator), the architecture variants
//! of every model kind, "whatever parses must run", and the BPE test vocabularies.

use picoformer::blob::{self, ActKind, Config, ModelKind};
use picoformer::tokenizer::Tokenizer;
use picoformer::{Classifier, Error, Generator, Model, Translator};

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tools/src/spm.rs"]
#[allow(dead_code)]
mod spm;
pub use common::{tiny_blob, tiny_classifier, tiny_config, tiny_lm, with_act, AlignedBuf, Rng};

/// The four encoder-decoder variants of the tiny model: post- and pre-norm, ReLU and GELU,
/// separate and tied output.
pub fn translator_variants() -> [Config; 4] {
    [
        tiny_config(0),
        tiny_config(blob::FLAG_NORM_FIRST),
        with_act(tiny_config(blob::FLAG_TIED), ActKind::Gelu),
        with_act(tiny_config(blob::FLAG_NORM_FIRST), ActKind::Gelu),
    ]
}

/// Every tiny model of the seed corpora: the encoder-decoder variants, the Llama-block
/// language model and the feature classifier.
pub fn all_variants() -> Vec<Config> {
    translator_variants().into_iter().chain([tiny_lm(), tiny_classifier()]).collect()
}

/// Recompute the checksum over the part of `b` the header says is the blob.
pub fn reseal_in_place(b: &mut [u8]) {
    let total = b.get(8..12).map_or(b.len(), |t| u32::from_le_bytes(t.try_into().unwrap()) as usize);
    let end = total.clamp(16.min(b.len()), b.len());
    blob::reseal(&mut b[..end]);
}

/// Whatever parses must also run, in an arena of exactly the size its runner asks for: a
/// translator encodes, decodes greedily and with a beam of 2; a language model is prompted,
/// continues greedily and with a beam of 2; a classifier classifies a window. Returns the first
/// typed error.
pub fn run_if_valid(b: &[u8]) -> Result<(), Error> {
    let m = Model::parse(b)?;
    let c = *m.config();
    let ids = |n: usize| -> Vec<u16> { (0..n).map(|i| ((i + 4) % c.vocab.max(1)) as u16).collect() };
    let mut out = vec![0u16; c.max_len];
    let n = match c.kind {
        ModelKind::EncoderDecoder => {
            let mut arena = AlignedBuf::zeroed(Translator::arena_bytes(&m, 2));
            let mut t = Translator::new(&m, arena.bytes_mut(), 2)?;
            let mut src = ids(c.max_len.min(5));
            src.push(c.eos);
            let src = &src[src.len().saturating_sub(c.max_len)..];
            t.encode(src)?;
            let n = t.greedy(&mut out)?;
            assert!(n < c.max_len, "greedy emitted {n} tokens, max_len {}", c.max_len);
            t.encode(src)?;
            let n = t.beam_search(2, &mut out)?;
            assert!(n < c.max_len, "beam emitted {n} tokens, max_len {}", c.max_len);
            n
        }
        ModelKind::DecoderOnly => {
            let mut arena = AlignedBuf::zeroed(Generator::arena_bytes(&m, 2));
            let mut g = Generator::new(&m, arena.bytes_mut(), 2)?;
            let prompt = ids(c.max_len.min(3));
            g.prompt(&prompt)?;
            let mut n = 0;
            while let Some(id) = g.next_token()? {
                assert!(usize::from(id) < c.vocab && n < c.max_len, "token {id} at {n}");
                n += 1;
            }
            assert!(g.len() <= c.max_len, "{} positions, max_len {}", g.len(), c.max_len);
            g.beam_search(&prompt, 2, c.max_len, &mut out)?
        }
        ModelKind::EncoderOnly => {
            let mut arena = AlignedBuf::zeroed(Classifier::arena_bytes(&m));
            let mut k = Classifier::new(&m, arena.bytes_mut())?;
            let rows = c.max_len.min(4);
            let scores = match c.n_features {
                0 => k.classify_tokens(&ids(rows))?,
                f => k.classify_features(&vec![7i16; rows * f])?,
            };
            assert_eq!(scores.len(), c.n_outputs);
            assert!(k.class() < c.n_outputs.max(1));
            0
        }
    };
    let mut text = vec![0u8; 64 * c.max_len];
    let _ = m.tokenizer().decode(&out[..n], &mut text);
    Ok(())
}

/// Real models for the tokenizer target: the de-en blob if it has been converted, and every
/// blob in `PICO_FUZZ_BLOB` (`:`-separated paths). Leaked so they can be borrowed for `'static`.
pub fn real_blobs() -> Vec<&'static [u8]> {
    let de_en = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/de-en/de-en.pico").to_string();
    let extra = std::env::var("PICO_FUZZ_BLOB").unwrap_or_default();
    let paths = std::iter::once(de_en).chain(extra.split(':').filter(|p| !p.is_empty()).map(String::from));
    paths
        .filter_map(|p| std::fs::read(p).ok())
        .map(|bytes| &*Box::leak(Box::new(AlignedBuf::from_bytes(&bytes))))
        .filter(|a: &&'static AlignedBuf| Model::parse(a.bytes()).is_ok())
        .map(|a| a.bytes())
        .collect()
}

/// The SentencePiece BPE test models (`tools/tests/data`, from `tools/bpe_vectors.py`): one
/// with byte_fallback and spaces kept (Llama-style), one with `unk` and spaces removed. The
/// blob cannot carry a BPE vocabulary yet, so they are read from the `.model` files.
pub fn bpe_tokenizers() -> Vec<Tokenizer<'static>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tools/tests/data");
    ["bpe_llama", "bpe_small"]
        .iter()
        .map(|name| {
            let path = std::path::PathBuf::from(format!("{dir}/{name}.model"));
            let model = spm::SpmModel::load(&path).expect("BPE test model parses");
            let tables = &*Box::leak(Box::new(model.tables().expect("BPE tables")));
            Tokenizer::new(model.vocab(tables)).expect("BPE vocabulary validates")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes the seed corpora (`cargo test --manifest-path fuzz/Cargo.toml`, or scripts/fuzz).
    #[test]
    fn write_seed_corpora() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        for target in ["parse", "parse_resealed"] {
            let d = dir.join(target);
            std::fs::create_dir_all(&d).unwrap();
            for (i, c) in all_variants().iter().enumerate() {
                let b = tiny_blob(c, i as u64 + 1);
                run_if_valid(b.bytes()).unwrap();
                std::fs::write(d.join(format!("tiny-{i}")), b.bytes()).unwrap();
            }
        }
        let d = dir.join("tokenizer");
        std::fs::create_dir_all(&d).unwrap();
        for (i, s) in ["ein hund", "  a   dog ", "ein xÿ€", "▁e\u{0}h", "\u{ff}\u{fe}", "A dog 😀\t123  ñ ", "\u{e2}\u{96}"].iter().enumerate() {
            std::fs::write(d.join(format!("text-{i}")), s.as_bytes()).unwrap();
        }
        let d = dir.join("translate");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("basic"), [0u8, 2, 2, 3, 0, 4, 0, 5, 0, 3, 8, 8]).unwrap();
        // a window of two frames of three features, and one value short of it
        let d = dir.join("classify");
        std::fs::create_dir_all(&d).unwrap();
        let window: Vec<u8> = [300i16, -20, 7, 0, 1500, -900].iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(d.join("window"), [&[0u8, 9][..], &window].concat()).unwrap();
        std::fs::write(d.join("short"), [&[1u8, 1][..], &window].concat()).unwrap();
        // greedy (temperature 0), sampled with top-k and top-p, and a beam of 2
        let d = dir.join("generate");
        std::fs::create_dir_all(&d).unwrap();
        let ids: Vec<u8> = [2u16, 10, 12, 14].iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(d.join("greedy"), [&[0u8, 0, 200, 1, 2, 1, 8, 8, 3][..], &ids].concat()).unwrap();
        std::fs::write(d.join("sampled"), [&[50u8, 5, 180, 7, 3, 2, 6, 6, 4][..], &ids].concat()).unwrap();
    }
}
