//! Residual add with requantization: `y = sat_i16((a·ma + b·mb + 2^(sh-1)) >> sh)`.
//!
//! `a` and `b` are `i16` tensors of equal shape in their own scales; `ma = s_a / s_y · 2^sh` and
//! `mb = s_b / s_y · 2^sh` share one shift so the sum is rounded once.

use crate::quant::sat_i16;

/// Scales of one residual add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResidualParams {
    pub ma: i32,
    pub mb: i32,
    /// `1..=62`.
    pub shift: i32,
}

/// `y = a + b` requantized; `y` may not alias, see [`add_in_place`] for `a += b`.
pub fn add(p: ResidualParams, a: &[i16], b: &[i16], y: &mut [i16]) {
    let sh = (p.shift & 63) as u32;
    let round = (1i64 << sh) >> 1;
    for ((yj, &aj), &bj) in y.iter_mut().zip(a).zip(b) {
        *yj = sat_i16((aj as i64 * p.ma as i64 + bj as i64 * p.mb as i64 + round) >> sh);
    }
}

/// `a = a + b` requantized.
pub fn add_in_place(p: ResidualParams, a: &mut [i16], b: &[i16]) {
    let sh = (p.shift & 63) as u32;
    let round = (1i64 << sh) >> 1;
    for (aj, &bj) in a.iter_mut().zip(b) {
        *aj = sat_i16((*aj as i64 * p.ma as i64 + bj as i64 * p.mb as i64 + round) >> sh);
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
