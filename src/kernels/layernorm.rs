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

use crate::quant::{mul_wide, sat_i16};

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
    ///
    /// On Cortex-M4/M7/M33 (`picoformer_dsp`) the row statistics and the output pass run in
    /// assembly where they can ([`super::layernorm_dsp`]); bit-exact with [`Self::forward_ref`].
    pub fn forward(&self, x: &[i16], y: &mut [i16]) {
        self.forward_with(FAST_PATH, x, y)
    }

    /// [`Self::forward`] with the portable loops only: the reference for the fast path.
    pub fn forward_ref(&self, x: &[i16], y: &mut [i16]) {
        self.forward_with(false, x, y)
    }

    #[inline(always)]
    fn forward_with(&self, fast: bool, x: &[i16], y: &mut [i16]) {
        let d = self.gain.len();
        if d == 0 {
            return;
        }
        let n = d as i64;
        let sh = (self.shift & 63) as u32;
        let round = (1i64 << sh) >> 1;
        for (xr, yr) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
            let (mean, sq) = match fast_stats(fast, xr) {
                // Σ(x - mean)² = Σx² - 2·mean·Σx + d·mean², exactly (every term < 2^63)
                Some((sum, sq_raw)) => {
                    let mean = (sum + d as i32 / 2).div_euclid(d as i32) as i64;
                    let sq = (sq_raw as i64 - 2 * mean * sum as i64 + n * mean * mean) as u64;
                    (mean, sq)
                }
                None => {
                    // |Σx| < 2^15 · 4096: 32 bits suffice, and SDIV does the division
                    let sum: i32 = xr.iter().map(|&v| v as i32).sum();
                    let mean = (sum + d as i32 / 2).div_euclid(d as i32) as i64;
                    let sq: u64 = xr
                        .iter()
                        .map(|&v| {
                            let c = (v as i64 - mean).unsigned_abs();
                            c * c
                        })
                        .sum();
                    (mean, sq)
                }
            };
            let var = div_u64_small(sq, n as u32) + self.eps.max(1) as u64;
            let std8 = isqrt_u64(var << 16).max(1);
            let inv = ((1u64 << 40) / std8) as i64;
            if fast && fast_output(xr, yr, self, mean, inv) {
                continue;
            }
            if inv < 1 << 31 && (33..=62).contains(&self.shift) && (i16::MIN as i64..=i16::MAX as i64).contains(&mean) {
                // the same values with 32-bit operands: xc·inv in one SMULL, and
                // (z·g + 2^(sh-1)) >> sh == ((z·g >> 32) + 2^(sh-33)) >> (sh-32) (module quant)
                let (inv, mean) = (inv as i32, mean as i32);
                let (r, s2) = (1i32 << (self.shift - 33), self.shift - 32);
                for (((yj, &xj), &g), &b) in yr.iter_mut().zip(xr).zip(self.gain).zip(self.bias) {
                    let z = (mul_wide(xj as i32 - mean, inv) >> 16) as i32; // |xc·inv| < 2^47
                    let hi = (mul_wide(z, g) >> 32) as i32; // |hi| < 2^30, + r < 2^31
                    // saturating (QADD): past i32 it clamps to the same i16 bound
                    *yj = ((hi + r) >> s2).saturating_add(b).clamp(i16::MIN as i32, i16::MAX as i32) as i16;
                }
                continue;
            }
            for (((yj, &xj), &g), &b) in yr.iter_mut().zip(xr).zip(self.gain).zip(self.bias) {
                let z = ((xj as i64 - mean) * inv) >> 16;
                *yj = sat_i16(((z * g as i64 + round) >> sh) + b as i64);
            }
        }
    }
}

/// Whether [`LayerNorm::forward`] has a fast path on this target (else it is the reference).
pub const FAST_PATH: bool = cfg!(picoformer_dsp);

/// `(Σx, Σx²)` of a row through the DSP path, if `fast` and the row takes it.
#[inline(always)]
fn fast_stats(fast: bool, xr: &[i16]) -> Option<(i32, u64)> {
    #[cfg(picoformer_dsp)]
    if fast {
        return super::layernorm_dsp::stats(xr);
    }
    let _ = (fast, xr);
    None
}

/// The output pass of a row through the DSP path, if it takes it (`false`: not done).
#[inline(always)]
fn fast_output(xr: &[i16], yr: &mut [i16], ln: &LayerNorm<'_>, mean: i64, inv: i64) -> bool {
    #[cfg(picoformer_dsp)]
    return super::layernorm_dsp::output(xr, yr, ln.gain, ln.bias, mean, inv, ln.shift);
    #[cfg(not(picoformer_dsp))]
    {
        let _ = (xr, yr, ln, mean, inv);
        false
    }
}

/// `⌊a / d⌋` for `d ≥ 1`: two 32-bit divisions (`UDIV`) when `a < 2^48` (a row's sum of
/// squares always is), long division in base 2^16; a 64-bit division otherwise.
#[inline]
pub fn div_u64_small(a: u64, d: u32) -> u64 {
    let d = d.max(1);
    if a >> 48 != 0 || d > 1 << 16 {
        return a / d as u64;
    }
    let hi = (a >> 16) as u32; // < 2^32
    let (q1, r1) = (hi / d, hi % d); // r1 < d ≤ 2^16
    let lo = (r1 << 16) | (a as u32 & 0xffff); // < 2^32
    ((q1 as u64) << 16) + (lo / d) as u64
}

/// `⌊sqrt(v)⌋`, bit by bit: exact, no division, no float.
pub fn isqrt_u64(v: u64) -> u64 {
    if v == 0 {
        return 0;
    }
    let mut rem = v;
    let mut root = 0u64;
    // the highest power of 4 not above v
    let mut bit = 1u64 << ((63 - v.leading_zeros()) & !1);
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
    fn small_division_is_exact() {
        let mut s = 7u64;
        for _ in 0..100_000 {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let a = s >> (s % 40);
            let d = (s >> 40) as u32 >> (s % 24);
            assert_eq!(div_u64_small(a, d), a / d.max(1) as u64, "{a} / {d}");
        }
        assert_eq!(div_u64_small((1 << 48) - 1, 1 << 16), ((1u64 << 48) - 1) >> 16);
    }

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

    /// The 32-bit path equals the 64-bit definition on random rows, gains and shifts.
    #[test]
    fn fast_path_is_exact() {
        let mut st = 0x5851_f42d_4c95_7f2du64;
        let mut next = move || {
            st ^= st << 13;
            st ^= st >> 7;
            st ^= st << 17;
            st
        };
        for trial in 0..3000 {
            let d = 1 + (next() % 64) as usize;
            let gain: Vec<i32> = (0..d).map(|_| (next() as i32) >> (next() % 8)).collect();
            let bias: Vec<i32> = (0..d).map(|_| (next() as i32) >> (12 + next() % 20)).collect();
            let scale = next() % 16;
            let x: Vec<i16> = (0..d).map(|_| if trial % 7 == 0 { i16::MAX - (next() % 2) as i16 } else { (next() as i16) >> scale }).collect();
            let shift = 20 + (next() % 43) as i32;
            let ln = LayerNorm { gain: &gain, bias: &bias, shift, eps: 1 + (next() % 50) as u32 };
            let mut fast = vec![0i16; d];
            ln.forward(&x, &mut fast);
            // the 64-bit definition, written out
            let n = d as i64;
            let sum: i64 = x.iter().map(|&v| v as i64).sum();
            let mean = (sum + n / 2).div_euclid(n);
            let sq: u64 = x.iter().map(|&v| ((v as i64 - mean).unsigned_abs()).pow(2)).sum();
            let var = sq / n as u64 + ln.eps as u64;
            let inv = ((1u64 << 40) / isqrt_u64(var << 16).max(1)) as i64;
            let want: Vec<i16> = x
                .iter()
                .zip(&gain)
                .zip(&bias)
                .map(|((&v, &g), &b)| {
                    let z = ((v as i64 - mean) * inv) >> 16;
                    sat_i16(((z * g as i64 + ((1i64 << shift) >> 1)) >> shift) + b as i64)
                })
                .collect();
            assert_eq!(fast, want, "trial {trial}");
        }
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
