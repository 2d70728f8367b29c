//! Selects the kernels' fast paths by target: `picoformer_dsp` on cores with the Armv7E-M DSP
//! extension (Cortex-M4/M7, and M33 builds for `thumbv8m.main`). `PICOFORMER_PORTABLE=1` turns
//! them off, to measure the portable kernels on the same core.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(picoformer_dsp)");
    println!("cargo::rerun-if-env-changed=PICOFORMER_PORTABLE");
    println!("cargo::rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    let portable = std::env::var("PICOFORMER_PORTABLE").is_ok_and(|v| v == "1");
    if !portable && (target.starts_with("thumbv7em") || target.starts_with("thumbv8m.main")) {
        println!("cargo::rustc-cfg=picoformer_dsp");
    }
}
