//! int4 layers (`Linear::int4`): the portable loops, and the dispatch to the DSP routines on
//! Cortex-M4/M7/M33/M55. Weights are two's-complement nibbles in `-8..=7` in the layouts of
//! [`crate::kernels::layout`]; the sums are the reference's ([`super::reference::linear_ref`]
//! reads the same nibbles), wrapping in 32 bits, so every path is bit-exact with it.

use super::reference::linear_ref;
use super::weights::Linear;
use crate::kernels::layout::Layout;
use crate::quant::Activation;

/// Whether this core's `block4` (the DSP file's, which the Helium file hands int4 to) takes
/// int4 Block4 layers itself; elsewhere [`forward`] runs them.
pub const IN_CORE: bool = cfg!(any(picoformer_core = "dsp", picoformer_core = "mve"));

/// An int4 layer on `x.len() / k` rows, through the portable loops.
#[inline]
pub fn forward<O: Activation>(l: &Linear<'_>, x: &[i16], y: &mut [O]) {
    let (k, n) = (l.k, l.n());
    if k == 0 || n == 0 {
        return;
    }
    match l.layout {
        Layout::Block4 if k % 4 == 0 && n % 4 == 0 => block4_portable(l, x, y),
        Layout::Block4 => linear_ref(l, x, y),
        Layout::RowMajor => row_major(l, x, y),
    }
}

/// The low and high nibble of a byte, sign-extended.
#[inline(always)]
fn nibbles(b: i8) -> (i32, i32) {
    (((b << 4) >> 4) as i32, (b >> 4) as i32)
}

/// Row-major int4: one channel at a time, one byte (two inputs) per step; an odd `k` leaves
/// the last byte's high nibble unused.
pub fn row_major<O: Activation>(l: &Linear<'_>, x: &[i16], y: &mut [O]) {
    let (k, n) = (l.k, l.n());
    let rb = k.div_ceil(2);
    if k == 0 || n == 0 || l.w.len() < n * rb {
        return linear_ref(l, x, y);
    }
    for (xr, yr) in x.chunks_exact(k).zip(y.chunks_exact_mut(n)) {
        for (((yo, wr), &b), rq) in yr.iter_mut().zip(l.w.chunks_exact(rb)).zip(l.bias).zip(l.rq) {
            let mut acc = b;
            for (&w, xp) in wr.iter().zip(xr.chunks(2)) {
                let (lo, hi) = nibbles(w);
                let x0 = xp.first().copied().unwrap_or(0) as i32;
                let x1 = xp.get(1).copied().unwrap_or(0) as i32;
                acc = acc.wrapping_add(lo.wrapping_mul(x0)).wrapping_add(hi.wrapping_mul(x1));
            }
            *yo = O::requant(*rq, acc);
        }
    }
}

/// Block4 int4 on a core without int4 routines: per row and block of 4 channels, [`dot4`].
pub fn block4_portable<O: Activation>(l: &Linear<'_>, x: &[i16], y: &mut [O]) {
    let (k, n) = (l.k, l.n());
    if k == 0 || n == 0 {
        return;
    }
    for (xr, yr) in x.chunks_exact(k).zip(y.chunks_exact_mut(n)) {
        let blocks = l.w.chunks_exact(2 * k).zip(l.bias.chunks_exact(4)).zip(l.rq.chunks_exact(4));
        for (((w4, b4), rq4), y4) in blocks.zip(yr.chunks_exact_mut(4)) {
            let mut acc = [0i32; 4];
            acc.copy_from_slice(b4);
            dot4(w4, xr, &mut acc);
            for ((yo, a), rq) in y4.iter_mut().zip(acc).zip(rq4) {
                *yo = O::requant(*rq, a);
            }
        }
    }
}

/// `acc[r] += Σ_j w[r, j] · x[j]` for one int4 Block4 block (`w`: `2·k` bytes, `x`: `k`).
#[inline(always)]
pub fn dot4(w: &[i8], x: &[i16], acc: &mut [i32; 4]) {
    for (g, xg) in w.chunks_exact(8).zip(x.chunks_exact(4)) {
        let [x0, x1, x2, x3]: [i16; 4] = xg.try_into().unwrap_or([0; 4]);
        let (x0, x1, x2, x3) = (x0 as i32, x1 as i32, x2 as i32, x3 as i32);
        // a word per pair of rows: bytes (r0: j0 j2), (r1: j0 j2), (r0: j1 j3), (r1: j1 j3)
        for (a2, wp) in acc.chunks_exact_mut(2).zip(g.chunks_exact(4)) {
            let [a0, a1, b0, b1]: [i8; 4] = wp.try_into().unwrap_or([0; 4]);
            for (a, (p, q)) in a2.iter_mut().zip([(a0, b0), (a1, b1)]) {
                let ((j0, j2), (j1, j3)) = (nibbles(p), nibbles(q));
                let s = j0.wrapping_mul(x0).wrapping_add(j1.wrapping_mul(x1)).wrapping_add(j2.wrapping_mul(x2)).wrapping_add(j3.wrapping_mul(x3));
                *a = a.wrapping_add(s);
            }
        }
    }
}
