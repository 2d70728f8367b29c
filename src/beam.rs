//! Beam search with length normalisation, over any decoder that feeds one token to one KV
//! slot at a time ([`Step`]): the encoder-decoder's and the language model's.
//!
//! Hypotheses are ranked by mean log-probability per token, eos included (log-softmax in Q10
//! base-2, [`crate::kernels::softmax::log_sum_exp_q10`]). Each step expands every live beam
//! into its `width` best tokens and keeps the `2·width` best candidates overall; finished ones
//! (eos, or the step limit) leave the beam, and the search stops once `width` have finished.
//! The first child of a beam keeps its parent's KV slot; later children copy the parent's cache
//! into a free slot.

use crate::kernels::softmax::{exponent, log_sum_exp_q10};
use crate::quant::Requant;
use crate::{Error, TokenId};

/// Largest beam capacity accepted (keeps the candidate bookkeeping small, on the stack).
pub const MAX_BEAM: usize = 16;

/// A decoder beam search can drive.
pub(crate) trait Step {
    /// Feed `token` at position `pos` on KV slot `slot`, returning that step's logits.
    fn step(&mut self, slot: usize, token: TokenId, pos: usize) -> Result<&[i32], Error>;
    /// Copy positions `0..positions` of slot `from`'s cache into slot `to`.
    fn copy_slot(&mut self, from: usize, to: usize, positions: usize) -> Result<(), Error>;
}

/// The token histories, `(slots, stride)` each: the live beams', the next step's, and the
/// finished hypotheses'.
pub(crate) struct Histories<'a> {
    pub tokens: &'a mut [u16],
    pub next: &'a mut [u16],
    pub done: &'a mut [u16],
    /// Tokens per history (the longest output).
    pub stride: usize,
}

impl<'a> Histories<'a> {
    /// `slots` histories of `stride` tokens each, three times.
    pub(crate) fn carve(a: &mut crate::arena::Arena<'a>, slots: usize, stride: usize) -> Result<Self, Error> {
        Ok(Histories { tokens: a.take("beam tokens", slots * stride)?, next: a.take("beam next", slots * stride)?, done: a.take("beam done", slots * stride)?, stride })
    }
}

/// Where a search starts and how far it may go.
#[derive(Clone, Copy)]
pub(crate) struct Start {
    /// The token fed at the first step (bos, or a prompt's last token).
    pub token: TokenId,
    /// Its position; slot 0 holds the cache of the positions before it.
    pub pos: usize,
    /// At most this many tokens are generated.
    pub max_steps: usize,
    pub eos: TokenId,
    /// Logit difference to Q10 base-2 exponent.
    pub log_softmax: Requant,
}

/// Beam search of `width` (`1..=slots`) from `start`; the best hypothesis (eos included when
/// produced) goes to `out`, and its length is returned.
pub(crate) fn search(dec: &mut impl Step, h: &mut Histories<'_>, slots: usize, width: usize, start: Start, out: &mut [TokenId]) -> Result<usize, Error> {
    if width == 0 || width > slots || slots > MAX_BEAM {
        return Err(Error::BadBeamWidth { requested: width, capacity: slots.min(MAX_BEAM) });
    }
    let (t, eos, lsm) = (h.stride, start.eos, start.log_softmax);
    let max_steps = start.max_steps.min(t);
    // no room for a step (a language model asked for `max_new = 0`): the empty continuation
    if max_steps == 0 {
        return Ok(0);
    }
    let mut live = Beams::default();
    live.push(0, 0);
    let mut done = Finished::default();
    for i in 0..max_steps {
        let pos = start.pos + i;
        // expand every live beam into its `width` best next tokens
        let mut cands = Candidates::new(2 * width);
        for b in 0..live.len {
            let prev = if i == 0 { start.token } else { h.tokens.get(b * t + i - 1).copied().unwrap_or(eos) };
            let logits = dec.step(live.slot(b), prev, pos)?;
            let m = logits.iter().copied().max().unwrap_or(0);
            let lse = log_sum_exp_q10(logits, lsm);
            for (tok, logit) in top_k(logits, width) {
                let logp = -(exponent(m, logit, lsm) as i64) - lse;
                cands.insert(Cand { score: live.score(b).saturating_add(logp), parent: b as u16, token: tok as u16 });
            }
        }
        // the best candidates: finished ones leave, the rest form the next beam
        let mut next = Beams::default();
        for cand in cands.iter() {
            if next.len >= width || done.len >= width {
                break;
            }
            let parent = cand.parent as usize;
            let hist = h.tokens.get(parent * t..parent * t + i).unwrap_or(&[]);
            let dst = if cand.token == eos || i + 1 >= max_steps {
                done.push(cand.score / (i as i64 + 1), i + 1);
                h.done.get_mut((done.len - 1) * t..done.len * t)
            } else {
                // parent index for now; slots are assigned below
                next.push(cand.score, parent as u16);
                h.next.get_mut((next.len - 1) * t..next.len * t)
            };
            for (d, &s) in dst.unwrap_or(&mut []).iter_mut().zip(hist.iter().chain(core::iter::once(&cand.token))) {
                *d = s;
            }
        }
        if next.len == 0 || done.len >= width {
            break;
        }
        // KV slots: the first child keeps its parent's slot, later children copy the parent's
        // cache (positions 0..=pos) into a free slot
        let mut claimed = [false; MAX_BEAM];
        let mut copy_from = [None; MAX_BEAM];
        for (j, copy) in copy_from.iter_mut().enumerate().take(next.len) {
            let ps = live.slot(next.slot(j));
            match claimed.get_mut(ps) {
                Some(c) if !*c => {
                    *c = true;
                    next.set_slot(j, ps);
                }
                _ => *copy = Some(ps),
            }
        }
        for (j, src) in copy_from.iter().enumerate().take(next.len) {
            let Some(src) = *src else { continue };
            let free = (0..slots).find(|&s| claimed.get(s) == Some(&false)).ok_or(Error::DecoderState)?;
            if let Some(c) = claimed.get_mut(free) {
                *c = true;
            }
            dec.copy_slot(src, free, pos + 1)?;
            next.set_slot(j, free);
        }
        core::mem::swap(&mut h.tokens, &mut h.next);
        live = next;
    }
    let best = done.best().ok_or(Error::DecoderState)?;
    let len = done.len_of(best);
    let src = h.done.get(best * t..best * t + len).unwrap_or(&[]);
    let capacity = out.len();
    out.get_mut(..len).ok_or(Error::OutputFull { capacity })?.copy_from_slice(src);
    Ok(len)
}

/// The live beams of one step: summed log-probabilities (Q10 base-2) and KV slots.
#[derive(Default, Clone, Copy)]
struct Beams {
    score: [i64; MAX_BEAM],
    slot: [u16; MAX_BEAM],
    len: usize,
}

impl Beams {
    fn push(&mut self, score: i64, slot: u16) {
        if let (Some(s), Some(k)) = (self.score.get_mut(self.len), self.slot.get_mut(self.len)) {
            *s = score;
            *k = slot;
            self.len += 1;
        }
    }
    fn score(&self, b: usize) -> i64 {
        self.score.get(b).copied().unwrap_or(i64::MIN)
    }
    fn slot(&self, b: usize) -> usize {
        self.slot.get(b).copied().unwrap_or(0) as usize
    }
    fn set_slot(&mut self, b: usize, s: usize) {
        if let Some(k) = self.slot.get_mut(b) {
            *k = s as u16;
        }
    }
}

/// Finished hypotheses: length-normalized scores and lengths (tokens live in the arena).
#[derive(Default)]
struct Finished {
    score: [i64; MAX_BEAM],
    len_: [u16; MAX_BEAM],
    len: usize,
}

impl Finished {
    fn push(&mut self, score: i64, len: usize) {
        if let (Some(s), Some(l)) = (self.score.get_mut(self.len), self.len_.get_mut(self.len)) {
            *s = score;
            *l = len as u16;
            self.len += 1;
        }
    }
    fn len_of(&self, i: usize) -> usize {
        self.len_.get(i).copied().unwrap_or(0) as usize
    }
    /// The first best-scoring hypothesis.
    fn best(&self) -> Option<usize> {
        let scores = self.score.get(..self.len)?;
        let mut best = None;
        for (i, &s) in scores.iter().enumerate() {
            if best.is_none_or(|(_, b)| s > b) {
                best = Some((i, s));
            }
        }
        best.map(|(i, _)| i)
    }
}

#[derive(Clone, Copy)]
struct Cand {
    score: i64,
    parent: u16,
    token: u16,
}

/// The best candidates seen, sorted best first (ties keep arrival order), at most `cap`.
struct Candidates {
    c: [Cand; 2 * MAX_BEAM],
    len: usize,
    cap: usize,
}

impl Candidates {
    fn new(cap: usize) -> Self {
        Candidates { c: [Cand { score: i64::MIN, parent: 0, token: 0 }; 2 * MAX_BEAM], len: 0, cap: cap.min(2 * MAX_BEAM) }
    }
    fn insert(&mut self, x: Cand) {
        let mut i = self.len;
        if i == self.cap {
            match self.c.get(i.wrapping_sub(1)) {
                Some(last) if last.score < x.score => i -= 1,
                _ => return,
            }
        } else {
            self.len += 1;
        }
        // shift worse entries down and place x
        while i > 0 && self.c.get(i - 1).is_some_and(|p| p.score < x.score) {
            self.c.swap(i - 1, i);
            i -= 1;
        }
        if let Some(slot) = self.c.get_mut(i) {
            *slot = x;
        }
    }
    fn iter(&self) -> impl Iterator<Item = &Cand> {
        self.c.iter().take(self.len)
    }
}

/// Index of the first maximum.
pub use crate::kernels::argmax::argmax;

/// The `k` largest logits as `(index, value)`, best first (ties: lower index first).
fn top_k(v: &[i32], k: usize) -> impl Iterator<Item = (usize, i32)> {
    let mut top = [(0usize, i32::MIN); MAX_BEAM];
    let k = k.min(MAX_BEAM).min(v.len());
    let mut n = 0usize;
    if k == 0 {
        return top.into_iter().take(0);
    }
    for (i, &x) in v.iter().enumerate() {
        if n < k {
            n += 1;
        } else if top.get(k - 1).is_some_and(|t| x <= t.1) {
            continue;
        }
        let mut j = n - 1;
        while j > 0 && top.get(j - 1).is_some_and(|t| t.1 < x) {
            top.swap(j - 1, j);
            j -= 1;
        }
        if let Some(t) = top.get_mut(j) {
            *t = (i, x);
        }
    }
    top.into_iter().take(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_and_argmax() {
        let v = [3, 9, -1, 9, 4, 8];
        assert_eq!(argmax(&v), 1);
        let t: Vec<_> = top_k(&v, 3).collect();
        assert_eq!(t, [(1, 9), (3, 9), (5, 8)]);
        let t: Vec<_> = top_k(&v, 10).collect();
        assert_eq!(t.len(), 6);
        // the widest beam: the 16 largest of 40, best first, ties by index
        let v: Vec<i32> = (0..40).map(|i| i * 17 % 40 / 2).collect();
        let mut want: Vec<(usize, i32)> = v.iter().copied().enumerate().collect();
        want.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        assert_eq!(top_k(&v, MAX_BEAM).collect::<Vec<_>>(), want[..MAX_BEAM]);
        assert_eq!(top_k(&v, 40).count(), MAX_BEAM);
    }

    /// Logits that depend on the whole prefix fed so far (a hash of it), with eos (3) more
    /// likely the longer the prefix: any KV-slot mix-up changes what a beam sees.
    fn prefix_logits(prefix: &[u16], seed: u64, out: &mut [i32]) {
        let mut h = seed;
        for &t in prefix {
            h = (h ^ t as u64).wrapping_mul(0x100_0000_01b3);
        }
        for (tok, o) in out.iter_mut().enumerate() {
            let x = (h ^ tok as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
            *o = (x % 4000) as i32 - 2000 + if tok == 3 { 400 * prefix.len() as i32 } else { 0 };
        }
    }

    /// A decoder with `slots` KV slots, each the list of tokens fed to it by position.
    struct Slotted {
        hist: Vec<Vec<u16>>,
        logits: Vec<i32>,
        seed: u64,
    }

    impl Step for Slotted {
        fn step(&mut self, slot: usize, token: TokenId, pos: usize) -> Result<&[i32], Error> {
            let h = &mut self.hist[slot];
            h.truncate(pos);
            assert_eq!(h.len(), pos, "slot {slot} has no cache before position {pos}");
            h.push(token);
            prefix_logits(h, self.seed, &mut self.logits);
            Ok(&self.logits)
        }
        fn copy_slot(&mut self, from: usize, to: usize, positions: usize) -> Result<(), Error> {
            self.hist[to] = self.hist[from][..positions].to_vec();
            Ok(())
        }
    }

    /// The same search written plainly over whole prefixes, with no slots to manage.
    fn reference_search(prompt: &[u16], width: usize, max_steps: usize, seed: u64, lsm: Requant) -> Vec<u16> {
        let (eos, mut logits) = (3u16, vec![0i32; 10]);
        let mut live: Vec<(i64, Vec<u16>)> = vec![(0, vec![])];
        let mut done: Vec<(i64, Vec<u16>)> = vec![];
        for i in 0..max_steps {
            let mut cands = vec![];
            for (b, (score, hyp)) in live.iter().enumerate() {
                prefix_logits(&[prompt, hyp].concat(), seed, &mut logits);
                let m = *logits.iter().max().unwrap();
                let lse = log_sum_exp_q10(&logits, lsm);
                for (tok, logit) in top_k(&logits, width) {
                    cands.push((score.saturating_add(-(exponent(m, logit, lsm) as i64) - lse), b, tok as u16));
                }
            }
            cands.sort_by_key(|c| core::cmp::Reverse(c.0)); // stable: ties in arrival order
            cands.truncate(2 * width);
            let mut next = vec![];
            for &(score, parent, tok) in &cands {
                if next.len() >= width || done.len() >= width {
                    break;
                }
                let hyp = [&live[parent].1[..], &[tok]].concat();
                if tok == eos || i + 1 >= max_steps {
                    done.push((score / (i as i64 + 1), hyp));
                } else {
                    next.push((score, hyp));
                }
            }
            if next.is_empty() || done.len() >= width {
                break;
            }
            live = next;
        }
        let best = done.iter().map(|d| d.0).max().unwrap();
        done.into_iter().find(|d| d.0 == best).unwrap().1
    }

    /// Beam search over a slotted decoder finds what the plain search over whole prefixes finds:
    /// children keep or copy their parent's cache correctly, for every width and a prompt in
    /// slot 0 (kills a search that reads every beam from one slot).
    #[test]
    fn search_matches_a_plain_search_over_whole_prefixes() {
        let lsm = Requant::from_real(3.0);
        let prompt = [7u16, 5, 2];
        let (stride, mut differ) = (9usize, 0);
        for seed in 0..40u64 {
            for width in 1..=5 {
                let slots = width + (seed as usize % 2);
                let mut dec = Slotted { hist: vec![vec![]; slots], logits: vec![0; 10], seed };
                dec.hist[0] = prompt[..2].to_vec();
                let (mut a, mut b, mut c) = (vec![0; slots * stride], vec![0; slots * stride], vec![0; slots * stride]);
                let mut h = Histories { tokens: &mut a, next: &mut b, done: &mut c, stride };
                let start = Start { token: 2, pos: 2, max_steps: stride, eos: 3, log_softmax: lsm };
                let mut out = vec![0; stride];
                let n = search(&mut dec, &mut h, slots, width, start, &mut out).unwrap();
                let want = reference_search(&prompt, width, stride, seed, lsm);
                assert_eq!(out[..n], want[..], "seed {seed} width {width}");
                if width > 1 && want != reference_search(&prompt, 1, stride, seed, lsm) {
                    differ += 1;
                }
            }
        }
        // the wider beams do find other hypotheses than greedy's, so the comparison has teeth
        assert!(differ >= 30, "{differ} of 160");
    }

    #[test]
    fn candidates_stay_sorted_best_first_and_capped() {
        let mut c = Candidates::new(3);
        let scores = [5i64, 9, 1, 7, 9, 3, 8];
        for (i, &score) in scores.iter().enumerate() {
            c.insert(Cand { score, parent: 0, token: i as u16 });
        }
        // the three best, ties in arrival order (token 1 before token 4)
        let got: Vec<(i64, u16)> = c.iter().map(|x| (x.score, x.token)).collect();
        assert_eq!(got, [(9, 1), (9, 4), (8, 6)]);
        // a candidate no better than the last is dropped; a better one pushes the last out
        c.insert(Cand { score: 8, parent: 0, token: 9 });
        c.insert(Cand { score: 10, parent: 0, token: 10 });
        let got: Vec<u16> = c.iter().map(|x| x.token).collect();
        assert_eq!(got, [10, 1, 4]);
    }
}
