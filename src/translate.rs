//! Translation sessions (the encoder-decoder): encode a source once, then decode greedily
//! (streaming, one token at a time) or with beam search. All memory comes from the caller's
//! arena.
//!
//! ```text
//! arena (8-byte aligned, Translator::arena_bytes(model, beam) bytes):
//! ┌ cross K/V ──┬ beam ─┬──────────────────── work ─────────────────────────────────┐
//! │ (L,T,kv) ×2 │ (W,T) │ encoding:  x (T,d) i16 · k v (T,kv) i8 · one block's h a  │
//! │ i8          │ u16 ×3│            ctx q ff (B rows) · scores, probs (T)          │
//! │             │       │ decoding:  logits (V) i32 · one row's scratch ·           │
//! │             │       │            self K/V (W,L,T,kv) i8 ×2                      │
//! └─────────────┴───────┴───────────────────────────────────────────────────────────┘
//! T = max_len, L = decoder layers, W = beam capacity, B = forward::BLOCK_ROWS. The encoder
//! and the decoder take turns in the work area: the encoder's buffers are dead once the cross
//! K/V are written, and decoding restarts from its first step after every encode. Beam
//! scores, slot maps and candidates live on the stack (at most `MAX_BEAM`).
//! ```

use crate::arena::{map_work_phases, Arena, Region};
use crate::beam::{self, argmax, Histories, Start, MAX_BEAM};
use crate::blob::{ModelKind, Stack};
use crate::decoder::{BeamStep, Decoder};
use crate::forward::{cross_keys, embed_source, run_stack, Keys, Scratch, Source};
use crate::kv::CrossMemory;
use crate::model::Model;
use crate::observe::{NoObserver, Observer};
use crate::{Error, TokenId};

/// A translation session over one encoder-decoder model and one arena.
pub struct Translator<'m, 'a> {
    model: &'m Model<'m>,
    cross: CrossMemory<'a>,
    hist: Histories<'a>,
    /// The encoder's buffers while encoding, the decoder's ([`decoder`]) after.
    work: &'a mut [u8],
    /// Beam slots in the decoder's cache.
    slots: usize,
    /// Greedy stream: next position and the token to feed there.
    pos: usize,
    last: TokenId,
    finished: bool,
}

/// The encoder's buffers, over the work area.
fn encoder<'w>(model: &Model<'_>, a: &mut Arena<'w>) -> Result<Scratch<'w>, Error> {
    let c = &model.config;
    Scratch::carve(c, c.max_len, true, a)
}

/// The decoder's buffers, over the work area: the logits first (so they stay at offset 0 for
/// [`Translator::logits`]), one row of scratch, and the cache of `slots` beams.
fn decoder<'m, 'w>(model: &'m Model<'m>, slots: usize, a: &mut Arena<'w>) -> Result<Decoder<'m, 'w>, Error> {
    Decoder::carve(model, slots, 1, false, a)
}

/// Bytes of the work area: the larger of the encoder's and the decoder's.
fn work_bytes(model: &Model<'_>, slots: usize) -> usize {
    let (mut enc, mut dec) = (Arena::dry(), Arena::dry());
    let _ = encoder(model, &mut enc);
    let _ = decoder(model, slots, &mut dec);
    enc.used().max(dec.used())
}

/// Every buffer of a session, carved from `a` in one fixed order.
fn carve<'a>(model: &Model<'_>, beam_cap: usize, a: &mut Arena<'a>) -> Result<(CrossMemory<'a>, Histories<'a>, &'a mut [u8]), Error> {
    let c = &model.config;
    let cross = CrossMemory::carve(a, 1, c.n_dec, c.max_len, c.kv_width())?;
    let hist = Histories::carve(a, beam_cap, c.max_len)?;
    let work = a.take("work", work_bytes(model, beam_cap))?;
    Ok((cross, hist, work))
}

impl<'m, 'a> Translator<'m, 'a> {
    /// Exact arena bytes `model` needs for beams up to `beam_cap` (1 for greedy only).
    pub fn arena_bytes(model: &'m Model<'m>, beam_cap: usize) -> usize {
        let mut a = Arena::dry();
        let _ = carve(model, beam_cap.clamp(1, MAX_BEAM), &mut a);
        a.used()
    }

    /// Every buffer of [`Translator::arena_bytes`]'s arena, in order, to `f`: the session's, then
    /// the work area's while encoding and while decoding (the same bytes, in turn).
    pub fn arena_map(model: &'m Model<'m>, beam_cap: usize, f: &mut dyn FnMut(Region)) {
        let beam_cap = beam_cap.clamp(1, MAX_BEAM);
        map_work_phases(
            f,
            |a| drop(carve(model, beam_cap, a)),
            |a| drop(encoder(model, a)),
            |a| drop(decoder(model, beam_cap, a)),
        );
    }

    /// A session whose buffers live in `arena` (8-byte aligned, at least
    /// [`Translator::arena_bytes`] bytes). `beam_cap` is the largest beam width it will run.
    pub fn new(model: &'m Model<'m>, arena: &'a mut [u8], beam_cap: usize) -> Result<Self, Error> {
        if beam_cap == 0 || beam_cap > MAX_BEAM {
            return Err(Error::BadBeamWidth { requested: beam_cap, capacity: MAX_BEAM });
        }
        let mut a = Arena::session(model, ModelKind::EncoderDecoder, arena, || Self::arena_bytes(model, beam_cap))?;
        let (cross, hist, work) = carve(model, beam_cap, &mut a)?;
        Ok(Translator { model, cross, hist, work, slots: beam_cap, pos: 0, last: model.config.bos, finished: true })
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
        let m = self.model;
        let c = &m.config;
        if src.is_empty() {
            return Err(Error::EmptyInput);
        }
        if src.len() > c.max_len {
            return Err(Error::InputTooLong { len: src.len(), max: c.max_len });
        }
        crate::decoder::check_ids(c.vocab, src)?;
        self.cross.len = 0;
        let mut s = encoder(m, &mut Arena::reuse(self.work))?;
        let rows = embed_source(m, Source::Tokens(src), &mut s, obs)?;
        run_stack(m, Stack::Encoder, &mut s, rows, 0, Keys::Own, None, obs)?;
        cross_keys(m, &s, rows, &mut self.cross, 0, obs)?;
        self.cross.len = rows;
        self.restart();
        Ok(())
    }

    /// Point the greedy stream at its first step (bos at position 0).
    fn restart(&mut self) {
        self.pos = 0;
        self.last = self.model.config.bos;
        self.finished = false;
    }

    /// Run one greedy decoder step: feed `token` at `pos`, leaving logits in
    /// [`Translator::logits`].
    fn step<O: Observer>(&mut self, token: TokenId, pos: usize, obs: &mut O) -> Result<(), Error> {
        if self.cross.len == 0 {
            return Err(Error::DecoderState);
        }
        let mut dec = decoder(self.model, self.slots, &mut Arena::reuse(self.work))?;
        dec.feed(0, &[token], pos, Some(&self.cross), obs)
    }

    /// The `(vocab,)` logits of the last decoder step (meaningless after [`Translator::encode`],
    /// whose buffers share their memory).
    pub fn logits(&self) -> &[i32] {
        let n = self.model.config.vocab * core::mem::size_of::<i32>();
        self.work.get(..n).and_then(|b| bytemuck::try_cast_slice(b).ok()).unwrap_or(&[])
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
        if self.cross.len == 0 {
            return Err(Error::DecoderState);
        }
        if self.greedy_done() {
            self.finished = true;
            return Ok(None);
        }
        self.step(self.last, self.pos, obs)?;
        let tok = argmax(self.logits()) as TokenId;
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
        if self.cross.len == 0 || self.pos + 1 >= self.model.config.max_len {
            return Err(Error::DecoderState);
        }
        self.step(token, self.pos, obs)?;
        self.pos += 1;
        self.last = token;
        Ok(self.logits())
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
        self.finished || self.pos + 1 >= self.model.config.max_len
    }

    /// Beam search of `width` (`1..=beam_cap`) with length normalisation ([`crate::beam`]):
    /// writes the best hypothesis (eos included when produced, at most `max_len - 1` tokens) to
    /// `out` and returns its length. Call [`Translator::encode`] first.
    ///
    /// The source stays encoded: a later [`Translator::greedy`] or [`Translator::next_token`]
    /// decodes it from its first step, and another beam search may follow.
    pub fn beam_search(&mut self, width: usize, out: &mut [TokenId]) -> Result<usize, Error> {
        if width == 0 || width > self.slots {
            return Err(Error::BadBeamWidth { requested: width, capacity: self.slots });
        }
        if self.cross.len == 0 {
            return Err(Error::DecoderState);
        }
        let m = self.model;
        let c = &m.config;
        let start = Start { token: c.bos, pos: 0, max_steps: c.max_len - 1, eos: c.eos, log_softmax: m.output_scale };
        let mut dec = decoder(m, self.slots, &mut Arena::reuse(self.work))?;
        let r = beam::search(&mut BeamStep { dec: &mut dec, cross: Some(&self.cross) }, &mut self.hist, self.slots, width, start, out);
        // the source stays encoded: greedy decoding may follow, from its first step
        self.restart();
        r
    }
}
