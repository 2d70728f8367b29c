//! Translation sessions: encode a source once, then decode greedily (streaming, one token at a
//! time) or with beam search. All memory comes from the caller's arena.
//!
//! ```text
//! arena (8-byte aligned, Translator::arena_bytes(model, beam) bytes):
//! ┌─────────────── scratch ───────────────┬─ cross K/V ─┬── self K/V cache ──┬ logits ┬── beam ───┐
//! │ x h a ctx (S,d) i16 · q k v (S,d) i8  │ (L,S,d) i8  │ (beam,L,T,d) i8 ×2 │ (V) i32│ (beam,T)  │
//! │ ff (S,d_ff) i16 · scores, probs (S)   │ ×2          │                    │        │ u16 ×3    │
//! └───────────────────────────────────────┴─────────────┴────────────────────┴────────┴───────────┘
//! S = T = max_len, L = decoder layers; the decoder reuses row 0 of the scratch. Beam scores,
//! KV-slot maps and candidates live on the stack (at most `MAX_BEAM`).
//! ```

use crate::arena::Arena;
use crate::forward::{decode_step, encode, DecoderMemory, Scratch};
use crate::kernels::softmax::{exp2_neg_q15, log2_q10};
use crate::model::Model;
use crate::observe::{NoObserver, Observer};
use crate::{Error, TokenId};

/// Beam token histories, `W` = beam capacity, `T` = max_len.
struct BeamState<'a> {
    /// `(W, T)` tokens of the live beams, and the next step's.
    tokens: &'a mut [u16],
    next_tokens: &'a mut [u16],
    /// `(W, T)` finished hypotheses.
    done_tokens: &'a mut [u16],
}

/// A translation session over one model and one arena.
pub struct Translator<'m, 'a> {
    model: &'m Model<'m>,
    s: Scratch<'a>,
    cross_k: &'a mut [i8],
    cross_v: &'a mut [i8],
    self_k: &'a mut [i8],
    self_v: &'a mut [i8],
    logits: &'a mut [i32],
    beam: BeamState<'a>,
    beam_cap: usize,
    /// Source tokens encoded (0: nothing encoded yet).
    src_len: usize,
    /// Greedy stream: next position and the token to feed there.
    pos: usize,
    last: TokenId,
    finished: bool,
}

/// Carve every buffer from `a`, in one fixed order.
#[allow(clippy::type_complexity)]
fn carve<'a>(m: &Model<'_>, beam: usize, a: &mut Arena<'a>) -> Result<(Scratch<'a>, [&'a mut [i8]; 4], &'a mut [i32], BeamState<'a>), Error> {
    let c = &m.config;
    let (s, d, l) = (c.max_len, c.d_model, c.n_dec);
    let scratch = Scratch {
        x: a.take(s * d)?,
        h: a.take(s * d)?,
        a: a.take(s * d)?,
        ctx: a.take(s * d)?,
        q: a.take(s * d)?,
        k: a.take(s * d)?,
        v: a.take(s * d)?,
        ff: a.take(s * c.d_ff)?,
        scores: a.take(s)?,
        probs: a.take(s)?,
    };
    let kv = [a.take(l * s * d)?, a.take(l * s * d)?, a.take(beam * l * s * d)?, a.take(beam * l * s * d)?];
    let logits = a.take(c.vocab)?;
    let b = BeamState {
        tokens: a.take(beam * s)?,
        next_tokens: a.take(beam * s)?,
        done_tokens: a.take(beam * s)?,
    };
    Ok((scratch, kv, logits, b))
}

/// Largest beam capacity accepted (keeps the candidate bookkeeping small).
pub const MAX_BEAM: usize = 16;

impl<'m, 'a> Translator<'m, 'a> {
    /// Exact arena bytes `model` needs for beams up to `beam_cap` (1 for greedy only).
    pub fn arena_bytes(model: &Model<'_>, beam_cap: usize) -> usize {
        let mut a = Arena::dry();
        let _ = carve(model, beam_cap.clamp(1, MAX_BEAM), &mut a);
        a.used()
    }

    /// A session whose buffers live in `arena` (8-byte aligned, at least
    /// [`Translator::arena_bytes`] bytes). `beam_cap` is the largest beam width it will run.
    pub fn new(model: &'m Model<'m>, arena: &'a mut [u8], beam_cap: usize) -> Result<Self, Error> {
        if beam_cap == 0 || beam_cap > MAX_BEAM {
            return Err(Error::BadBeamWidth { requested: beam_cap, capacity: MAX_BEAM });
        }
        // a parsed model always passes; the empty `Model::default()` does not
        model.config.validate()?;
        let needed = Self::arena_bytes(model, beam_cap);
        if arena.len() < needed {
            return Err(Error::ArenaTooSmall { needed, got: arena.len() });
        }
        let mut a = Arena::new(arena)?;
        let (s, [cross_k, cross_v, self_k, self_v], logits, beam) = carve(model, beam_cap, &mut a)?;
        Ok(Translator {
            model,
            s,
            cross_k,
            cross_v,
            self_k,
            self_v,
            logits,
            beam,
            beam_cap,
            src_len: 0,
            pos: 0,
            last: 0,
            finished: true,
        })
    }

    /// The model this session runs.
    pub fn model(&self) -> &'m Model<'m> {
        self.model
    }

    /// Encode a source sentence: token ids, eos included, `1..=max_len` of them. Resets the
    /// decoder to its first step.
    pub fn encode(&mut self, src: &[TokenId]) -> Result<(), Error> {
        self.encode_observed(src, &mut NoObserver)
    }

    /// [`Translator::encode`], reporting every activation site to `obs`.
    pub fn encode_observed<O: Observer>(&mut self, src: &[TokenId], obs: &mut O) -> Result<(), Error> {
        let c = &self.model.config;
        if src.is_empty() {
            return Err(Error::EmptyInput);
        }
        if src.len() > c.max_len {
            return Err(Error::InputTooLong { len: src.len(), max: c.max_len });
        }
        self.check_ids(src)?;
        encode(self.model, src, &mut self.s, self.cross_k, self.cross_v, obs);
        self.src_len = src.len();
        self.restart();
        Ok(())
    }

    /// Point the greedy stream at its first step (bos at position 0).
    fn restart(&mut self) {
        self.pos = 0;
        self.last = self.model.config.bos;
        self.finished = false;
    }

    fn check_ids(&self, ids: &[TokenId]) -> Result<(), Error> {
        let vocab = self.model.config.vocab;
        match ids.iter().find(|&&id| id as usize >= vocab) {
            Some(&id) => Err(Error::TokenOutOfRange { id: id as u32, vocab: vocab as u32 }),
            None => Ok(()),
        }
    }

    /// Run one decoder step on KV slot `slot`: feed `token` at `pos`, leaving logits in
    /// [`Translator::logits`].
    fn step<O: Observer>(&mut self, slot: usize, token: TokenId, pos: usize, obs: &mut O) -> Result<(), Error> {
        let c = &self.model.config;
        if self.src_len == 0 || pos >= c.max_len || slot >= self.beam_cap {
            return Err(Error::DecoderState);
        }
        self.check_ids(&[token])?;
        let per_slot = c.n_dec * c.max_len * c.d_model;
        let range = slot * per_slot..(slot + 1) * per_slot;
        let (Some(self_k), Some(self_v)) = (self.self_k.get_mut(range.clone()), self.self_v.get_mut(range)) else {
            return Err(Error::DecoderState);
        };
        let mut mem = DecoderMemory { cross_k: self.cross_k, cross_v: self.cross_v, src_len: self.src_len, self_k, self_v };
        decode_step(self.model, token, pos, &mut mem, &mut self.s, self.logits, obs);
        Ok(())
    }

    /// The `(vocab,)` logits of the last decoder step.
    pub fn logits(&self) -> &[i32] {
        self.logits
    }

    /// Greedy decoding, streamed: the next target token, or `None` once eos is produced or
    /// `max_len - 1` tokens have been emitted. Call [`Translator::encode`] first.
    pub fn next_token(&mut self) -> Result<Option<TokenId>, Error> {
        let tok = self.greedy_step(&mut NoObserver)?;
        Ok(tok.filter(|&t| t != self.model.config.eos))
    }

    /// One greedy step, reporting every activation site to `obs`: the chosen token, eos
    /// included, or `None` once decoding has finished. [`Translator::logits`] holds the step's
    /// logits.
    pub fn greedy_step<O: Observer>(&mut self, obs: &mut O) -> Result<Option<TokenId>, Error> {
        if self.src_len == 0 {
            return Err(Error::DecoderState);
        }
        if self.greedy_done() {
            self.finished = true;
            return Ok(None);
        }
        self.step(0, self.last, self.pos, obs)?;
        let tok = argmax(self.logits) as TokenId;
        self.pos += 1;
        self.last = tok;
        if tok == self.model.config.eos {
            self.finished = true;
        }
        Ok(Some(tok))
    }

    /// Teacher forcing: feed `token` at the next position instead of the model's own choice,
    /// and return that step's logits (for scoring a given translation, or comparing layers).
    pub fn force_observed<O: Observer>(&mut self, token: TokenId, obs: &mut O) -> Result<&[i32], Error> {
        if self.src_len == 0 || self.pos + 1 >= self.model.config.max_len {
            return Err(Error::DecoderState);
        }
        self.step(0, token, self.pos, obs)?;
        self.pos += 1;
        self.last = token;
        Ok(self.logits)
    }

    /// Greedy decoding into `out`; returns the number of ids written, eos included if it was
    /// produced.
    pub fn greedy(&mut self, out: &mut [TokenId]) -> Result<usize, Error> {
        self.greedy_observed(out, &mut NoObserver)
    }

    /// [`Translator::greedy`], reporting every activation site to `obs`.
    ///
    /// When `out` fills before decoding has finished, returns [`Error::OutputFull`] without
    /// running the next step: nothing is lost, and [`Translator::next_token`] continues from the
    /// token that did not fit.
    pub fn greedy_observed<O: Observer>(&mut self, out: &mut [TokenId], obs: &mut O) -> Result<usize, Error> {
        if self.src_len == 0 {
            return Err(Error::DecoderState);
        }
        let mut n = 0;
        while !self.greedy_done() {
            let capacity = out.len();
            let slot = out.get_mut(n).ok_or(Error::OutputFull { capacity })?;
            let Some(tok) = self.greedy_step(obs)? else { break };
            *slot = tok;
            n += 1;
        }
        Ok(n)
    }

    /// Whether the greedy stream has nothing more to produce.
    fn greedy_done(&self) -> bool {
        self.finished || self.pos + 1 >= self.model.config.max_len
    }

    /// Beam search of `width` (`1..=beam_cap`) with length normalisation: hypotheses are ranked
    /// by mean log-probability per token, eos included. Writes the best hypothesis (eos included
    /// when produced) to `out` and returns its length. Call [`Translator::encode`] first.
    ///
    /// Each step expands every live beam into its `width` best tokens and keeps the `2·width`
    /// best candidates overall; finished ones (eos, or `max_len - 1` tokens) leave the beam,
    /// and the search stops once `width` hypotheses have finished.
    ///
    /// The source stays encoded: a later [`Translator::greedy`] or [`Translator::next_token`]
    /// decodes it from its first step, and another beam search may follow.
    pub fn beam_search(&mut self, width: usize, out: &mut [TokenId]) -> Result<usize, Error> {
        if width == 0 || width > self.beam_cap {
            return Err(Error::BadBeamWidth { requested: width, capacity: self.beam_cap });
        }
        if self.src_len == 0 {
            return Err(Error::DecoderState);
        }
        let c = self.model.config;
        let (t_max, eos) = (c.max_len, c.eos);
        let per_slot = c.n_dec * c.max_len * c.d_model;
        let lsm = self.model.log_softmax;
        let mut live = Beams::default();
        live.push(0, 0);
        let mut done = Finished::default();
        for pos in 0..t_max - 1 {
            // expand every live beam into its `width` best next tokens
            let mut cands = Candidates::new(2 * width);
            for b in 0..live.len {
                let prev = if pos == 0 { c.bos } else { self.beam.tokens.get(b * t_max + pos - 1).copied().unwrap_or(eos) };
                self.step(live.slot(b), prev, pos, &mut NoObserver)?;
                let m = self.logits.iter().copied().max().unwrap_or(0);
                let lse = log_sum_exp_q10(self.logits, lsm);
                for (tok, logit) in top_k(self.logits, width) {
                    let logp = -(exponent_q10(m, logit, lsm) as i64) - lse;
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
                let hist = self.beam.tokens.get(parent * t_max..parent * t_max + pos).unwrap_or(&[]);
                let dst = if cand.token == eos || pos + 2 >= t_max {
                    done.push(cand.score / (pos as i64 + 1), pos + 1);
                    self.beam.done_tokens.get_mut((done.len - 1) * t_max..done.len * t_max)
                } else {
                    // parent index for now; slots are assigned below
                    next.push(cand.score, parent as u16);
                    self.beam.next_tokens.get_mut((next.len - 1) * t_max..next.len * t_max)
                };
                for (d, &s) in dst.unwrap_or(&mut []).iter_mut().zip(hist.iter().chain(core::iter::once(&cand.token))) {
                    *d = s;
                }
            }
            if next.len == 0 || done.len >= width {
                break;
            }
            // KV slots: the first child keeps its parent's slot, later children copy the
            // parent's cache (positions 0..=pos) into a free slot
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
                let free = (0..self.beam_cap).find(|&s| claimed.get(s) == Some(&false)).ok_or(Error::DecoderState)?;
                if let Some(c) = claimed.get_mut(free) {
                    *c = true;
                }
                let n = (pos + 1) * c.d_model;
                for l in 0..c.n_dec {
                    let off = l * c.max_len * c.d_model;
                    let (from, to) = (src * per_slot + off, free * per_slot + off);
                    if from + n <= self.self_k.len() && to + n <= self.self_k.len() && self.self_k.len() == self.self_v.len() {
                        self.self_k.copy_within(from..from + n, to);
                        self.self_v.copy_within(from..from + n, to);
                    }
                }
                next.set_slot(j, free);
            }
            core::mem::swap(&mut self.beam.tokens, &mut self.beam.next_tokens);
            live = next;
        }
        // the source stays encoded: greedy decoding may follow, from its first step
        self.restart();
        let best = done.best().ok_or(Error::DecoderState)?;
        let len = done.len_of(best);
        let src = self.beam.done_tokens.get(best * t_max..best * t_max + len).unwrap_or(&[]);
        let capacity = out.len();
        out.get_mut(..len).ok_or(Error::OutputFull { capacity })?.copy_from_slice(src);
        Ok(len)
    }
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
pub fn argmax(v: &[i32]) -> usize {
    if let Some(i) = crate::kernels::argmax::fast(v) {
        return i;
    }
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v.get(best).copied().unwrap_or(i32::MIN) {
            best = i;
        }
    }
    best
}

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

/// `rq(m - x)`, the base-2 exponent of a logit below the max, in Q10.
fn exponent_q10(m: i32, x: i32, rq: crate::quant::Requant) -> u64 {
    let diff = (m as i64 - x as i64) as u64;
    let shift = (rq.shift & 63) as u32;
    let mult = rq.mult.max(0) as u64;
    (diff * mult + ((1u64 << shift) >> 1)) >> shift
}

/// `log2(Σ 2^(-t_j))` in Q10 over all logits, with `t_j` the Q10 exponents below the max.
fn log_sum_exp_q10(logits: &[i32], rq: crate::quant::Requant) -> i64 {
    let m = logits.iter().copied().max().unwrap_or(0);
    let sum: u64 = logits.iter().map(|&x| exp2_neg_q15(exponent_q10(m, x, rq) >> 4) as u64).sum();
    log2_q10(sum) - 15 * 1024
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
    }
}
