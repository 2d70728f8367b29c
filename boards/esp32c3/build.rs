//! Chooses the model blob (esp-hal's build script provides the linker scripts).
//!
//! `PICOFORMER_BLOB` overrides the default blob `models/de-en/de-en.pico`; a relative path is
//! taken from the repository root. The absolute path reaches the crate as `PICOFORMER_BLOB_PATH`.
use std::{env, path::PathBuf, process};

fn main() {
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
                "esp32c3: {} (PICOFORMER_BLOB): {e}\n\
                 write it with `picoformer convert`, or point PICOFORMER_BLOB at another file",
                blob.display()
            );
            process::exit(1);
        }
    }
}
