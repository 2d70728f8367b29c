//! Residual add with requantization: `y = sat_i16((a·ma + b·mb + 2^(sh-1)) >> sh)`.
//!
//! `a` and `b` are `i16` tensors of equal shape in their own scales; `ma = s_a / s_y · 2^sh` and
//! `mb = s_b / s_y · 2^sh` share one shift so the sum is rounded once.
//!
//! Files: this one (the reference and the scalar loop), `x86.rs` (SSE4.1 / AVX / AVX2, chosen at
//! run time, for the shifts `16..=32` every converted model has). [`add`] and [`add_in_place`]
//! hand the elements to the core's path first; the scalar loop does the rest.

#[cfg(picoformer_core = "x86")]
mod x86;

use crate::quant::{mul_wide, sat_i16};

#[cfg(picoformer_core = "mve")]
mod mve;

/// Scales of one residual add (a blob record: three `i32`, in this order).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResidualParams {
    pub ma: i32,
    pub mb: i32,
    /// `1..=62`.
    pub shift: i32,
}

/// The plain reference: `y = sat_i16((a·ma + b·mb + 2^(sh-1)) >> sh)` in 64 bits.
pub fn add_ref(p: ResidualParams, a: &[i16], b: &[i16], y: &mut [i16]) {
    let sh = (p.shift & 63) as u32;
    for ((yj, &aj), &bj) in y.iter_mut().zip(a).zip(b) {
        *yj = sat_i16((aj as i64 * p.ma as i64 + bj as i64 * p.mb as i64 + ((1i64 << sh) >> 1)) >> sh);
    }
}

/// `y = a + b` requantized; `y` may not alias, see [`add_in_place`] for `a += b`. Bit-exact with
/// [`add_ref`].
pub fn add(p: ResidualParams, a: &[i16], b: &[i16], y: &mut [i16]) {
    #[cfg(picoformer_core = "mve")]
    if mve::add(p, a, b, y) {
        return;
    }
    #[cfg(picoformer_core = "x86")]
    let (a, b, y) = {
        let done = x86::add(p, a, b, y);
        (a.get(done..).unwrap_or(&[]), b.get(done..).unwrap_or(&[]), y.get_mut(done..).unwrap_or(&mut []))
    };
    let f = Add::new(p);
    for ((yj, &aj), &bj) in y.iter_mut().zip(a).zip(b) {
        *yj = f.apply(aj, bj);
    }
}

/// `a = a + b` requantized.
pub fn add_in_place(p: ResidualParams, a: &mut [i16], b: &[i16]) {
    #[cfg(picoformer_core = "mve")]
    if mve::add_in_place(p, a, b) {
        return;
    }
    #[cfg(picoformer_core = "x86")]
    let (a, b) = {
        let done = x86::add_in_place(p, a, b);
        (a.get_mut(done..).unwrap_or(&mut []), b.get(done..).unwrap_or(&[]))
    };
    let f = Add::new(p);
    for (aj, &bj) in a.iter_mut().zip(b) {
        *aj = f.apply(*aj, bj);
    }
}

/// One residual add, with the per-call constants hoisted.
#[derive(Clone, Copy)]
struct Add {
    p: ResidualParams,
    sh: u32,
    round: i64,
    /// `16 ≤ shift ≤ 32` (every converted model's): the result fits 32 bits, and its low word
    /// comes from the two words of the sum by 32-bit shifts.
    narrow: bool,
}

impl Add {
    #[inline(always)]
    fn new(p: ResidualParams) -> Add {
        let sh = (p.shift & 63) as u32;
        Add { p, sh, round: (1i64 << sh) >> 1, narrow: (16..=32).contains(&sh) }
    }

    /// `sat_i16((a·ma + b·mb + 2^(sh-1)) >> sh)`.
    #[inline(always)]
    fn apply(self, a: i16, b: i16) -> i16 {
        let t = mul_wide(a as i32, self.p.ma) + mul_wide(b as i32, self.p.mb) + self.round;
        if self.narrow {
            // |t| < 2^47 and sh ≥ 16, so t >> sh fits i32: its low word is the low word of
            // t >> sh, `(lo >> sh) | (hi << (32 - sh))` (the first shift split so sh = 32 works)
            let (lo, hi) = (t as u32, (t >> 32) as u32);
            let v = (((lo >> 1) >> (self.sh - 1)) | (hi << (32 - self.sh))) as i32;
            return v.clamp(i16::MIN as i32, i16::MAX as i32) as i16;
        }
        sat_i16(t >> self.sh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_with_scales_and_saturates() {
        // y = a/2 + b·3/4 with sh = 2: ma = 2, mb = 3
        let p = ResidualParams { ma: 2, mb: 3, shift: 2 };
        let mut y = [0i16; 4];
        add(p, &[4, -4, 1, 32767], &[4, 4, 0, 32767], &mut y);
        // 2+3 = 5; -2+3 = 1; (2 + 2)>>2 = 1 (0.5 rounds up); saturate
        assert_eq!(y, [5, 1, 1, 32767]);
        let mut a = [4i16, -4, -1, -32768];
        add_in_place(p, &mut a, &[4, 4, 0, -32768]);
        // (-2 + 2) >> 2 = 0 (-0.5 rounds up to 0)
        assert_eq!(a, [5, 1, 0, -32768]);
    }
}
