//! Integer kernels, one folder or file per family. Each has a plain scalar reference; fast
//! paths sit beside it and are tested bit-exact against it (on the host, and on every board by
//! [`crate::selftest`]).
//!
//! Conventions: activations are row-major `(rows, features)`; weights are `(out, in)` as in
//! PyTorch; kernels take slices and never panic: shapes are checked by the caller (the model
//! verifies them once, at parse time) and the loops use iterators that stop at the shortest
//! slice.
//!
//! Dispatch, in every family the same way: `build.rs` sets one `cfg(picoformer_core = …)` for
//! the build (`mve`, `dsp`, `v7m`, `v6m`, `rv32`, `x86`, or `none` with `PICOFORMER_PORTABLE=1`),
//! and the family's `mod.rs` maps it to one file (`use dsp as core_path;`). Each core's file offers the
//! same functions as the family's portable file, takes the shapes its assembly can, and hands
//! the rest to the portable loops; a core without a file uses the portable one. Fast-path files
//! depend on their family's portable and parameter files, never the other way round, nor on a
//! sibling fast-path file. On `x86` each family's `x86.rs` picks its path per call from
//! `x86_features::level` (x86-64 builds only), the one module they share.

pub mod activation;
pub mod argmax;
pub mod attention;
pub mod embedding;
pub mod layernorm;
pub mod layout;
pub mod linear;
pub mod pool;
pub mod residual;
pub mod rope;
pub mod softmax;
// on every x86-64 build, so the host tools can name it; only core "x86" reads it
#[cfg(target_arch = "x86_64")]
pub mod x86_features;

/// The core whose fast paths this build runs (`build.rs`).
pub const CORE: &str = if cfg!(picoformer_core = "mve") {
    "mve"
} else if cfg!(picoformer_core = "dsp") {
    "dsp"
} else if cfg!(picoformer_core = "v7m") {
    "v7m"
} else if cfg!(picoformer_core = "v6m") {
    "v6m"
} else if cfg!(picoformer_core = "rv32") {
    "rv32"
} else if cfg!(picoformer_core = "x86") {
    "x86"
} else {
    "none"
};

/// Whether this build runs the Cortex-M4/M7/M33 DSP fast paths. On a Helium core a family
/// without an MVE file would run its DSP one; every family has one now, so there it is false.
pub const DSP: bool = cfg!(picoformer_core = "dsp");

/// Whether this build runs the Helium (MVE) fast paths (Cortex-M55/M85).
pub const MVE: bool = cfg!(picoformer_core = "mve");

/// Which assembly fast paths this build runs (the rest is portable Rust).
pub const FAST_PATHS: &str = if MVE {
    "Helium assembly (MVE): linear, softmax, LayerNorm, attention, residual add, argmax"
} else if DSP {
    "DSP assembly (SMLAD): linear, softmax, LayerNorm, attention"
} else if cfg!(picoformer_core = "v7m") {
    "Armv7-M assembly (LDRSB + MLA): linear"
} else if cfg!(picoformer_core = "v6m") {
    "Armv6-M assembly (LDRB + SXTB + MULS): linear"
} else if cfg!(picoformer_core = "rv32") {
    "RV32 assembly (16 channels per pass): linear"
} else if cfg!(picoformer_core = "x86") {
    "x86-64 SIMD, SSE4.1 / AVX / AVX2 by run-time detection: linear, softmax, LayerNorm, attention, residual, argmax"
} else {
    "none (portable Rust)"
};

/// Bytes of stack the kernels use at most beyond their register frames (the deepest family):
/// what a board must leave free on top of the model's own frames.
pub const STACK_BYTES: usize = max(max(linear::STACK_BYTES, attention::STACK_BYTES), max(softmax::STACK_BYTES, layernorm::STACK_BYTES));

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}
