//! The portable LayerNorm, with hooks for a core's row statistics and output pass. Its own
//! output pass uses 32-bit operands where the values allow (`SMULL`-sized products and the fused
//! requantization's high-word identity). Bit-exact with [`super::reference::layer_norm_ref`].

use super::params::{inv_std, mean, LayerNorm, RmsNorm};
use crate::quant::{mul_wide, sat_i16, Requant};

/// Stack scratch: none.
#[cfg_attr(any(picoformer_core = "dsp", picoformer_core = "mve", picoformer_core = "x86"), allow(dead_code))] // the interface of cores without a file
pub const STACK_BYTES: usize = 0;

/// A row's `(Σx, Σx²)` from a core's fast path, if it takes the row.
pub type Stats = fn(&[i16]) -> Option<(i32, u64)>;

/// A core's output pass over one row (`x`, `y`, `ln`, `mean`, `inv`), if it takes the row.
pub type Output = fn(&[i16], &mut [i16], &LayerNorm<'_>, i64, i64) -> bool;

/// LayerNorm on a core without a fast path.
#[cfg_attr(any(picoformer_core = "dsp", picoformer_core = "mve"), allow(dead_code))]
pub fn layer_norm(ln: &LayerNorm<'_>, x: &[i16], y: &mut [i16]) {
    layer_norm_with(ln, x, y, |_| None, |_, _, _, _, _| false)
}

/// The row loop, with a core's `stats` and `output` tried first.
#[inline(always)]
pub fn layer_norm_with(ln: &LayerNorm<'_>, x: &[i16], y: &mut [i16], stats: Stats, output: Output) {
    let d = ln.gain.len();
    if d == 0 {
        return;
    }
    let n = d as i64;
    let sh = (ln.shift & 63) as u32;
    let round = (1i64 << sh) >> 1;
    for (xr, yr) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
        let (mean, sq) = match stats(xr) {
            // Σ(x - mean)² = Σx² - 2·mean·Σx + d·mean², exactly (every term < 2^63)
            Some((sum, sq_raw)) => {
                let mean = mean(sum, d);
                (mean, (sq_raw as i64 - 2 * mean * sum as i64 + n * mean * mean) as u64)
            }
            None => {
                // |Σx| < 2^15 · 4096: 32 bits suffice, and SDIV does the division
                let sum: i32 = xr.iter().map(|&v| v as i32).sum();
                let mean = mean(sum, d);
                let sq: u64 = xr.iter().map(|&v| (v as i64 - mean).unsigned_abs().pow(2)).sum();
                (mean, sq)
            }
        };
        let inv = inv_std(sq, d, ln.eps);
        if output(xr, yr, ln, mean, inv) {
            continue;
        }
        let fused = Requant { mult: 1 << 30, shift: ln.shift }.is_fused();
        if inv < 1 << 31 && fused && (i16::MIN as i64..=i16::MAX as i64).contains(&mean) {
            // the same values with 32-bit operands: xc·inv in one SMULL, and
            // (z·g + 2^(sh-1)) >> sh == ((z·g >> 32) + 2^(sh-33)) >> (sh-32) (module quant)
            let (inv, mean) = (inv as i32, mean as i32);
            let (r, s2) = (1i32 << (ln.shift - 33), ln.shift - 32);
            for (((yj, &xj), &g), &b) in yr.iter_mut().zip(xr).zip(ln.gain).zip(ln.bias) {
                let z = (mul_wide(xj as i32 - mean, inv) >> 16) as i32; // |xc·inv| < 2^47
                let hi = (mul_wide(z, g) >> 32) as i32; // |hi| < 2^30, + r < 2^31
                // saturating (QADD): past i32 it clamps to the same i16 bound
                *yj = ((hi + r) >> s2).saturating_add(b).clamp(i16::MIN as i32, i16::MAX as i32) as i16;
            }
            continue;
        }
        for (((yj, &xj), &g), &b) in yr.iter_mut().zip(xr).zip(ln.gain).zip(ln.bias) {
            let z = ((xj as i64 - mean) * inv) >> 16;
            *yj = sat_i16(((z * g as i64 + round) >> sh) + b as i64);
        }
    }
}

/// RMSNorm on a core without a fast path.
#[cfg_attr(any(picoformer_core = "dsp", picoformer_core = "mve", picoformer_core = "x86"), allow(dead_code))]
pub fn rms_norm(rms: &RmsNorm<'_>, x: &[i16], y: &mut [i16]) {
    rms_norm_with(rms, x, y, |_| None)
}

/// The RMSNorm row loop, with a core's `stats` tried first for `Σx²`; the output pass in 32-bit
/// operands when the values allow, as LayerNorm's.
#[inline(always)]
pub fn rms_norm_with(rms: &RmsNorm<'_>, x: &[i16], y: &mut [i16], stats: Stats) {
    let d = rms.gain.len();
    if d == 0 {
        return;
    }
    let sh = (rms.shift & 63) as u32;
    let round = (1i64 << sh) >> 1;
    let fused = Requant { mult: 1 << 30, shift: rms.shift }.is_fused();
    for (xr, yr) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
        let sq = match stats(xr) {
            Some((_, sq)) => sq,
            None => xr.iter().map(|&v| (v as i32 * v as i32) as u32 as u64).sum(),
        };
        let inv = inv_std(sq, d, rms.eps);
        if inv < 1 << 31 && fused {
            let inv = inv as i32;
            let (r, s2) = (1i32 << (rms.shift - 33), rms.shift - 32);
            for ((yj, &xj), &g) in yr.iter_mut().zip(xr).zip(rms.gain) {
                let z = (mul_wide(xj as i32, inv) >> 16) as i32; // |x·inv| < 2^46
                let hi = (mul_wide(z, g) >> 32) as i32;
                *yj = ((hi + r) >> s2).clamp(i16::MIN as i32, i16::MAX as i32) as i16;
            }
            continue;
        }
        for ((yj, &xj), &g) in yr.iter_mut().zip(xr).zip(rms.gain) {
            let z = (xj as i64 * inv) >> 16;
            *yj = sat_i16((z * g as i64 + round) >> sh);
        }
    }
}
