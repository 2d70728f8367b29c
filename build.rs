//! Selects the kernels' fast paths by target: `picoformer_dsp` on cores with the Armv7E-M DSP
//! extension. It is architectural on Armv7E-M (`thumbv7em`: Cortex-M4/M7) and optional on
//! Armv8-M Mainline (`thumbv8m.main`), so there it is opt-in: `-C target-cpu=cortex-m33`
//! (or `cortex-m35p`, `cortex-m55`, `cortex-m85`) in the rustflags, or `PICOFORMER_DSP=1`.
//! `picoformer_v7m` on Armv7-M without DSP (`thumbv7m`: Cortex-M3), for its `LDRSB` + `MLA`
//! linear kernel, and `picoformer_v6m` on Armv6-M (`thumbv6m`: Cortex-M0/M0+). `PICOFORMER_PORTABLE=1` turns the fast paths off, to measure the portable
//! kernels on the same core.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(picoformer_dsp)");
    println!("cargo::rustc-check-cfg=cfg(picoformer_v7m)");
    println!("cargo::rustc-check-cfg=cfg(picoformer_v6m)");
    println!("cargo::rerun-if-env-changed=PICOFORMER_PORTABLE");
    println!("cargo::rerun-if-env-changed=PICOFORMER_DSP");
    println!("cargo::rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    println!("cargo::rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    let on = |var: &str| std::env::var(var).is_ok_and(|v| v == "1");
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let dsp_cpu = ["cortex-m33", "cortex-m35p", "cortex-m55", "cortex-m85"].iter().any(|cpu| flags.contains(&format!("target-cpu={cpu}")));
    let dsp = target.starts_with("thumbv7em") || (target.starts_with("thumbv8m.main") && (dsp_cpu || on("PICOFORMER_DSP")));
    if on("PICOFORMER_PORTABLE") {
        return;
    }
    if dsp {
        println!("cargo::rustc-cfg=picoformer_dsp");
    }
    if target.starts_with("thumbv7m") {
        println!("cargo::rustc-cfg=picoformer_v7m");
    }
    if target.starts_with("thumbv6m") {
        println!("cargo::rustc-cfg=picoformer_v6m");
    }
}
