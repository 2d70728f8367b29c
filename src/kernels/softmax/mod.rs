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
//!
//! Files: `exp2.rs` (the table and reciprocal), `reference.rs` (the formula, plain), `portable.rs`
//! (cores without assembly), `dsp.rs` (Cortex-M4/M7/M33), `mve.rs` (Cortex-M55/M85), `x86.rs`
//! (SSE4.1 / AVX / AVX2, chosen at run time), `log.rs` (log-softmax for beam search).
//! [`softmax_u8`] picks the core's file.

mod exp2;
mod log;
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

pub use exp2::{exp2_neg_q15, exponent, recip_2_32, EXP2_NEG_Q15, EXP2_Q15, RECIP_CAP};
pub use log::{log2_q10, log_sum_exp_q10};
pub use reference::softmax_u8_ref;

use crate::quant::Requant;

/// Bytes of stack the softmax kernel uses beyond its registers, on this build's core.
pub const STACK_BYTES: usize = core_path::STACK_BYTES;

/// Softmax of `scores` into `p`, over the shorter of the two. `rq` maps a score difference to
/// the Q6 base-2 exponent, see the module doc. `scores` is scratch: it is left holding the
/// exponentials `e_j`, so each is computed once. Bit-exact with [`softmax_u8_ref`].
pub fn softmax_u8(scores: &mut [i32], rq: Requant, p: &mut [u8]) {
    core_path::softmax_u8(scores, rq, p)
}

/// [`softmax_u8`] of each row of `row_len` scores in `scores` (rows × `row_len`, row-major)
/// into the same rows of `p`, over the whole rows both hold: one call for many rows, as
/// CMSIS-NN's `arm_softmax_s8` takes them. Bit-exact with [`softmax_u8_ref`] row by row.
pub fn softmax_rows_u8(scores: &mut [i32], row_len: usize, rq: Requant, p: &mut [u8]) {
    #[cfg(picoformer_core = "mve")]
    if mve::softmax_rows_u8(scores, row_len, rq, p) {
        return;
    }
    softmax_each_row(scores, row_len, rq, p)
}

/// [`softmax_rows_u8`] as one [`softmax_u8`] call per row.
fn softmax_each_row(scores: &mut [i32], row_len: usize, rq: Requant, p: &mut [u8]) {
    if row_len == 0 {
        return;
    }
    for (s, q) in scores.chunks_exact_mut(row_len).zip(p.chunks_exact_mut(row_len)) {
        softmax_u8(s, rq, q);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exponents at or beyond `16 · 64` give `e = 0`.
    const T_LIMIT: u64 = 16 * 64;

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
        // Miri (scripts/miri) takes a sample: it interprets ~1000x slower
        for trial in 0..if cfg!(miri) { 20 } else { 20_000 } {
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
