//! The plain reference of LayerNorm: the module's formula in 64 bits. The fast paths are
//! checked against it.

use super::params::{inv_std, mean, LayerNorm, RmsNorm};
use crate::quant::sat_i16;

/// Normalize each row of `x` (`(rows, d)`, `d = gain.len()`) into `y`.
pub fn layer_norm_ref(ln: &LayerNorm<'_>, x: &[i16], y: &mut [i16]) {
    let d = ln.gain.len();
    if d == 0 {
        return;
    }
    let sh = (ln.shift & 63) as u32;
    let round = (1i64 << sh) >> 1;
    for (xr, yr) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
        let sum: i32 = xr.iter().map(|&v| v as i32).sum();
        let mean = mean(sum, d);
        let sq: u64 = xr.iter().map(|&v| (v as i64 - mean).unsigned_abs().pow(2)).sum();
        let inv = inv_std(sq, d, ln.eps);
        for (((yj, &xj), &g), &b) in yr.iter_mut().zip(xr).zip(ln.gain).zip(ln.bias) {
            let z = ((xj as i64 - mean) * inv) >> 16;
            *yj = sat_i16(((z * g as i64 + round) >> sh) + b as i64);
        }
    }
}

/// RMSNorm of each row of `x` into `y`: the mean square `⌊Σx² / d⌋ + eps` in place of the
/// variance, no mean subtracted, no bias.
pub fn rms_norm_ref(rms: &RmsNorm<'_>, x: &[i16], y: &mut [i16]) {
    let d = rms.gain.len();
    if d == 0 {
        return;
    }
    let sh = (rms.shift & 63) as u32;
    let round = (1i64 << sh) >> 1;
    for (xr, yr) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
        let sq: u64 = xr.iter().map(|&v| (v as i64).unsigned_abs().pow(2)).sum();
        let inv = inv_std(sq, d, rms.eps);
        for ((yj, &xj), &g) in yr.iter_mut().zip(xr).zip(rms.gain) {
            let z = (xj as i64 * inv) >> 16;
            *yj = sat_i16((z * g as i64 + round) >> sh);
        }
    }
}
