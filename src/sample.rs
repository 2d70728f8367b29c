//! Sampling the next token from integer logits: temperature, top-k and top-p with a seeded
//! integer RNG, so that one seed gives the same tokens on the host and on every board.
//!
//! With `m` the largest logit and `t_j = rq(m − l_j)` its base-2 exponent in Q10 (the model's
//! log-softmax multiplier), each token's weight is
//!
//! ```text
//! w_j = 2^(−t_j · 1000 / (1024 · T_milli))   in Q15, from the softmax table (0 once below 2^-15)
//! ```
//!
//! Tokens are ranked by logit, higher first, ties by lower id. Top-k keeps the first `k`;
//! top-p keeps the shortest prefix of that ranking whose weight reaches `p_milli / 1000` of the
//! total. Then `u = rng.below(Σ kept w)` picks the first kept token (in id order) whose running
//! sum of weights passes `u`. Temperature 0 is greedy (the argmax). All of it is integer
//! arithmetic, `O(V)` per bisection step over the logits' range (at most 33 steps): no sort,
//! no buffer.

use crate::kernels::softmax::{exp2_neg_q15, exponent};
use crate::quant::Requant;
use crate::TokenId;

/// xorshift64: a seeded integer RNG, the same sequence on every target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rng64(u64);

impl Rng64 {
    /// A generator from `seed` (0 is replaced by a fixed non-zero constant).
    pub const fn new(seed: u64) -> Self {
        Rng64(if seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { seed })
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `0..n` (`n > 0`; the tiny modulo bias of a 64-bit draw is accepted).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The settings of one generation, in integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampling {
    /// Temperature in thousandths: 1000 samples the model's distribution, 0 is greedy.
    pub temperature_milli: u32,
    /// Keep the `top_k` most likely tokens (0: all).
    pub top_k: u32,
    /// Keep the most likely tokens up to this share of the probability, in thousandths
    /// (1000: all).
    pub top_p_milli: u32,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling { temperature_milli: 1000, top_k: 0, top_p_milli: 1000 }
    }
}

/// A sampler: settings and its RNG.
#[derive(Debug, Clone, Copy)]
pub struct Sampler {
    pub settings: Sampling,
    pub rng: Rng64,
}

impl Sampler {
    pub const fn new(settings: Sampling, seed: u64) -> Self {
        Sampler { settings, rng: Rng64::new(seed) }
    }

    /// Pick the next token from `logits` with the model's log-softmax multiplier `lsm`.
    pub fn pick(&mut self, logits: &[i32], lsm: Requant) -> TokenId {
        let s = self.settings;
        if s.temperature_milli == 0 || logits.is_empty() {
            return crate::beam::argmax(logits) as TokenId;
        }
        let m = logits.iter().copied().max().unwrap_or(0);
        // the Q10 exponent over the temperature, as the table's Q6 index: t · 1000 / (16 · T)
        let weight = |l: i32| -> u32 { exp2_neg_q15(exponent(m, l, lsm).saturating_mul(1000) / (16 * s.temperature_milli as u64)) };
        let cut = cutoff(logits, &weight, s);
        let kept = |i: usize, l: i32| l > cut.logit || (l == cut.logit && i <= cut.last_tie);
        let total: u64 = logits.iter().enumerate().filter(|&(i, &l)| kept(i, l)).map(|(_, &l)| weight(l) as u64).sum();
        if total == 0 {
            return crate::beam::argmax(logits) as TokenId;
        }
        let mut u = self.rng.below(total);
        for (i, &l) in logits.iter().enumerate() {
            let w = weight(l);
            if w == 0 || !kept(i, l) {
                continue;
            }
            if u < w as u64 {
                return i as TokenId;
            }
            u -= w as u64;
        }
        crate::beam::argmax(logits) as TokenId
    }
}

/// The kept set: every logit above `logit`, and the ties at `logit` up to id `last_tie`.
struct Cutoff {
    logit: i32,
    last_tie: usize,
}

/// The logit `τ` of the last token the top-k and top-p rules keep in the ranking by logit (the
/// largest `τ` at which the tokens with logits `≥ τ` satisfy a rule, found by bisection over
/// the logits' range), and the last tied token at `τ`, in id order, needed to satisfy it.
fn cutoff(logits: &[i32], weight: &impl Fn(i32) -> u32, s: Sampling) -> Cutoff {
    let all: u64 = logits.iter().map(|&l| weight(l) as u64).sum();
    let k = if s.top_k == 0 { usize::MAX } else { s.top_k as usize };
    // at least this much weight is kept (top-p, rounded up)
    let need = (all * s.top_p_milli.min(1000) as u64).div_ceil(1000).max(1);
    let enough = |(n, sum): (usize, u64)| n >= k || sum >= need;
    // count and weight of the tokens whose logit is at least `v`
    let at_least = |v: i64| logits.iter().filter(|&&l| l as i64 >= v).fold((0usize, 0u64), |(n, s), &l| (n + 1, s + weight(l) as u64));
    // largest τ in min..=max with enough(at_least(τ)) (the smallest logit keeps everything)
    let (lo0, hi0) = logits.iter().fold((i32::MAX, i32::MIN), |(a, b), &l| (a.min(l), b.max(l)));
    let (mut lo, mut hi) = (lo0 as i64, hi0 as i64 + 1);
    while lo + 1 < hi {
        let mid = lo + (hi - lo) / 2;
        if enough(at_least(mid)) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let tau = lo;
    // the ties at τ, in id order, until a rule is satisfied
    let (mut n, mut sum) = at_least(tau + 1);
    let mut last_tie = usize::MAX;
    for (i, &l) in logits.iter().enumerate() {
        if enough((n, sum)) {
            break;
        }
        if l as i64 == tau {
            (n, sum, last_tie) = (n + 1, sum + weight(l) as u64, i);
        }
    }
    if !enough((n, sum)) {
        last_tie = usize::MAX;
    }
    Cutoff { logit: tau as i32, last_tie }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lsm() -> Requant {
        // one logit unit = one bit: log2 weights step by 1
        Requant::from_real(1024.0)
    }

    #[test]
    fn temperature_zero_is_greedy() {
        let mut s = Sampler::new(Sampling { temperature_milli: 0, ..Sampling::default() }, 7);
        assert_eq!(s.pick(&[1, 9, 3, 9], lsm()), 1);
    }

    #[test]
    fn top_k_one_is_greedy_and_seeds_repeat() {
        let logits = [0, 5, 3, 5, 1];
        let mut s = Sampler::new(Sampling { top_k: 1, ..Sampling::default() }, 42);
        for _ in 0..20 {
            assert_eq!(s.pick(&logits, lsm()), 1); // ties go to the lower id
        }
        let draw = |seed| {
            let mut s = Sampler::new(Sampling::default(), seed);
            (0..50).map(|_| s.pick(&logits, lsm())).collect::<std::vec::Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }

    #[test]
    #[cfg_attr(miri, ignore = "70,000 draws for its statistics: too slow under Miri")]
    fn frequencies_follow_the_weights() {
        // weights 1, 1/2, 1/4 (logits 2, 1, 0 with one bit per unit): 4/7, 2/7, 1/7
        let logits = [2, 1, 0];
        let mut s = Sampler::new(Sampling::default(), 1);
        let mut count = [0u32; 3];
        for _ in 0..70_000 {
            count[s.pick(&logits, lsm()) as usize] += 1;
        }
        assert!((39_000..41_000).contains(&count[0]), "{count:?}");
        assert!((19_000..21_000).contains(&count[1]), "{count:?}");
        assert!((9_000..11_000).contains(&count[2]), "{count:?}");
        // top-p 0.5 keeps the first token only (4/7 > 1/2)
        let mut s = Sampler::new(Sampling { top_p_milli: 500, ..Sampling::default() }, 1);
        assert!((0..100).all(|_| s.pick(&logits, lsm()) == 0));
        // top-p 0.8 keeps two (4/7 < 0.8 <= 6/7); top-k 2 keeps the same two
        for set in [Sampling { top_p_milli: 800, ..Sampling::default() }, Sampling { top_k: 2, ..Sampling::default() }] {
            let mut s = Sampler::new(set, 9);
            let picks: std::vec::Vec<TokenId> = (0..200).map(|_| s.pick(&logits, lsm())).collect();
            assert!(picks.iter().all(|&t| t < 2) && picks.contains(&0) && picks.contains(&1), "{set:?}");
        }
        // a high temperature flattens: the third token comes up more often
        let mut s = Sampler::new(Sampling { temperature_milli: 4000, ..Sampling::default() }, 1);
        let hot = (0..7000).filter(|_| s.pick(&logits, lsm()) == 2).count();
        assert!(hot > 1500, "{hot}");
    }

    #[test]
    fn ties_at_the_cut_are_kept_in_id_order() {
        // four equal weights, top-k 2: ids 0 and 1
        let mut s = Sampler::new(Sampling { top_k: 2, ..Sampling::default() }, 5);
        let picks: std::vec::Vec<TokenId> = (0..200).map(|_| s.pick(&[3, 3, 3, 3], lsm())).collect();
        assert!(picks.iter().all(|&t| t < 2) && picks.contains(&0) && picks.contains(&1));
    }
}
