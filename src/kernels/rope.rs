//! Rotary positions (RoPE), the Llama "rotate half" layout, from `i16` projections to `i8`
//! queries or keys.
//!
//! Within each head of `d_head` values, position `p` and `i < d_head / 2`:
//!
//! ```text
//! y[i]          = rq(x[i] · cos[p, i] − x[i + h] · sin[p, i])        h = d_head / 2
//! y[i + h]      = rq(x[i + h] · cos[p, i] + x[i] · sin[p, i])
//! ```
//!
//! `cos` and `sin` are `(max_len, d_head / 2)` `i16` tables in Q15 (`round(2^15 · cos θ)`,
//! clamped to `±32767`) from the converter, `θ = p · base^(−2i/d_head)`. The products are below
//! 2^30 and their sum below 2^31, so the `i32` sum is exact; `rq` carries `2^-15`, the input's
//! scale and the output's.

use crate::quant::{Activation, Requant};

/// The rotary tables, as views into the blob.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rope<'a> {
    /// `(max_len, half)` Q15.
    pub cos: &'a [i16],
    /// `(max_len, half)` Q15.
    pub sin: &'a [i16],
    /// `d_head / 2`.
    pub half: usize,
}

impl Rope<'_> {
    /// Rotate `rows = x.len() / (heads · 2·half)` rows at positions `pos0..` into `y`. Rows past
    /// the table are left untouched (the model never asks for them).
    pub fn apply(&self, x: &[i16], pos0: usize, heads: usize, rq: Requant, y: &mut [i8]) {
        let h = self.half;
        let width = heads * 2 * h;
        if h == 0 || width == 0 {
            return;
        }
        for (r, (xr, yr)) in x.chunks_exact(width).zip(y.chunks_exact_mut(width)).enumerate() {
            let p = pos0 + r;
            let (Some(cos), Some(sin)) = (self.cos.get(p * h..(p + 1) * h), self.sin.get(p * h..(p + 1) * h)) else {
                return;
            };
            for (xh, yh) in xr.chunks_exact(2 * h).zip(yr.chunks_exact_mut(2 * h)) {
                let (x1, x2) = xh.split_at(h);
                let (y1, y2) = yh.split_at_mut(h);
                for (((((a, b), c), s), o1), o2) in x1.iter().zip(x2).zip(cos).zip(sin).zip(y1.iter_mut()).zip(y2.iter_mut()) {
                    let (a, b, c, s) = (*a as i32, *b as i32, *c as i32, *s as i32);
                    *o1 = i8::requant(rq, a * c - b * s);
                    *o2 = i8::requant(rq, b * c + a * s);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Position 0 (cos 1, sin 0) only rescales; a quarter turn swaps the halves with a sign.
    #[test]
    fn rotates_the_halves() {
        // one head of 4: half = 2; rows at positions 0 and 1
        let cos = [32767i16, 32767, 0, 0];
        let sin = [0i16, 0, 32767, 32767];
        let rope = Rope { cos: &cos, sin: &sin, half: 2 };
        // rq = 2^-15 (times 32767/32768 ≈ 1)
        let rq = Requant::from_real(1.0 / 32768.0);
        let x = [10i16, -20, 30, 40, 10, -20, 30, 40];
        let mut y = [0i8; 8];
        rope.apply(&x, 0, 1, rq, &mut y);
        assert_eq!(y[..4], [10, -20, 30, 40]);
        // θ = 90°: y[i] = -x[i+h], y[i+h] = x[i]
        assert_eq!(y[4..], [-30, -40, 10, -20]);
        // saturates to i8
        let mut y2 = [0i8; 4];
        rope.apply(&[1000, 0, 0, 0], 0, 1, rq, &mut y2);
        assert_eq!(y2, [127, 0, 0, 0]);
    }
}
