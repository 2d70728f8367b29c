//! Arbitrary `config.json` and `model.safetensors` through the converter's loader,
//! `Export::load`: an export directory (the nn.Transformer or the generic layout) or a Hugging
//! Face one (llama, marian, bert), beside fixed, valid tokenizer files (`tokenizer.model`,
//! `source.spm`, `target.spm`, `vocab.json`, `vocab.txt`, `tokenizer_config.json` of
//! `models/hf-tiny`), so that the configs and
//! headers that parse reach the importers' mapping and the layout checks.
//!
//! Input: `n` (u16, little-endian), then `n` bytes of `config.json`, then the safetensors file.
//! Seeds: `fuzz/seeds/export/` (valid llama, marian, bert, generic and nn.Transformer-layout inputs,
//! written by `fuzz/seeds/export/make.py`). Property: `load` returns `Ok` or `Err`, never
//! panics, and what loads gives a float model whose config validates.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use picoformer_tools::export::Export;

/// This process's directory, with the tokenizer files in place.
fn dir() -> &'static PathBuf {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("picoformer-fuzz-export-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        let tiny = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/hf-tiny"));
        for (family, file) in [("llama", "tokenizer.model"), ("marian", "source.spm"), ("marian", "target.spm"), ("marian", "vocab.json"), ("bert", "vocab.txt"), ("bert", "tokenizer_config.json")] {
            std::fs::copy(tiny.join(family).join(file), d.join(file)).expect("tokenizer file");
        }
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else { return };
    let n = usize::from(u16::from_le_bytes(*len)).min(rest.len());
    let (config, weights) = rest.split_at(n);
    let d = dir();
    std::fs::write(d.join("config.json"), config).expect("write config.json");
    std::fs::write(d.join("model.safetensors"), weights).expect("write model.safetensors");
    if let Ok(ex) = Export::load(d) {
        let fm = ex.float_model();
        assert!(fm.config.validate().is_ok());
    }
});
