//! Integer LayerNorm and RMSNorm over the last dimension: `i16 (rows, d)` in, `i16 (rows, d)`
//! out. RMSNorm is the same arithmetic with `mean = 0` and no bias (its `var` is the mean
//! square).
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
//!
//! Files: `params.rs` (the view and the row arithmetic), `reference.rs` (the formula, plain),
//! `portable.rs` (the row loop with a core's hooks), `dsp.rs` (Cortex-M4/M7/M33 statistics and
//! output pass), `mve.rs` (the same on Cortex-M55/M85), `x86.rs` (SSE4.1 / AVX / AVX2
//! statistics and output pass, chosen at run time). [`LayerNorm::forward`] picks the core's
//! file.

mod params;
mod portable;
mod reference;

#[cfg(picoformer_core = "dsp")]
mod dsp;
#[cfg(picoformer_core = "mve")]
mod mve;
#[cfg(picoformer_core = "x86")]
mod x86;

// This build's core (`build.rs`): one line per core with its own file.
#[cfg(picoformer_core = "dsp")]
use dsp as core_path;
#[cfg(picoformer_core = "mve")]
use mve as core_path;
#[cfg(not(any(picoformer_core = "dsp", picoformer_core = "mve", picoformer_core = "x86")))]
use portable as core_path;
#[cfg(picoformer_core = "x86")]
use x86 as core_path;

pub use params::{div_u64_small, isqrt_u64, LayerNorm, RmsNorm};
pub use reference::{layer_norm_ref, rms_norm_ref};

/// Bytes of stack LayerNorm uses beyond its registers, on this build's core.
pub const STACK_BYTES: usize = core_path::STACK_BYTES;

impl LayerNorm<'_> {
    /// Normalize each row of `x` (`(rows, d)`, `d = gain.len()`) into `y`, through this core's
    /// fast path; bit-exact with [`layer_norm_ref`].
    #[inline]
    pub fn forward(&self, x: &[i16], y: &mut [i16]) {
        core_path::layer_norm(self, x, y)
    }
}

impl RmsNorm<'_> {
    /// RMSNorm of each row of `x` (`(rows, d)`, `d = gain.len()`) into `y`, through this core's
    /// fast path; bit-exact with [`rms_norm_ref`].
    #[inline]
    pub fn forward(&self, x: &[i16], y: &mut [i16]) {
        core_path::rms_norm(self, x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::sat_i16;

    #[test]
    fn small_division_is_exact() {
        let mut s = 7u64;
        for _ in 0..if cfg!(miri) { 100 } else { 100_000 } {
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
        for trial in 0..if cfg!(miri) { 10 } else { 3000 } {
            let d = 1 + (next() % 64) as usize;
            let gain: Vec<i32> = (0..d).map(|_| (next() as i32) >> (next() % 8)).collect();
            let bias: Vec<i32> = (0..d).map(|_| (next() as i32) >> (12 + next() % 20)).collect();
            let scale = next() % 16;
            let x: Vec<i16> = (0..d).map(|_| if trial % 7 == 0 { i16::MAX - (next() % 2) as i16 } else { (next() as i16) >> scale }).collect();
            let shift = 20 + (next() % 43) as i32;
            let ln = LayerNorm { gain: &gain, bias: &bias, shift, eps: 1 + (next() % 50) as u32 };
            let mut fast = vec![0i16; d];
            ln.forward(&x, &mut fast);
            let mut plain = vec![0i16; d];
            layer_norm_ref(&ln, &x, &mut plain);
            assert_eq!(fast, plain, "trial {trial}");
            // the row loop with a core's statistics hook (Σx, Σx²), as the DSP cores take it
            let stats: portable::Stats = |x| Some((x.iter().map(|&v| v as i32).sum(), x.iter().map(|&v| (v as i64 * v as i64) as u64).sum()));
            let mut hooked = vec![0i16; d];
            portable::layer_norm_with(&ln, &x, &mut hooked, stats, |_, _, _, _, _| false);
            assert_eq!(hooked, plain, "trial {trial}");
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
