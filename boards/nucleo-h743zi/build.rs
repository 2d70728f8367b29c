//! Puts `memory.x` where cortex-m-rt's `link.x` looks for it, and chooses the model blob.
//!
//! `PICOFORMER_BLOB` overrides the default blob `models/de-en/de-en.pico`; a relative path is
//! taken from the repository root. The absolute path reaches the crate as `PICOFORMER_BLOB_PATH`.
use std::{env, fs, path::PathBuf, process};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    if let Err(e) = fs::copy("memory.x", out.join("memory.x")) {
        eprintln!("nucleo-h743zi: copying memory.x: {e}");
        process::exit(1);
    }
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");

    let root = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default()).join("../..");
    println!("cargo:rerun-if-env-changed=PICOFORMER_BLOB");
    let blob = match env::var_os("PICOFORMER_BLOB") {
        Some(p) if !p.is_empty() => root.join(p),
        _ => root.join("models/de-en/de-en.pico"),
    };
    match blob.canonicalize() {
        Ok(p) => {
            println!("cargo:rerun-if-changed={}", p.display());
            println!("cargo:rustc-env=PICOFORMER_BLOB_PATH={}", p.display());
        }
        Err(e) => {
            eprintln!(
                "nucleo-h743zi: {} (PICOFORMER_BLOB): {e}\n\
                 write it with `picoformer convert`, or point PICOFORMER_BLOB at another file",
                blob.display()
            );
            process::exit(1);
        }
    }
}
