//! Chooses which core's fast paths the kernels compile, as one value: `cfg(picoformer_core = …)`.
//!
//! | core | targets | fast paths |
//! |---|---|---|
//! | `"mve"` | `thumbv8m.main` with Helium (MVE): `-C target-cpu=cortex-m55` or `cortex-m85` | MVE assembly; families without an MVE file use their `"dsp"` one (these cores have the DSP extension too) |
//! | `"dsp"` | `thumbv7em` (Cortex-M4/M7); `thumbv8m.main` with the DSP extension: `-C target-cpu=cortex-m33` (or `m35p`), or `PICOFORMER_DSP=1` (any `thumbv8m.main`, the M55 included) | `SMLAD` assembly |
//! | `"v7m"` | `thumbv7m` (Cortex-M3: Armv7-M without DSP) | `LDRSB` + `MLA` assembly |
//! | `"v6m"` | `thumbv6m` (Cortex-M0/M0+) | `LDRB` + `SXTB` + `MULS` assembly |
//! | `"rv32"` | `riscv32` with the M extension | `lb` + `mul` + `add` assembly |
//! | `"x86"` | `x86_64` (the host simulator) | SSE4.1 / AVX / AVX2 intrinsics, chosen per call from what the CPU reports at run time |
//! | `"none"` | everything else, or any target with `PICOFORMER_PORTABLE=1` | portable Rust only |
//!
//! Each kernel family picks its core's file in one place (`src/kernels/<family>/mod.rs`); the
//! portable loops and the plain references build everywhere. `picoformer_armv6m` is separate:
//! it says the ISA has no 32×32→64 multiply (`quant::mul_wide`), whatever the fast paths.
//! The last `target-cpu` in the flags counts, as for rustc (`cargo an547` appends
//! `cortex-m55` to the `thumbv8m.main` target's `cortex-m33`).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(picoformer_core, values(\"mve\", \"dsp\", \"v7m\", \"v6m\", \"rv32\", \"x86\", \"none\"))");
    println!("cargo::rustc-check-cfg=cfg(picoformer_armv6m)");
    println!("cargo::rerun-if-env-changed=PICOFORMER_PORTABLE");
    println!("cargo::rerun-if-env-changed=PICOFORMER_DSP");
    println!("cargo::rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    println!("cargo::rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    let on = |var: &str| std::env::var(var).is_ok_and(|v| v == "1");
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let cpu = flags.split('\x1f').filter_map(|f| f.split_once("target-cpu=").map(|(_, cpu)| cpu)).next_back().unwrap_or("");
    let mve_cpu = ["cortex-m55", "cortex-m85"].contains(&cpu);
    let dsp_cpu = ["cortex-m33", "cortex-m35p"].contains(&cpu) || mve_cpu;
    if target.starts_with("thumbv6m") {
        println!("cargo::rustc-cfg=picoformer_armv6m");
    }
    let core = if on("PICOFORMER_PORTABLE") {
        "none"
    } else if target.starts_with("thumbv8m.main") && mve_cpu && !on("PICOFORMER_DSP") {
        "mve"
    } else if target.starts_with("thumbv7em") || (target.starts_with("thumbv8m.main") && (dsp_cpu || on("PICOFORMER_DSP"))) {
        "dsp"
    } else if target.starts_with("thumbv7m") {
        "v7m"
    } else if target.starts_with("thumbv6m") {
        "v6m"
    } else if target.starts_with("riscv32im") {
        "rv32"
    } else if target.starts_with("x86_64") {
        "x86"
    } else {
        "none"
    };
    println!("cargo::rustc-cfg=picoformer_core=\"{core}\"");
}
