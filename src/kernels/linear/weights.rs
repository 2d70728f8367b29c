//! The weights of one linear layer, as views into the blob.

use super::super::layout::Layout;
use crate::quant::Requant;

/// One linear layer: `(n, k)` int8 (or int4: `int4`) weights in `layout`, `(n,)` int32 biases
/// and requantizers.
/// Build it with [`Linear::new`], which works out whether every multiplier takes the fused
/// 32-bit requantization ([`Requant::FUSED_SHIFTS`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Linear<'a> {
    /// `(n, k)`, stored in `layout`: `n·k` bytes, or `n·⌈k/2⌉` when `int4`.
    pub w: &'a [i8],
    pub layout: Layout,
    /// Two weights per byte ([`crate::blob::DType::I4`], see [`super::super::layout`]).
    pub int4: bool,
    /// `(n,)`, in the accumulator's scale `s_x · s_w[o]` (zeros for a layer without bias).
    pub bias: &'a [i32],
    /// `(n,)`: `s_x · s_w[o] / s_y`.
    pub rq: &'a [Requant],
    /// Input features.
    pub k: usize,
    pub(super) fused: bool,
}

impl<'a> Linear<'a> {
    pub fn new(w: &'a [i8], layout: Layout, bias: &'a [i32], rq: &'a [Requant], k: usize) -> Self {
        Linear { w, layout, int4: false, bias, rq, k, fused: rq.iter().all(|r| r.is_fused()) }
    }

    /// The same layer with `w` read as int4 (`true`) or int8.
    pub fn with_int4(self, int4: bool) -> Self {
        Linear { int4, ..self }
    }

    /// Output features.
    #[inline]
    pub fn n(&self) -> usize {
        self.bias.len()
    }

    /// Every multiplier's shift is in [`Requant::FUSED_SHIFTS`]: fast paths may requantize with
    /// the 32-bit identity of [`Requant::apply32`] in registers.
    #[inline]
    pub fn fused(&self) -> bool {
        self.fused
    }

    /// `w[o, j]`, whatever the layout (0 past the end).
    #[inline(always)]
    pub fn weight(&self, o: usize, j: usize) -> i8 {
        self.layout.get(self.w, self.int4, o, j, self.k)
    }

    /// The same layer from output channel `from` on (Block4: a multiple of 4).
    #[inline(always)]
    pub fn channels_from(&self, from: usize) -> Linear<'a> {
        Linear {
            w: self.w.get(self.layout.bytes(from, self.k, self.int4)..).unwrap_or(&[]),
            bias: self.bias.get(from..).unwrap_or(&[]),
            rq: self.rq.get(from..).unwrap_or(&[]),
            ..*self
        }
    }
}
