//! Chooses the model blob (and, with feature `qemu`, the test vectors) the firmware embeds: the
//! one place every board crate's files are chosen.
//!
//! `PICOFORMER_BLOB` and `PICOFORMER_VECTORS` override the defaults
//! (`models/de-en/de-en.pico`, `models/de-en/de-en.vectors.bin`); relative paths are taken from
//! the repository root. The absolute paths reach the crate as `PICOFORMER_BLOB_PATH` and
//! `PICOFORMER_VECTORS_PATH` for `include_bytes!`.
use std::{env, path::PathBuf, process};

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest.join("../..");
    let root = root.canonicalize().unwrap_or(root);
    let mut files = vec![("PICOFORMER_BLOB", "models/de-en/de-en.pico", "PICOFORMER_BLOB_PATH")];
    // the test vectors only for the on-target test: the real boards need the blob alone
    if env::var_os("CARGO_FEATURE_QEMU").is_some() {
        files.push(("PICOFORMER_VECTORS", "models/de-en/de-en.vectors.bin", "PICOFORMER_VECTORS_PATH"));
    }
    for (var, default, out) in files {
        println!("cargo:rerun-if-env-changed={var}");
        let path = match env::var_os(var) {
            Some(p) if !p.is_empty() => root.join(p),
            _ => root.join(default),
        };
        let path = match path.canonicalize() {
            Ok(p) => p,
            Err(e) => {
                eprintln!(
                    "picoformer-board-common: {} ({var}): {e}\n\
                     write it with `picoformer convert`, or point {var} at another file \
                     (absolute, or relative to the repository root)",
                    path.display(),
                );
                process::exit(1);
            }
        };
        println!("cargo:rerun-if-changed={}", path.display());
        println!("cargo:rustc-env={out}={}", path.display());
    }
}
