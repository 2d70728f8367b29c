//! The plain reference of the softmax kernel: the module's formula in 64 bits, element by
//! element. The fast paths are checked against it.

use super::exp2::{exp2_neg_q15, exponent};
use crate::quant::Requant;

/// Softmax of `scores` into `p` (over the shorter of the two), leaving the exponentials `e_j`
/// in `scores`: `t_j = rq(m - s_j)`, `e_j = 2^(-t_j/64)` in Q15, `p_j = min(255, (e_j ·
/// ⌊2^32 / Σe⌋ + 2^23) >> 24)`.
pub fn softmax_u8_ref(scores: &mut [i32], rq: Requant, p: &mut [u8]) {
    let n = scores.len().min(p.len());
    let (Some(scores), Some(p)) = (scores.get_mut(..n), p.get_mut(..n)) else {
        return;
    };
    let Some(m) = scores.iter().copied().max() else {
        return;
    };
    let mut sum = 0u64;
    for s in scores.iter_mut() {
        let e = exp2_neg_q15(exponent(m, *s, rq));
        *s = e as i32;
        sum += e as u64;
    }
    // the max has e = 2^15, so sum ≥ 2^15 > 0
    let recip = (1u64 << 32) / sum.max(1);
    for (pj, &e) in p.iter_mut().zip(scores.iter()) {
        *pj = ((e as u64 * recip + (1 << 23)) >> 24).min(255) as u8;
    }
}
