//! Translation sessions (the encoder-decoder): encode a source once, then decode greedily
//! (streaming, one token at a time) or with beam search. All memory comes from the caller's
//! arena.
//!
//! ```text
//! arena (8-byte aligned, Translator::arena_bytes(model, beam) bytes):
//! ┌────────────────── scratch (S rows) ──────────────────┬─ self K/V cache ─┬ logits ┬ cross K/V ─┬ beam ─┐
//! │ x h a ctx (S,d) i16 · q (S,d) k v (S,kv) i8 · ff (S,F)│ (W,L,T,kv) i8 ×2 │ (V) i32│ (L,S,kv) ×2│ (W,T) │
//! │ · scores, probs (T)                                  │                  │        │            │ u16 ×3│
//! └──────────────────────────────────────────────────────┴──────────────────┴────────┴────────────┴───────┘
//! S = T = max_len, L = decoder layers, W = beam capacity; the decoder reuses row 0 of the
//! scratch. Beam scores, slot maps and candidates live on the stack (at most `MAX_BEAM`).
//! ```

use crate::arena::Arena;
use crate::beam::{self, argmax, Histories, Start, MAX_BEAM};
use crate::blob::{ModelKind, Stack};
use crate::decoder::{BeamStep, Decoder};
use crate::forward::{cross_keys, embed_source, run_stack, Keys, Source};
use crate::kv::CrossMemory;
use crate::model::Model;
use crate::observe::{NoObserver, Observer};
use crate::{Error, TokenId};

/// A translation session over one encoder-decoder model and one arena.
pub struct Translator<'m, 'a> {
    dec: Decoder<'m, 'a>,
    cross: CrossMemory<'a>,
    hist: Histories<'a>,
    /// Greedy stream: next position and the token to feed there.
    pos: usize,
    last: TokenId,
    finished: bool,
}

/// Every buffer of a session, carved from `a` in one fixed order.
fn carve<'m, 'a>(model: &'m Model<'m>, beam_cap: usize, a: &mut Arena<'a>) -> Result<(Decoder<'m, 'a>, CrossMemory<'a>, Histories<'a>), Error> {
    let c = &model.config;
    let dec = Decoder::carve(model, beam_cap, c.max_len, true, a)?;
    let cross = CrossMemory::carve(a, c.n_dec, c.max_len, c.kv_width())?;
    let hist = Histories::carve(a, beam_cap, c.max_len)?;
    Ok((dec, cross, hist))
}

impl<'m, 'a> Translator<'m, 'a> {
    /// Exact arena bytes `model` needs for beams up to `beam_cap` (1 for greedy only).
    pub fn arena_bytes(model: &'m Model<'m>, beam_cap: usize) -> usize {
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
        if model.config.kind != ModelKind::EncoderDecoder {
            return Err(Error::WrongModelKind);
        }
        let needed = Self::arena_bytes(model, beam_cap);
        if arena.len() < needed {
            return Err(Error::ArenaTooSmall { needed, got: arena.len() });
        }
        let (dec, cross, hist) = carve(model, beam_cap, &mut Arena::new(arena)?)?;
        Ok(Translator { dec, cross, hist, pos: 0, last: model.config.bos, finished: true })
    }

    /// The model this session runs.
    pub fn model(&self) -> &'m Model<'m> {
        self.dec.model
    }

    /// Encode a source sentence: token ids, eos included, `1..=max_len` of them. Resets the
    /// decoder to its first step.
    pub fn encode(&mut self, src: &[TokenId]) -> Result<(), Error> {
        self.encode_observed(src, &mut NoObserver)
    }

    /// [`Translator::encode`], reporting every activation site to `obs`.
    pub fn encode_observed<O: Observer>(&mut self, src: &[TokenId], obs: &mut O) -> Result<(), Error> {
        let m = self.dec.model;
        let c = &m.config;
        if src.is_empty() {
            return Err(Error::EmptyInput);
        }
        if src.len() > c.max_len {
            return Err(Error::InputTooLong { len: src.len(), max: c.max_len });
        }
        crate::decoder::check_ids(c.vocab, src)?;
        self.cross.len = 0;
        let rows = embed_source(m, Source::Tokens(src), &mut self.dec.s, obs)?;
        run_stack(m, Stack::Encoder, &mut self.dec.s, rows, 0, Keys::Own, None, obs)?;
        cross_keys(m, &self.dec.s, rows, &mut self.cross, obs)?;
        self.restart();
        Ok(())
    }

    /// Point the greedy stream at its first step (bos at position 0).
    fn restart(&mut self) {
        self.pos = 0;
        self.last = self.dec.model.config.bos;
        self.finished = false;
    }

    /// Run one decoder step on KV slot `slot`: feed `token` at `pos`, leaving logits in
    /// [`Translator::logits`].
    fn step<O: Observer>(&mut self, slot: usize, token: TokenId, pos: usize, obs: &mut O) -> Result<(), Error> {
        if self.cross.len == 0 {
            return Err(Error::DecoderState);
        }
        self.dec.feed(slot, &[token], pos, Some(&self.cross), obs)
    }

    /// The `(vocab,)` logits of the last decoder step.
    pub fn logits(&self) -> &[i32] {
        self.dec.logits
    }

    /// Greedy decoding, streamed: the next target token, or `None` once eos is produced or
    /// `max_len - 1` tokens have been emitted. Call [`Translator::encode`] first.
    pub fn next_token(&mut self) -> Result<Option<TokenId>, Error> {
        let tok = self.greedy_step(&mut NoObserver)?;
        Ok(tok.filter(|&t| t != self.dec.model.config.eos))
    }

    /// One greedy step, reporting every activation site to `obs`: the chosen token, eos
    /// included, or `None` once decoding has finished. [`Translator::logits`] holds the step's
    /// logits.
    pub fn greedy_step<O: Observer>(&mut self, obs: &mut O) -> Result<Option<TokenId>, Error> {
        if self.cross.len == 0 {
            return Err(Error::DecoderState);
        }
        if self.greedy_done() {
            self.finished = true;
            return Ok(None);
        }
        self.step(0, self.last, self.pos, obs)?;
        let tok = argmax(self.dec.logits) as TokenId;
        self.pos += 1;
        self.last = tok;
        if tok == self.dec.model.config.eos {
            self.finished = true;
        }
        Ok(Some(tok))
    }

    /// Teacher forcing: feed `token` at the next position instead of the model's own choice,
    /// and return that step's logits (for scoring a given translation, or comparing layers).
    pub fn force_observed<O: Observer>(&mut self, token: TokenId, obs: &mut O) -> Result<&[i32], Error> {
        if self.cross.len == 0 || self.pos + 1 >= self.dec.model.config.max_len {
            return Err(Error::DecoderState);
        }
        self.step(0, token, self.pos, obs)?;
        self.pos += 1;
        self.last = token;
        Ok(self.dec.logits)
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
        if self.cross.len == 0 {
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
        self.finished || self.pos + 1 >= self.dec.model.config.max_len
    }

    /// Beam search of `width` (`1..=beam_cap`) with length normalisation ([`crate::beam`]):
    /// writes the best hypothesis (eos included when produced, at most `max_len - 1` tokens) to
    /// `out` and returns its length. Call [`Translator::encode`] first.
    ///
    /// The source stays encoded: a later [`Translator::greedy`] or [`Translator::next_token`]
    /// decodes it from its first step, and another beam search may follow.
    pub fn beam_search(&mut self, width: usize, out: &mut [TokenId]) -> Result<usize, Error> {
        if width == 0 || width > self.dec.slots {
            return Err(Error::BadBeamWidth { requested: width, capacity: self.dec.slots });
        }
        if self.cross.len == 0 {
            return Err(Error::DecoderState);
        }
        let m = self.dec.model;
        let c = &m.config;
        let start = Start { token: c.bos, pos: 0, max_steps: c.max_len - 1, eos: c.eos, log_softmax: m.output_scale };
        let slots = self.dec.slots;
        let r = beam::search(&mut BeamStep { dec: &mut self.dec, cross: Some(&self.cross) }, &mut self.hist, slots, width, start, out);
        // the source stays encoded: greedy decoding may follow, from its first step
        self.restart();
        r
    }
}
