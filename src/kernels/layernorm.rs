//! Integer LayerNorm over the last dimension: `i16 (rows, d)` in, `i16 (rows, d)` out.
//!
//! Per row, with `n = d`:
//!
//! ```text
//! mean  = ⌊(Σx + n/2) / n⌋                       i32
//! xc_j  = x_j - mean                             |xc| < 2^16
//! var   = ⌊Σ xc² / n⌋ + eps                       u64, eps ≥ 1 in input units²
//! std8  = ⌊sqrt(var · 2^16)⌋                      std · 2^8, ≥ 256
//! inv   = ⌊2^40 / std8⌋                          2^32 / std
//! z_j   = (xc_j · inv) >> 16                     normalized value in Q16
//! y_j   = sat_i16(((z_j · g_j + 2^(sh-1)) >> sh) + b_j)
//! ```
//!
//! `g_j = round(γ_j / s_y · 2^(sh-16))` and `b_j = round(β_j / s_y)` come from the host.

use crate::quant::sat_i16;

/// The parameters of one LayerNorm, as views into the blob.
#[derive(Debug, Clone, Copy, Default)]
pub struct LayerNorm<'a> {
    /// `(d,)` fixed-point gains, see the module doc.
    pub gain: &'a [i32],
    /// `(d,)` biases in output units.
    pub bias: &'a [i32],
    /// Right shift applied to `z · g`, `1..=62`.
    pub shift: i32,
    /// `ε / s_x²`, at least 1.
    pub eps: u32,
}

impl LayerNorm<'_> {
    /// Normalize each row of `x` (`(rows, d)`, `d = gain.len()`) into `y`.
    pub fn forward(&self, x: &[i16], y: &mut [i16]) {
        let d = self.gain.len();
        if d == 0 {
            return;
        }
        let n = d as i64;
        let sh = (self.shift & 63) as u32;
        let round = (1i64 << sh) >> 1;
        for (xr, yr) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
            let sum: i64 = xr.iter().map(|&v| v as i64).sum();
            let mean = (sum + n / 2).div_euclid(n);
            let sq: u64 = xr
                .iter()
                .map(|&v| {
                    let c = (v as i64 - mean).unsigned_abs();
                    c * c
                })
                .sum();
            let var = sq / n as u64 + self.eps.max(1) as u64;
            let std8 = isqrt_u64(var << 16).max(1);
            let inv = ((1u64 << 40) / std8) as i64;
            for (((yj, &xj), &g), &b) in yr.iter_mut().zip(xr).zip(self.gain).zip(self.bias) {
                let z = ((xj as i64 - mean) * inv) >> 16;
                *yj = sat_i16(((z * g as i64 + round) >> sh) + b as i64);
            }
        }
    }
}

/// `⌊sqrt(v)⌋`, bit by bit: exact, no division, no float.
pub fn isqrt_u64(v: u64) -> u64 {
    let mut rem = v;
    let mut root = 0u64;
    let mut bit = 1u64 << 62;
    while bit > v {
        bit >>= 2;
    }
    while bit != 0 {
        if rem >= root + bit {
            rem -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isqrt_exact() {
        for v in (0u64..5000).chain([u64::MAX, u64::MAX - 1, 1 << 62, (1 << 32) - 1]) {
            let r = isqrt_u64(v);
            assert!(r * r <= v, "{v}");
            assert!((r + 1).checked_mul(r + 1).map_or(true, |s| s > v), "{v}");
        }
    }

    /// γ = 1, β = 0, output scale 1/4096: y = 4096 · z.
    fn unit(d: usize) -> ([i32; 8], [i32; 8], i32) {
        assert!(d <= 8);
        // sh = 16 + 8 with g = 4096 · 2^8: y = z·g >> 24 = z_q16 · 4096 / 2^16
        ([4096 << 8; 8], [0; 8], 24)
    }

    #[test]
    fn normalizes_hand_computed() {
        let (g, b, sh) = unit(4);
        let ln = LayerNorm { gain: &g[..4], bias: &b[..4], shift: sh, eps: 1 };
        // x = [-3, -1, 1, 3]: mean 0, var = 5 (+1 eps) -> std = sqrt(6) = 2.449
        let mut y = [0i16; 4];
        ln.forward(&[-3, -1, 1, 3], &mut y);
        let want = [-3.0, -1.0, 1.0, 3.0].map(|v: f64| (v / 6f64.sqrt() * 4096.0).round() as i16);
        for (a, w) in y.iter().zip(want) {
            assert!((a - w).abs() <= 1, "{y:?} vs {want:?}");
        }
        assert_eq!(y[0], -y[3]);
    }

    #[test]
    fn constant_row_and_extremes() {
        let (g, b, sh) = unit(8);
        let ln = LayerNorm { gain: &g, bias: &b, shift: sh, eps: 1 };
        let mut y = [7i16; 8];
        ln.forward(&[i16::MAX; 8], &mut y);
        assert_eq!(y, [0; 8]);
        // Alternating extremes: z = ±1 exactly (var = 32767.5² ≫ eps).
        let x = [i16::MAX, i16::MIN, i16::MAX, i16::MIN, i16::MAX, i16::MIN, i16::MAX, i16::MIN];
        ln.forward(&x, &mut y);
        for (i, &v) in y.iter().enumerate() {
            let want = if i % 2 == 0 { 4096 } else { -4096 };
            assert!((v - want).abs() <= 1, "{y:?}");
        }
        // Huge gain saturates.
        let big = [i32::MAX; 8];
        let ln = LayerNorm { gain: &big, bias: &b, shift: 1, eps: u32::MAX };
        ln.forward(&x, &mut y);
        assert!(y.iter().all(|&v| v == i16::MAX || v == i16::MIN || v == 0));
    }

    #[test]
    fn bias_is_added() {
        let (g, _, sh) = unit(4);
        let b = [100, -100, 0, 32767];
        let ln = LayerNorm { gain: &g[..4], bias: &b, shift: sh, eps: 1 };
        let mut y = [0i16; 4];
        ln.forward(&[5, 5, 5, 5], &mut y);
        assert_eq!(y, [100, -100, 0, 32767]);
    }
}
