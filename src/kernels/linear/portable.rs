//! The portable loops of the linear kernel: row-major layers on every core, and the Block4 loop
//! of cores without a fast path. The cores' files reuse [`block4_rows`] with their own inner
//! routines. Bit-exact with [`super::reference::linear_ref`]: the same products, summed with
//! wrapping.

use super::reference::linear_ref;
use super::weights::Linear;
use crate::kernels::layout::Layout;
use crate::quant::{Activation, Requant};

/// Stack scratch of the portable loops: none beyond a few accumulators.
#[cfg_attr(not(picoformer_core = "none"), allow(dead_code))] // the interface of cores without a file
pub const STACK_BYTES: usize = 0;

/// Row-major layers: four output channels per pass, so each input value is loaded once for four
/// weights; the last `n % 4` channels one at a time.
pub fn linear_4rows<O: Activation>(l: &Linear<'_>, x: &[i16], y: &mut [O]) {
    let (k, n) = (l.k, l.n());
    if k == 0 || n == 0 {
        return;
    }
    let quads = n / 4;
    for (xr, yr) in x.chunks_exact(k).zip(y.chunks_exact_mut(n)) {
        let ys = yr.chunks_exact_mut(4);
        let ws = l.w.chunks_exact(4 * k);
        let bs = l.bias.chunks_exact(4);
        let rqs = l.rq.chunks_exact(4);
        for (((y4, w4), b4), rq4) in ys.zip(ws).zip(bs).zip(rqs) {
            let (w0, rest) = w4.split_at(k);
            let (w1, rest) = rest.split_at(k);
            let (w2, w3) = rest.split_at(k);
            let mut acc = [0i32; 4];
            for (acc, b) in acc.iter_mut().zip(b4) {
                *acc = *b;
            }
            for ((((&xi, &a), &b), &c), &d) in xr.iter().zip(w0).zip(w1).zip(w2).zip(w3) {
                let xi = xi as i32;
                acc[0] = acc[0].wrapping_add(xi.wrapping_mul(a as i32));
                acc[1] = acc[1].wrapping_add(xi.wrapping_mul(b as i32));
                acc[2] = acc[2].wrapping_add(xi.wrapping_mul(c as i32));
                acc[3] = acc[3].wrapping_add(xi.wrapping_mul(d as i32));
            }
            for ((yo, a), rq) in y4.iter_mut().zip(acc).zip(rq4) {
                *yo = O::requant(*rq, a);
            }
        }
        let tail = l.channels_from(quads * 4);
        if let Some(yt) = yr.get_mut(quads * 4..) {
            linear_ref(&Linear { layout: Layout::RowMajor, ..tail }, xr, yt);
        }
    }
}

/// The Block4 layer on a core without a fast path.
#[cfg_attr(not(picoformer_core = "none"), allow(dead_code))]
pub fn block4<O: Activation>(l: &Linear<'_>, x: &[i16], y: &mut [O]) {
    block4_rows(l, x, y, |_, _, _| 0, dot_block4);
}

/// The Block4 loop over rows: per row, `wide` takes the first channels in whatever sets the core
/// likes and returns how many it did; the rest go in blocks of 4 through `dot4`, accumulators in
/// Rust.
#[inline(always)]
pub fn block4_rows<O: Activation>(
    l: &Linear<'_>,
    x: &[i16],
    y: &mut [O],
    wide: impl Fn(&Linear<'_>, &[i16], &mut [O]) -> usize,
    dot4: impl Fn(&[i8], &[i16], &mut [i32; 4]),
) {
    let (k, n) = (l.k, l.n());
    if k == 0 || n == 0 {
        return;
    }
    for (xr, yr) in x.chunks_exact(k).zip(y.chunks_exact_mut(n)) {
        let done = wide(l, xr, yr);
        let rest = l.channels_from(done);
        let blocks = rest.w.chunks_exact(4 * k).zip(rest.bias.chunks_exact(4)).zip(rest.rq.chunks_exact(4));
        for (((w4, b4), rq4), y4) in blocks.zip(yr.get_mut(done..).unwrap_or(&mut []).chunks_exact_mut(4)) {
            let mut acc = [0i32; 4];
            for (a, &b) in acc.iter_mut().zip(b4) {
                *a = b;
            }
            dot4(w4, xr, &mut acc);
            for ((yo, a), rq) in y4.iter_mut().zip(acc).zip(rq4) {
                *yo = O::requant(*rq, a);
            }
        }
    }
}

/// Output channels `done..` of one row in sets of `W` (`W / 4` consecutive Block4 blocks),
/// through `dot`, as many sets as fit; returns the channels done.
#[inline(always)]
#[cfg_attr(not(any(picoformer_core = "rv32", picoformer_core = "v7m")), allow(dead_code))]
pub fn wide_sets<O: Activation, const W: usize>(l: &Linear<'_>, xr: &[i16], yr: &mut [O], done: usize, dot: fn(&[i8], &[i16], usize, &mut [i32; W])) -> usize {
    let k = l.k;
    let rest = l.channels_from(done);
    let Some(y) = yr.get_mut(done..) else {
        return done;
    };
    let mut sets = 0;
    for (((ws, bs), rqs), ys) in rest.w.chunks_exact(W * k).zip(rest.bias.chunks_exact(W)).zip(rest.rq.chunks_exact(W)).zip(y.chunks_exact_mut(W)) {
        let mut acc = [0i32; W];
        acc.copy_from_slice(bs);
        dot(ws, xr, k, &mut acc);
        requant_into(&acc, rqs, ys);
        sets += 1;
    }
    done + W * sets
}

/// `y[c] = requant(rq[c], acc[c])`: one loop, not unrolled per call site (code size).
#[inline(never)]
#[cfg_attr(not(any(picoformer_core = "rv32", picoformer_core = "v7m")), allow(dead_code))]
fn requant_into<O: Activation>(acc: &[i32], rq: &[Requant], y: &mut [O]) {
    for ((yo, &a), rq) in y.iter_mut().zip(acc).zip(rq) {
        *yo = O::requant(*rq, a);
    }
}

/// `acc[r] += Σ_j w[r, j] · x[j]` for one Block4 block (`w`: `4·k` bytes, `x`: `k` values).
#[inline(always)]
pub fn dot_block4(w: &[i8], x: &[i16], acc: &mut [i32; 4]) {
    for (g, xg) in w.chunks_exact(16).zip(x.chunks_exact(4)) {
        let [x0, x1, x2, x3]: [i16; 4] = xg.try_into().unwrap_or([0; 4]);
        for (a, wr) in acc.iter_mut().zip(g.chunks_exact(4)) {
            // bytes of a row's word: j0, j2, j1, j3
            let [w0, w2, w1, w3]: [i8; 4] = wr.try_into().unwrap_or([0; 4]);
            let s = (w0 as i32).wrapping_mul(x0 as i32)
                .wrapping_add((w1 as i32).wrapping_mul(x1 as i32))
                .wrapping_add((w2 as i32).wrapping_mul(x2 as i32))
                .wrapping_add((w3 as i32).wrapping_mul(x3 as i32));
            *a = a.wrapping_add(s);
        }
    }
}
