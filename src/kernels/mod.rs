//! Integer kernels, one file per family. Each has a plain scalar reference; fast paths sit
//! beside it and are tested bit-exact against it.
//!
//! Conventions: activations are row-major `(rows, features)`; weights are `(out, in)` as in
//! PyTorch; kernels take slices and never panic: shapes are checked by the caller (the model
//! verifies them once, at parse time) and the loops use iterators that stop at the shortest
//! slice.

/// Whether this build has the Cortex-M4/M7/M33 DSP fast paths (`cfg(picoformer_dsp)`, see
/// `build.rs`); without them every kernel runs its portable code.
pub const DSP: bool = cfg!(picoformer_dsp);

/// Which assembly fast paths this build runs (the rest is portable Rust).
pub const FAST_PATHS: &str = if DSP {
    "DSP assembly (SMLAD): linear, softmax, LayerNorm, attention"
} else if cfg!(picoformer_v7m) {
    "Armv7-M assembly (LDRSB + MLA): linear"
} else if cfg!(picoformer_v6m) {
    "Armv6-M assembly (LDRB + SXTB + MULS): linear"
} else if cfg!(target_arch = "riscv32") {
    "RV32 assembly (16 channels per pass): linear"
} else {
    "none (portable Rust)"
};

pub mod activation;
pub mod attention;
#[cfg(picoformer_dsp)]
pub mod attention_dsp;
pub mod embedding;
pub mod layernorm;
#[cfg(picoformer_dsp)]
pub mod layernorm_dsp;
pub mod layout;
pub mod linear;
#[cfg(picoformer_dsp)]
pub mod linear_dsp;
#[cfg(target_arch = "riscv32")]
pub mod linear_rv32;
#[cfg(picoformer_v6m)]
pub mod linear_v6m;
#[cfg(picoformer_v7m)]
pub mod linear_v7m;
pub mod residual;
pub mod softmax;
#[cfg(picoformer_dsp)]
pub mod softmax_dsp;
