//! Integer softmax over a row of `i32` scores, to `u8` probabilities in units of 1/256.
//!
//! With `m = max(scores)`, each score becomes a base-2 exponent in Q6 (1/64 steps):
//!
//! ```text
//! t_j = rq(m - s_j)                          rq = s_score · log2(e) · 64, t_j ≥ 0
//! e_j = EXP2_Q15[t_j mod 64] >> (t_j / 64)   2^(-t_j/64) in Q15, 0 once t_j ≥ 16·64
//! p_j = min(255, (e_j · ⌊2^32 / Σe⌋ + 2^23) >> 24)
//! ```
//!
//! The largest score always gets `e = 2^15`, so `Σe ≥ 2^15` and nothing divides by zero. An empty
//! row (every key masked) has no probabilities: the caller writes zeros, and attention over it
//! yields a zero context. Exact for any row length up to 2^16 and any score range (the
//! difference `m - s_j` is taken in 64 bits).

use crate::quant::{mul_wide_u32, Requant};

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

/// Exponents at or beyond `16 · 64` give `e = 0`.
#[cfg(test)]
const T_LIMIT: u64 = 16 * 64;

/// `2^(-t/64)` in Q15 for a Q6 exponent `t ≥ 0`.
#[inline(always)]
pub fn exp2_neg_q15(t: u64) -> u32 {
    // t.min(1023) < 1024 always; `get` keeps the function free of a bounds panic path
    EXP2_NEG_Q15.get(t.min(1023) as usize).copied().unwrap_or(0) as u32
}

/// Softmax of `scores` into `p`, over the shorter of the two. `rq` maps a score difference to
/// the Q6 base-2 exponent, see the module doc. `scores` is scratch: it is left holding the
/// exponentials `e_j`, so each is computed once.
///
/// On Cortex-M4/M7/M33 (`picoformer_dsp`) rows with a shift in `33..=62` (every converted model's)
/// run in assembly ([`super::softmax_dsp`]), bit-exact with [`softmax_u8_ref`].
pub fn softmax_u8(scores: &mut [i32], rq: Requant, p: &mut [u8]) {
    #[cfg(picoformer_dsp)]
    if (33..=62).contains(&rq.shift) {
        super::softmax_dsp::softmax_u8(scores, rq, p);
        return;
    }
    softmax_u8_ref(scores, rq, p);
}

/// Whether [`softmax_u8`] has a fast path on this target (else it is [`softmax_u8_ref`]).
pub const FAST_PATH: bool = cfg!(picoformer_dsp);

/// The portable softmax: [`softmax_u8`] on every core without the DSP path, and the
/// reference the DSP path is checked against.
pub fn softmax_u8_ref(scores: &mut [i32], rq: Requant, p: &mut [u8]) {
    let n = scores.len().min(p.len());
    let (Some(scores), Some(p)) = (scores.get_mut(..n), p.get_mut(..n)) else {
        return;
    };
    if scores.is_empty() {
        return;
    }
    let m = scores.iter().fold(i32::MIN, |a, &b| a.max(b));
    let mut sum: u32 = 0;
    if (33..=62).contains(&rq.shift) {
        // the 32-bit form of `exponent`, with its constants hoisted out of the loop
        let (mult, r, s2) = (rq.mult.max(0) as u32, 1u32 << (rq.shift - 33), rq.shift - 32);
        for s in scores.iter_mut() {
            let hi = (mul_wide_u32(m.wrapping_sub(*s) as u32, mult) >> 32) as u32;
            let e = exp2_neg_q15(((hi + r) >> s2) as u64);
            *s = e as i32;
            sum = sum.wrapping_add(e);
        }
    } else {
        for s in scores.iter_mut() {
            let e = exp2_neg_q15(exponent(m, *s, rq));
            *s = e as i32;
            sum = sum.wrapping_add(e);
        }
    }
    // Σe ≥ 2^15 (the max has e = 2^15), so recip ≤ 2^17 and e · recip ≤ 2^32. Capping recip at
    // 2^17 - 1 keeps the product in 32 bits and changes nothing: recip = 2^17 only when Σe = 2^15,
    // i.e. one e = 2^15 (p = 256 either way, clamped to 255) and every other e = 0. Then
    // (P + 2^23) >> 24 == ((P >> 1) + 2^22) >> 23 without overflow.
    let recip = recip_2_32(sum).min(RECIP_CAP);
    for (pj, &e) in p.iter_mut().zip(scores.iter()) {
        let prod = (e as u32).wrapping_mul(recip);
        *pj = (((prod >> 1) + (1 << 22)) >> 23).min(255) as u8;
    }
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

/// `rq(m - s)` as a non-negative Q6 exponent: `(diff · mult + 2^(shift-1)) >> shift` with
/// `diff = m - s < 2^32`. For `shift ≥ 33` (every realistic attention scale) it takes the high
/// word of the product and one 32-bit add and shift, which is exact (module `quant`).
#[inline(always)]
fn exponent(m: i32, s: i32, rq: Requant) -> u64 {
    let diff = m.wrapping_sub(s) as u32; // m ≥ s
    let mult = rq.mult.max(0) as u32; // < 2^31, so diff · mult < 2^63
    let shift = rq.shift;
    if (33..=62).contains(&shift) {
        let hi = ((diff as u64 * mult as u64) >> 32) as u32; // < 2^31
        ((hi + (1 << (shift - 33))) >> (shift - 32)) as u64
    } else {
        let shift = (shift & 63) as u32;
        (diff as u64 * mult as u64 + ((1u64 << shift) >> 1)) >> shift
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1/64 per score unit: a difference of 64 halves the weight.
    fn unit() -> Requant {
        Requant::from_real(1.0)
    }

    #[test]
    fn uniform_row() {
        let mut p = [0u8; 4];
        softmax_u8(&mut [7, 7, 7, 7], unit(), &mut p);
        assert_eq!(p, [64; 4]);
    }

    #[test]
    fn halves_and_peaks() {
        let mut p = [0u8; 2];
        // exponents 0 and 64: weights 1 and 1/2 -> 2/3, 1/3
        softmax_u8(&mut [64, 0], unit(), &mut p);
        assert_eq!(p, [171, 85]);
        // a single element is certain: 256 saturates to 255
        let mut p1 = [0u8; 1];
        softmax_u8(&mut [-5], unit(), &mut p1);
        assert_eq!(p1, [255]);
        // far below the max: exactly zero
        softmax_u8(&mut [i32::MAX, i32::MIN], unit(), &mut p);
        assert_eq!(p, [255, 0]);
    }

    #[test]
    fn long_near_uniform_rows() {
        // CMSIS-NN's arm_softmax_s8 goes wrong on long near-uniform rows. Here 1/1000 is below
        // the u8 resolution (1/256) and rounds to 0, consistently ...
        let mut s = [3i32; 1000];
        let mut p = [9u8; 1000];
        softmax_u8(&mut s, unit(), &mut p);
        assert!(p.iter().all(|&v| v == 0));
        // ... while 1/100 is 2.56/256 and rounds to 3.
        let mut s = [3i32; 100];
        let mut p = [0u8; 100];
        softmax_u8(&mut s, unit(), &mut p);
        assert!(p.iter().all(|&v| v == 3)); // ... and 2.56 rounds to 3
        // One score 64 units above 99 others: 2 / 101 of the mass -> 5, the rest 1/101 -> 3.
        let mut s = [0i32; 100];
        s[42] = 64;
        softmax_u8(&mut s, unit(), &mut p);
        assert_eq!(p[42], 5);
        assert_eq!(p.iter().filter(|&&v| v == 3).count(), 99);
    }

    #[test]
    fn power_of_two_sum_takes_the_exact_reciprocal() {
        // e = 2^15, 2^14, ..., 2^7, 2^7 (one Q6 halving per 4096 score units): Σe = 2^16, and
        // 2^7 · 2^32 / 2^16 is exactly half of 2^24, so p rounds up to 1 (0 with 2^32 - 1)
        let mut s: Vec<i32> = (0..10).map(|j: i32| -4096 * j.min(8)).collect();
        let mut p = [0u8; 10];
        softmax_u8(&mut s, Requant { mult: 1 << 30, shift: 36 }, &mut p);
        assert_eq!(p, [128, 64, 32, 16, 8, 4, 2, 1, 1, 1]);
        assert_eq!(s, [32768, 16384, 8192, 4096, 2048, 1024, 512, 256, 128, 128]);
    }

    #[test]
    fn empty_row_is_defined() {
        let mut p: [u8; 0] = [];
        softmax_u8(&mut [], unit(), &mut p);
    }

    /// The module doc's formula, in 64 bits, element by element.
    fn softmax_doc(scores: &[i32], rq: Requant) -> Vec<u8> {
        let m = *scores.iter().max().unwrap() as i64;
        let t = |s: i32| ((m - s as i64) as u64 * rq.mult as u64 + ((1u64 << rq.shift) >> 1)) >> rq.shift;
        let e = |s: i32| if t(s) >= 1024 { 0 } else { (EXP2_Q15[(t(s) % 64) as usize] as u64) >> (t(s) / 64) };
        let sum: u64 = scores.iter().map(|&s| e(s)).sum();
        let recip = (1u64 << 32) / sum;
        scores.iter().map(|&s| ((e(s) * recip + (1 << 23)) >> 24).min(255) as u8).collect()
    }

    #[test]
    fn matches_the_documented_formula() {
        let mut x = 0xdead_beef_cafe_f00du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for trial in 0..20_000 {
            let n = 1 + (next() % 40) as usize;
            let spread = next() % 31;
            let mut s: Vec<i32> = (0..n).map(|_| (next() as i32) >> spread).collect();
            if trial % 5 == 0 {
                s.iter_mut().for_each(|v| *v = 7); // uniform
            }
            let rq = Requant { mult: (1 << 30) | (next() as i32 & 0x3fff_ffff), shift: 20 + (next() % 43) as i32 };
            let want = softmax_doc(&s, rq);
            let mut p = vec![0u8; n];
            softmax_u8(&mut s, rq, &mut p);
            assert_eq!(p, want, "trial {trial}");
        }
    }

    #[test]
    fn recip_is_exact() {
        for d in (2u32..100_000).chain([1 << 15, 1 << 16, (1 << 31) - 1, 1 << 31, u32::MAX]) {
            assert_eq!(recip_2_32(d) as u64, (1u64 << 32) / d as u64, "{d}");
        }
    }

    /// The 32-bit exponent path equals the 64-bit definition.
    #[test]
    fn exponent_fast_path_is_exact() {
        let mut x = 0x0123_4567_89ab_cdefu64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..100_000 {
            let (m, s) = (next() as i32, next() as i32);
            let (m, s) = (m.max(s), m.min(s));
            let rq = Requant { mult: (1 << 30) | (next() as i32 & 0x3fff_ffff), shift: 1 + (next() % 62) as i32 };
            let diff = (m as i64 - s as i64) as u64;
            let want = (diff * rq.mult as u64 + ((1u64 << rq.shift) >> 1)) >> rq.shift;
            assert_eq!(exponent(m, s, rq), want, "{m} {s} {rq:?}");
        }
    }

    #[test]
    fn exp_table_is_monotone() {
        let mut prev = u32::MAX;
        for t in 0..T_LIMIT + 10 {
            let e = exp2_neg_q15(t);
            assert!(e <= prev);
            prev = e;
        }
        assert_eq!(exp2_neg_q15(0), 32768);
        assert_eq!(exp2_neg_q15(64), 16384);
        assert_eq!(exp2_neg_q15(T_LIMIT), 0);
    }
}
