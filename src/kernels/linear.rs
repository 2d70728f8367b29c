//! int8 linear layer with per-output-channel requantization.
//!
//! `y[r, o] = sat(rq[o](bias[o] + Σ_k x[r, k] · w[o, k]))`
//!
//! - `x`: `(rows, k)` `i16` activations, any range;
//! - `w`: `(n, k)` `i8` weights, symmetric per output channel, stored in `layout`;
//! - `bias`: `(n,)` `i32` in the accumulator's scale (`s_x · s_w[o]`);
//! - `rq`: `(n,)` multipliers `s_x · s_w[o] / s_y`;
//! - `y`: `(rows, n)`, `i8`, `i16` or `i32`.
//!
//! The accumulator wraps on overflow (as SMLAD does); with `|x| ≤ 2^15` and `k ≤ 512` it cannot.

use super::layout::Layout;
use crate::quant::{Activation, Requant};

/// The weights of one linear layer, as views into the blob.
#[derive(Debug, Clone, Copy, Default)]
pub struct Linear<'a> {
    /// `(n, k)`, stored in `layout`.
    pub w: &'a [i8],
    pub layout: Layout,
    /// `(n,)`.
    pub bias: &'a [i32],
    /// `(n,)`.
    pub rq: &'a [Requant],
    /// Input features.
    pub k: usize,
    /// Every shift of `rq` is in `33..=62`, so fast paths may requantize with the 32-bit
    /// identity of [`Requant::apply32`]. Set by `Model::parse`; `false` is always safe.
    pub fast_rq: bool,
}

impl<'a> Linear<'a> {
    /// Output features.
    #[inline]
    pub fn n(&self) -> usize {
        self.bias.len()
    }

    /// `w[o, j]`, whatever the layout (0 past the end).
    #[inline(always)]
    pub fn weight(&self, o: usize, j: usize) -> i8 {
        self.w.get(self.layout.index(o, j, self.k)).copied().unwrap_or(0)
    }

    /// Run the layer on `rows = x.len() / k` rows.
    #[inline]
    pub fn forward<O: Activation>(&self, x: &[i16], y: &mut [O]) {
        match self.layout {
            Layout::RowMajor => linear_4rows(self, x, y),
            Layout::Block4 => linear_block4(self, x, y),
        }
    }
}

/// Portable fast path: four output channels per pass, so each input value is loaded once for
/// four weights. Bit-exact with [`linear_ref`]: the same products, summed with wrapping.
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
        // the last n % 4 channels, one at a time
        let tail = quads * 4;
        if let (Some(yt), Some(wt), Some(bt), Some(rt)) = (yr.get_mut(tail..), l.w.get(tail * k..), l.bias.get(tail..), l.rq.get(tail..)) {
            let t = Linear { w: wt, layout: Layout::RowMajor, bias: bt, rq: rt, k, fast_rq: false };
            linear_ref(&t, xr, yt);
        }
    }
}

/// The plain reference: one output at a time, any layout.
pub fn linear_ref<O: Activation>(l: &Linear<'_>, x: &[i16], y: &mut [O]) {
    let (k, n) = (l.k, l.n());
    if k == 0 || n == 0 {
        return;
    }
    for (xr, yr) in x.chunks_exact(k).zip(y.chunks_exact_mut(n)) {
        for (o, ((yo, &b), &rq)) in yr.iter_mut().zip(l.bias).zip(l.rq).enumerate() {
            let mut acc = b;
            for (j, &xi) in xr.iter().enumerate() {
                acc = acc.wrapping_add((xi as i32).wrapping_mul(l.weight(o, j) as i32));
            }
            *yo = O::requant(rq, acc);
        }
    }
}

/// Block4 fast path: per block of 4 output channels, walk the 16-byte groups (4 channels ×
/// 4 inputs) in order. Bit-exact with [`linear_ref`]. On Cortex-M4/M7/M33 the inner loop is the
/// `SMLAD` kernel of [`super::linear_dsp`].
pub fn linear_block4<O: Activation>(l: &Linear<'_>, x: &[i16], y: &mut [O]) {
    let (k, n) = (l.k, l.n());
    if k == 0 || n == 0 || k % 4 != 0 || n % 4 != 0 {
        return linear_ref(l, x, y);
    }
    #[cfg(picoformer_dsp)]
    if x.len() >= 2 * k && super::linear_dsp::rows(l, x, y) {
        return;
    }
    #[cfg(picoformer_dsp)]
    if x.len() >= 2 * k && k % 16 == 0 {
        return linear_block4_batched(l, x, y);
    }
    #[cfg(picoformer_dsp)]
    if super::linear_dsp::row(l, x, y) {
        return;
    }
    #[cfg(target_arch = "riscv32")]
    if l.fast_rq && n >= 16 {
        // whole rows, 16 channels per pass in assembly; the last n % 16 channels below
        for (xr, yr) in x.chunks_exact(k).zip(y.chunks_exact_mut(n)) {
            let done = super::linear_rv32::row(l, xr, yr);
            if let (Some(w), Some(bias), Some(rq), Some(yt)) = (l.w.get(done * k..), l.bias.get(done..), l.rq.get(done..), yr.get_mut(done..)) {
                let tail = Linear { w, bias, rq, ..*l };
                linear_block4_rows(&tail, xr, yt);
            }
        }
        return;
    }
    linear_block4_rows(l, x, y)
}

/// The Block4 loop over rows and blocks of channels, accumulators in Rust. RV32 runs 16
/// channels (four blocks) per assembly pass, then 8, so that each input is loaded once per 16
/// or 8 MACs; Armv7-M without DSP (Cortex-M3) runs 8 per pass; the rest take blocks of 4.
fn linear_block4_rows<O: Activation>(l: &Linear<'_>, x: &[i16], y: &mut [O]) {
    let (k, n) = (l.k, l.n());
    if k == 0 || n == 0 {
        return;
    }
    for (xr, yr) in x.chunks_exact(k).zip(y.chunks_exact_mut(n)) {
        #[allow(unused_mut)]
        let mut done = 0;
        #[cfg(target_arch = "riscv32")]
        {
            done = wide_sets::<O, 16>(l, xr, yr, done, super::linear_rv32::dot_4blocks);
            done = wide_sets::<O, 8>(l, xr, yr, done, super::linear_rv32::dot_2blocks);
        }
        #[cfg(picoformer_v7m)]
        {
            done = wide_sets::<O, 8>(l, xr, yr, done, super::linear_v7m::dot_2blocks);
        }
        let (w_rest, b_rest, rq_rest) = (l.w.get(done * k..).unwrap_or(&[]), l.bias.get(done..).unwrap_or(&[]), l.rq.get(done..).unwrap_or(&[]));
        let blocks = w_rest.chunks_exact(4 * k).zip(b_rest.chunks_exact(4)).zip(rq_rest.chunks_exact(4));
        for (((w4, b4), rq4), y4) in blocks.zip(yr.get_mut(done..).unwrap_or(&mut []).chunks_exact_mut(4)) {
            let mut acc = [0i32; 4];
            for (a, &b) in acc.iter_mut().zip(b4) {
                *a = b;
            }
            dot_block4(w4, xr, &mut acc);
            for ((yo, a), rq) in y4.iter_mut().zip(acc).zip(rq4) {
                *yo = O::requant(*rq, a);
            }
        }
    }
}

/// Output channels `done..` of one row in sets of `W` (`W / 4` consecutive Block4 blocks),
/// through `dot`, as many sets as fit; returns the channels done.
#[cfg(any(target_arch = "riscv32", picoformer_v7m))]
#[inline(always)]
fn wide_sets<O: Activation, const W: usize>(l: &Linear<'_>, xr: &[i16], yr: &mut [O], done: usize, dot: fn(&[i8], &[i16], usize, &mut [i32; W])) -> usize {
    let k = l.k;
    let (Some(w), Some(bias), Some(rq), Some(y)) = (l.w.get(done * k..), l.bias.get(done..), l.rq.get(done..), yr.get_mut(done..)) else {
        return done;
    };
    let mut sets = 0;
    for (((ws, bs), rqs), ys) in w.chunks_exact(W * k).zip(bias.chunks_exact(W)).zip(rq.chunks_exact(W)).zip(y.chunks_exact_mut(W)) {
        let mut acc = [0i32; W];
        acc.copy_from_slice(bs);
        dot(ws, xr, k, &mut acc);
        requant_into(&acc, rqs, ys);
        sets += 1;
    }
    done + W * sets
}

/// `y[c] = requant(rq[c], acc[c])`: one loop, not unrolled per call site (code size).
#[cfg(any(target_arch = "riscv32", picoformer_v7m))]
#[inline(never)]
fn requant_into<O: Activation>(acc: &[i32], rq: &[Requant], y: &mut [O]) {
    for ((yo, &a), rq) in y.iter_mut().zip(acc).zip(rq) {
        *yo = O::requant(*rq, a);
    }
}

/// Many rows on Cortex-M4/M7/M33: per block of 4 channels and chunk of [`ROW_CHUNK`] rows, widen
/// each [`super::linear_dsp::EXPAND_K`]-input slice of the weights to int16 once, then run
/// every row over it. Bit-exact with [`linear_ref`] (same products, wrapping sums).
#[cfg(picoformer_dsp)]
fn linear_block4_batched<O: Activation>(l: &Linear<'_>, x: &[i16], y: &mut [O]) {
    use super::linear_dsp::{dot_expanded, expand, Expanded, EXPAND_K};
    const ROW_CHUNK: usize = 16;
    let (k, n) = (l.k, l.n());
    let rows = (x.len() / k).min(y.len() / n);
    let mut e = Expanded([0; 4 * EXPAND_K]);
    let blocks = l.w.chunks_exact(4 * k).zip(l.bias.chunks_exact(4)).zip(l.rq.chunks_exact(4));
    for (b, ((w4, b4), rq4)) in blocks.enumerate() {
        let mut r0 = 0;
        while r0 < rows {
            let rc = (rows - r0).min(ROW_CHUNK);
            let mut acc = [[0i32; 4]; ROW_CHUNK];
            for a in acc.iter_mut().take(rc) {
                a.copy_from_slice(b4);
            }
            for (c, wc) in w4.chunks(4 * EXPAND_K).enumerate() {
                let groups = expand(wc, &mut e);
                for (r, a) in acc.iter_mut().take(rc).enumerate() {
                    let start = (r0 + r) * k + c * EXPAND_K;
                    dot_expanded(&e, groups, x.get(start..start + 4 * groups).unwrap_or(&[]), a);
                }
            }
            for (r, a) in acc.iter().take(rc).enumerate() {
                let at = (r0 + r) * n + 4 * b;
                if let Some(y4) = y.get_mut(at..at + 4) {
                    for ((yo, &v), rq) in y4.iter_mut().zip(a).zip(rq4) {
                        *yo = O::requant(*rq, v);
                    }
                }
            }
            r0 += rc;
        }
    }
}

/// `acc[r] += Σ_j w[r, j] · x[j]` for one Block4 block (`w`: `4·k` bytes, `x`: `k` values).
#[inline(always)]
fn dot_block4(w: &[i8], x: &[i16], acc: &mut [i32; 4]) {
    #[cfg(picoformer_dsp)]
    {
        super::linear_dsp::dot_block4(w, x, acc)
    }
    #[cfg(not(picoformer_dsp))]
    {
        #[cfg(picoformer_v6m)]
        if super::linear_v6m::dot_block4(w, x, acc) {
            return;
        }
        dot_block4_portable(w, x, acc)
    }
}

/// The portable inner loop of [`linear_block4`].
#[inline(always)]
pub fn dot_block4_portable(w: &[i8], x: &[i16], acc: &mut [i32; 4]) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        // 2 rows, k = 3, n = 2
        let w = [1i8, 2, 3, -1, 0, 127];
        let bias = [10i32, -5];
        let one = Requant::from_real(1.0);
        let half = Requant::from_real(0.5);
        let rq = [one, half];
        let l = Linear { w: &w, layout: Layout::RowMajor, bias: &bias, rq: &rq, k: 3, fast_rq: false };
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
        let l = Linear { w: &w, layout: Layout::RowMajor, bias: &bias, rq: &rq, k: 4, fast_rq: false };
        let mut y = [0i8; 2];
        l.forward(&[1, 0, 0, 0, -1, -1, 0, 0], &mut y);
        assert_eq!(y, [127, -128]);
        let mut y16 = [0i16; 2];
        l.forward(&[i16::MAX; 8].map(|v| v), &mut y16);
        assert_eq!(y16, [i16::MAX, i16::MAX]);
        l.forward(&[i16::MIN; 8], &mut y16);
        assert_eq!(y16, [i16::MIN, i16::MIN]);
    }

    /// Random shapes (including n % 4 != 0), weights, inputs at both extremes and scales:
    /// the fast path equals the reference bit for bit.
    #[test]
    fn fast_path_is_bit_exact() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for _ in 0..200 {
            let k = if next() % 2 == 0 { 4 * (1 + (next() % 40) as usize) } else { 1 + (next() % 70) as usize };
            let n = if next() % 2 == 0 { 4 * (1 + (next() % 8) as usize) } else { 1 + (next() % 23) as usize };
            let rows = 1 + (next() % 4) as usize;
            let w: Vec<i8> = (0..n * k).map(|_| next() as i8).collect();
            let bias: Vec<i32> = (0..n).map(|_| (next() as i32) >> (next() % 32)).collect();
            let rq: Vec<Requant> = (0..n).map(|_| Requant::from_real(((next() % 1000) as f64 + 1.0) * 10f64.powi(-((next() % 8) as i32)))).collect();
            let x: Vec<i16> = (0..rows * k).map(|_| match next() % 4 { 0 => i16::MAX, 1 => i16::MIN, _ => next() as i16 }).collect();
            let l = Linear { w: &w, layout: Layout::RowMajor, bias: &bias, rq: &rq, k, fast_rq: false };
            let (mut a, mut b) = (vec![0i16; rows * n], vec![0i16; rows * n]);
            linear_ref(&l, &x, &mut a);
            linear_4rows(&l, &x, &mut b);
            assert_eq!(a, b);
            let (mut a, mut b) = (vec![0i32; rows * n], vec![0i32; rows * n]);
            linear_ref(&l, &x, &mut a);
            linear_4rows(&l, &x, &mut b);
            assert_eq!(a, b);
            // the same matrix in Block4, when the shape allows it
            if n % 4 == 0 && k % 4 == 0 {
                let mut wb = vec![0i8; n * k];
                for o in 0..n {
                    for j in 0..k {
                        wb[Layout::Block4.index(o, j, k)] = w[o * k + j];
                    }
                }
                let lb = Linear { w: &wb, layout: Layout::Block4, bias: &bias, rq: &rq, k, fast_rq: rq.iter().all(|r| r.shift >= 33) };
                let mut c = vec![0i32; rows * n];
                linear_ref(&lb, &x, &mut c);
                assert_eq!(a, c);
                linear_block4(&lb, &x, &mut c);
                assert_eq!(a, c);
            }
        }
    }

    #[test]
    fn short_slices_do_not_panic() {
        let l = Linear { w: &[1; 5], layout: Layout::RowMajor, bias: &[0; 3], rq: &[Requant::default(); 1], k: 2, fast_rq: false };
        let mut y = [0i8; 1];
        l.forward(&[1; 3], &mut y);
        let l0 = Linear { w: &[], layout: Layout::Block4, bias: &[], rq: &[], k: 0, fast_rq: true };
        l0.forward::<i8>(&[], &mut []);
    }
}
