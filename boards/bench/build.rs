//! Puts the memory map of the target architecture where the linker looks for `memory.x`:
//! `memory-mps2.x` (an385, an386 and an500 share it), `memory-mps2-an505.x`, `memory-mps3-an547.x`
//! (thumbv8m.main built for the Cortex-M55: the last `target-cpu` in the flags) or
//! `memory-riscv-virt.x`.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let target = env::var("TARGET").unwrap_or_default();
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let cpu = flags.split('\x1f').filter_map(|f| f.split_once("target-cpu=").map(|(_, cpu)| cpu)).next_back().unwrap_or("");
    let src = match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("riscv32") => "memory-riscv-virt.x",
        _ if target.starts_with("thumbv8m") && cpu == "cortex-m55" => "memory-mps3-an547.x",
        _ if target.starts_with("thumbv8m") => "memory-mps2-an505.x",
        _ => "memory-mps2.x",
    };
    fs::copy(src, out.join("memory.x")).unwrap();
    // the an385 bench built for Armv6-M measures the Cortex-M0+ code (QEMU's M3 runs it)
    println!("cargo::rustc-check-cfg=cfg(bench_v6m)");
    if target.starts_with("thumbv6m") {
        println!("cargo::rustc-cfg=bench_v6m");
    }
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
}
