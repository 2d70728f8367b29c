//! Puts `memory.x` where cortex-m-rt's `link.x` looks for it. (The blob is chosen by
//! picoformer-board-common's build script: `PICOFORMER_BLOB`.)
use std::{env, fs, path::PathBuf, process};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    if let Err(e) = fs::copy("memory.x", out.join("memory.x")) {
        eprintln!("nucleo-h743zi: copying memory.x: {e}");
        process::exit(1);
    }
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
}
