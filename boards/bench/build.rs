//! Puts the memory map of the target architecture where the linker looks for `memory.x`:
//! `memory-mps2.x` (an386 and an500 share it) or `memory-riscv-virt.x`. Sets `bench_dsp` when
//! the runtime's build script selects its SMLAD linear kernel (the same rule: Armv7E-M or
//! Armv8-M Mainline, unless `PICOFORMER_PORTABLE=1`), for the report and the cycle estimate.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let src = match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("riscv32") => "memory-riscv-virt.x",
        _ => "memory-mps2.x",
    };
    fs::copy(src, out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={src}");

    println!("cargo::rustc-check-cfg=cfg(bench_dsp)");
    println!("cargo::rerun-if-env-changed=PICOFORMER_PORTABLE");
    let target = env::var("TARGET").unwrap_or_default();
    let portable = env::var("PICOFORMER_PORTABLE").is_ok_and(|v| v == "1");
    if !portable && (target.starts_with("thumbv7em") || target.starts_with("thumbv8m.main")) {
        println!("cargo::rustc-cfg=bench_dsp");
    }
}
