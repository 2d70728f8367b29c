//! Log-softmax in base 2 over `i32` logits, for ranking beam-search hypotheses: with the same
//! table as [`super::softmax_u8`], in Q10 (1/1024 of a bit).
//!
//! `rq` maps a logit difference to its Q10 base-2 exponent (`s_logit · log2(e) · 1024`), so
//! `log2 p_j = -t_j - log2(Σ_i 2^(-t_i))` with `t_j = rq(max - logit_j)`.

use super::exp2::{exp2_neg_q15, exponent};
use crate::quant::Requant;

/// `log2(Σ_j 2^(-t_j))` in Q10 over all logits, `t_j` their Q10 exponents below the max
/// (`≥ 0`: the max contributes 1). Each term is read from the Q6 table at `t_j / 16`.
pub fn log_sum_exp_q10(logits: &[i32], rq: Requant) -> i64 {
    let m = logits.iter().copied().max().unwrap_or(0);
    let sum: u64 = logits.iter().map(|&x| exp2_neg_q15(exponent(m, x, rq) >> 4) as u64).sum();
    log2_q10(sum) - 15 * 1024
}

/// `log2(x)` in Q10 for `x ≥ 1`: the integer part from the leading bit, ten fractional bits by
/// repeated squaring. `x = 0` gives 0.
pub fn log2_q10(x: u64) -> i64 {
    if x == 0 {
        return 0;
    }
    let n = 63 - x.leading_zeros() as i64;
    // y in [1, 2) as Q30
    let mut y = if n >= 30 { x >> (n - 30) } else { x << (30 - n) };
    let mut frac = 0i64;
    for _ in 0..10 {
        y = (y * y) >> 30;
        frac <<= 1;
        if y >= 2 << 30 {
            y >>= 1;
            frac |= 1;
        }
    }
    n * 1024 + frac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_is_exact_on_powers_and_monotone() {
        assert_eq!(log2_q10(1), 0);
        assert_eq!(log2_q10(2), 1024);
        assert_eq!(log2_q10(1 << 40), 40 * 1024);
        assert_eq!(log2_q10(3), 1623); // log2(3) · 1024 = 1622.9997: within one step
        let mut prev = -1;
        for x in 1..5000u64 {
            let v = log2_q10(x);
            assert!(v >= prev);
            prev = v;
        }
    }

    #[test]
    fn log_sum_exp_of_equal_logits_is_log2_n() {
        // four equal logits: log2(4) = 2 bits = 2048 in Q10, within the table's rounding
        let rq = Requant::from_real(1.0);
        assert_eq!(log_sum_exp_q10(&[5, 5, 5, 5], rq), 2048);
        assert_eq!(log_sum_exp_q10(&[9], rq), 0);
    }
}
