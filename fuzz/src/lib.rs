//! Shared support for the fuzz targets: the tiny hand-made model of the host tests
//! (`tests/common/mod.rs`, included here so there is one generator), the architecture variants,
//! "whatever parses must run", and the BPE test vocabularies.

use picoformer::blob;
use picoformer::tokenizer::Tokenizer;
use picoformer::{Error, Model, Translator};

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tools/src/spm.rs"]
#[allow(dead_code)]
mod spm;
pub use common::{tiny_blob, tiny_config, AlignedBuf, Rng, PIECES};

/// The four architecture variants the tiny model is built in.
pub const VARIANTS: [u32; 4] =
    [0, blob::FLAG_NORM_FIRST, blob::FLAG_GELU | blob::FLAG_TIED, blob::FLAG_NORM_FIRST | blob::FLAG_GELU];

/// Recompute the checksum over the part of `b` the header says is the blob.
pub fn reseal_in_place(b: &mut [u8]) {
    let total = b.get(8..12).map_or(b.len(), |t| u32::from_le_bytes(t.try_into().unwrap()) as usize);
    let end = total.clamp(16.min(b.len()), b.len());
    blob::reseal(&mut b[..end]);
}

/// Whatever parses must also run: encode, greedy and beam search of width 2 in an arena of
/// exactly [`Translator::arena_bytes`] bytes. Returns the first typed error.
pub fn run_if_valid(b: &[u8]) -> Result<(), Error> {
    let m = Model::parse(b)?;
    let mut arena = AlignedBuf::zeroed(Translator::arena_bytes(&m, 2));
    let mut t = Translator::new(&m, arena.bytes_mut(), 2)?;
    let c = *m.config();
    let src: Vec<u16> = (0..c.max_len.min(5)).map(|i| ((i + 4) % c.vocab) as u16).chain([c.eos]).collect();
    let src = &src[src.len().saturating_sub(c.max_len)..];
    t.encode(src)?;
    let mut out = vec![0u16; c.max_len];
    let n = t.greedy(&mut out)?;
    assert!(n < c.max_len, "greedy emitted {n} tokens, max_len {}", c.max_len);
    t.encode(src)?;
    let n = t.beam_search(2, &mut out)?;
    assert!(n < c.max_len, "beam emitted {n} tokens, max_len {}", c.max_len);
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
            for (i, flags) in VARIANTS.iter().enumerate() {
                let b = tiny_blob(&tiny_config(*flags), i as u64 + 1);
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
    }
}
