//! int8 (or int4) linear layer with per-output-channel requantization.
//!
//! `y[r, o] = sat(rq[o](bias[o] + Σ_k x[r, k] · w[o, k]))`
//!
//! - `x`: `(rows, k)` `i16` activations, any range;
//! - `w`: `(n, k)` `i8` weights, symmetric per output channel, stored in `layout`; or int4
//!   (`Linear::int4`: two per byte, `-8..=7`, see [`super::layout`]), the same sums;
//! - `bias`: `(n,)` `i32` in the accumulator's scale (`s_x · s_w[o]`);
//! - `rq`: `(n,)` multipliers `s_x · s_w[o] / s_y`;
//! - `y`: `(rows, n)`, `i8`, `i16` or `i32`.
//!
//! The accumulator wraps on overflow (as SMLAD does); with `|x| ≤ 2^15` and `k ≤ 512` it cannot.
//!
//! Files: [`weights`](Linear) (the view), `reference.rs` (the plain loop every fast path is
//! checked against), `portable.rs` (row-major layers, and Block4 on cores without a fast path),
//! and one file per core: `dsp.rs` (Cortex-M4/M7/M33), `v7m.rs` (M3), `v6m.rs` (M0/M0+),
//! `rv32.rs`, `mve.rs` (Cortex-M55/M85), `x86.rs` (SSE4.1 / AVX / AVX2, chosen at run time).
//! int4 layers go to `int4.rs` (portable loops on every core; the DSP file's int4 routines on
//! Cortex-M4/M7/M33/M55).
//! [`Linear::forward`] picks the core's file; each file's `block4` takes what its assembly can
//! and hands the rest to the portable loop.
//!
//! Stack scratch: [`STACK_BYTES`] (the DSP cores widen a block of weights to int16 on the
//! stack; the others use a few accumulators).

mod int4;
mod portable;
mod reference;
mod weights;

// the Helium files hand what their assembly does not take to the DSP file (the M55 has the
// DSP extension too)
#[cfg(any(picoformer_core = "dsp", picoformer_core = "mve"))]
mod dsp;
#[cfg(picoformer_core = "mve")]
mod mve;
#[cfg(picoformer_core = "rv32")]
mod rv32;
#[cfg(picoformer_core = "v6m")]
mod v6m;
#[cfg(picoformer_core = "v7m")]
mod v7m;
#[cfg(picoformer_core = "x86")]
mod x86;

// This build's core (`build.rs`): one line per core.
#[cfg(picoformer_core = "dsp")]
use dsp as core_path;
#[cfg(picoformer_core = "mve")]
use mve as core_path;
#[cfg(picoformer_core = "none")]
use portable as core_path;
#[cfg(picoformer_core = "rv32")]
use rv32 as core_path;
#[cfg(picoformer_core = "v6m")]
use v6m as core_path;
#[cfg(picoformer_core = "v7m")]
use v7m as core_path;
#[cfg(picoformer_core = "x86")]
use x86 as core_path;

pub use portable::linear_4rows;
pub use reference::linear_ref;
pub use weights::Linear;

use super::layout::Layout;
use crate::quant::Activation;

/// Bytes of stack the linear kernel uses beyond its frame of registers, on this build's core.
pub const STACK_BYTES: usize = core_path::STACK_BYTES;

impl Linear<'_> {
    /// Run the layer on `rows = x.len() / k` rows, through this core's fast path.
    #[inline]
    pub fn forward<O: Activation>(&self, x: &[i16], y: &mut [O]) {
        let (k, n) = (self.k, self.n());
        let block4 = self.layout == Layout::Block4 && k % 4 == 0 && n % 4 == 0 && k > 0 && n > 0;
        // int4 Block4 layers take the core's path where it has int4 routines (one call site,
        // so the core's loops are compiled once per output type)
        if self.int4 && !(block4 && int4::IN_CORE) {
            return int4::forward(self, x, y);
        }
        match self.layout {
            Layout::Block4 if block4 => core_path::block4(self, x, y),
            Layout::Block4 => linear_ref(self, x, y),
            Layout::RowMajor => linear_4rows(self, x, y),
        }
    }
}

/// The Block4 layer through this core's fast path (what [`Linear::forward`] runs), for the
/// self-tests.
pub fn linear_block4<O: Activation>(l: &Linear<'_>, x: &[i16], y: &mut [O]) {
    l.forward(x, y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::Requant;

    #[test]
    fn hand_computed() {
        // 2 rows, k = 3, n = 2
        let w = [1i8, 2, 3, -1, 0, 127];
        let bias = [10i32, -5];
        let one = Requant::from_real(1.0);
        let half = Requant::from_real(0.5);
        let rq = [one, half];
        let l = Linear::new(&w, Layout::RowMajor, &bias, &rq, 3);
        let x = [1i16, 1, 1, -2, 100, 3];
        let mut y = [0i16; 4];
        l.forward(&x, &mut y);
        // row 0: 10 + 1+2+3 = 16; (-5 -1 + 0 + 127) = 121 * 0.5 = 60.5 -> 61
        // row 1: 10 + (-2 + 200 + 9) = 217; (-5 + 2 + 0 + 381) = 378 * 0.5 = 189
        assert_eq!(y, [16, 61, 217, 189]);
        let mut y8 = [0i8; 4];
        l.forward(&x, &mut y8);
        assert_eq!(y8, [16, 61, 127, 127]);
    }

    #[test]
    fn saturates_both_ways() {
        let w = [127i8; 4];
        let bias = [0i32];
        let rq = [Requant::from_real(1.0)];
        let l = Linear::new(&w, Layout::RowMajor, &bias, &rq, 4);
        let mut y = [0i8; 2];
        l.forward(&[1, 0, 0, 0, -1, -1, 0, 0], &mut y);
        assert_eq!(y, [127, -128]);
        let mut y16 = [0i16; 2];
        l.forward(&[i16::MAX; 8].map(|v| v), &mut y16);
        assert_eq!(y16, [i16::MAX, i16::MAX]);
        l.forward(&[i16::MIN; 8], &mut y16);
        assert_eq!(y16, [i16::MIN, i16::MIN]);
    }

    #[test]
    fn short_slices_do_not_panic() {
        let rq = [Requant::default(); 1];
        let l = Linear::new(&[1; 5], Layout::RowMajor, &[0; 3], &rq, 2);
        let mut y = [0i8; 1];
        l.forward(&[1; 3], &mut y);
        let l0 = Linear::new(&[], Layout::Block4, &[], &[], 0);
        l0.forward::<i8>(&[], &mut []);
    }
}
