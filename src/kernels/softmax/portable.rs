//! The portable softmax: every core without an assembly path. For fused shifts (every converted
//! model's) the exponent takes the high word of a 32-bit product, with the constants hoisted.
//! Bit-exact with [`super::reference::softmax_u8_ref`].

use super::exp2::{exp2_neg_q15, exponent, recip_2_32, RECIP_CAP};
use crate::quant::{mul_wide_u32, Requant};

/// Stack scratch: none.
#[cfg_attr(any(picoformer_core = "dsp", picoformer_core = "mve", picoformer_core = "x86"), allow(dead_code))] // the interface of cores without a file
pub const STACK_BYTES: usize = 0;

/// Softmax of `scores` into `p`, see the module doc.
pub fn softmax_u8(scores: &mut [i32], rq: Requant, p: &mut [u8]) {
    let n = scores.len().min(p.len());
    let (Some(scores), Some(p)) = (scores.get_mut(..n), p.get_mut(..n)) else {
        return;
    };
    if scores.is_empty() {
        return;
    }
    let m = scores.iter().fold(i32::MIN, |a, &b| a.max(b));
    let mut sum: u32 = 0;
    if rq.is_fused() {
        // `exponent` with 32-bit operands: (p + 2^(s-1)) >> s == ((p >> 32) + 2^(s-33)) >> (s-32)
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
