//! The base-2 exponential table and the reciprocal the softmax kernels share.

use crate::quant::Requant;

/// `round(2^15 · 2^(-f/64))` for `f` in `0..64`.
pub const EXP2_Q15: [u16; 64] = [
    32768, 32415, 32066, 31720, 31379, 31041, 30706, 30376, 30048, 29725, 29405, 29088, 28774,
    28464, 28158, 27855, 27554, 27258, 26964, 26674, 26386, 26102, 25821, 25543, 25268, 24995,
    24726, 24460, 24196, 23936, 23678, 23423, 23170, 22921, 22674, 22430, 22188, 21949, 21713,
    21479, 21247, 21019, 20792, 20568, 20347, 20127, 19911, 19696, 19484, 19274, 19066, 18861,
    18658, 18457, 18258, 18061, 17867, 17674, 17484, 17296, 17109, 16925, 16743, 16562,
];

/// `2^(-t/64)` in Q15 for every Q6 exponent `t` in `0..1024`: `EXP2_Q15[t % 64] >> (t / 64)`,
/// so one load replaces the split and the shift. Its last entries are already 0 (from
/// `t = 961`), so any `t ≥ 1024` reads entry 1023. 2 KiB of flash.
#[allow(clippy::indexing_slicing)] // evaluated at compile time: a bad index fails the build
pub static EXP2_NEG_Q15: [u16; 1024] = {
    let mut t = [0u16; 1024];
    let mut i = 0;
    while i < 1024 {
        t[i] = EXP2_Q15[i % 64] >> (i / 64);
        i += 1;
    }
    t
};

/// `2^(-t/64)` in Q15 for a Q6 exponent `t ≥ 0`.
#[inline(always)]
pub fn exp2_neg_q15(t: u64) -> u32 {
    // t.min(1023) < 1024 always; `get` keeps the function free of a bounds panic path
    EXP2_NEG_Q15.get(t.min(1023) as usize).copied().unwrap_or(0) as u32
}

/// `rq(m - s)` for `m ≥ s`: the difference of two scores as a non-negative base-2 exponent,
/// `(diff · mult + 2^(shift-1)) >> shift` in 64 bits (`diff < 2^32`, `mult < 2^31`).
#[inline(always)]
pub fn exponent(m: i32, s: i32, rq: Requant) -> u64 {
    let diff = (m as i64 - s as i64) as u64;
    let shift = (rq.shift & 63) as u32;
    (diff * rq.mult.max(0) as u64 + ((1u64 << shift) >> 1)) >> shift
}

/// The largest reciprocal the normalization uses: `e · recip` stays below 2^32.
pub const RECIP_CAP: u32 = (1 << 17) - 1;

/// `⌊2^32 / d⌋` for `d ≥ 2` with one 32-bit division (`UDIV`) instead of a 64-bit one:
/// `2^32 = (2^32 - 1) + 1`, so the quotient of `2^32 - 1` is one short exactly when its
/// remainder is `d - 1`. `d ≤ 1` gives `2^32 - 1`.
#[inline(always)]
pub fn recip_2_32(d: u32) -> u32 {
    if d <= 1 {
        return u32::MAX;
    }
    let q = u32::MAX / d;
    let r = u32::MAX - q * d;
    q + (r == d - 1) as u32
}
