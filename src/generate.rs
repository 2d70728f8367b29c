//! Generation sessions (decoder-only language models): feed a prompt in one pass over its rows,
//! then continue it greedily, by sampling, or with beam search, one token at a time. All memory
//! comes from the caller's arena.
//!
//! ```text
//! arena (8-byte aligned, Generator::arena_bytes(model, beam) bytes):
//! ┌ logits ┬────────────── scratch ────────────────┬──── K/V cache ────┬─ beam ─┐
//! │ (V) i32│ x (T,d) i16 · one block's h a ctx q ff│ (W,L,T,kv) i8 ×2  │ (W,T)  │
//! │        │ (B rows; RoPE: q/k before rotation;   │                   │ u16 ×3 │
//! │        │ SwiGLU: gate) · scores, probs (T)     │                   │        │
//! └────────┴───────────────────────────────────────┴───────────────────┴────────┘
//! T = max_len (the context), L = layers, kv = n_kv_heads · d_head (grouped-query attention
//! keeps only the K/V heads), W = beam capacity, B = forward::BLOCK_ROWS (a prompt runs
//! through the layers a block of rows at a time).
//! ```

use crate::arena::{Arena, Phase, Region};
use crate::beam::{self, argmax, Histories, Start, MAX_BEAM};
use crate::blob::ModelKind;
use crate::decoder::{BeamStep, Decoder};
use crate::model::Model;
use crate::observe::{NoObserver, Observer};
use crate::sample::Sampler;
use crate::{Error, TokenId};

/// A generation session over one decoder-only model and one arena.
pub struct Generator<'m, 'a> {
    dec: Decoder<'m, 'a>,
    hist: Histories<'a>,
    /// Tokens in the context (the prompt, then what was generated and fed back).
    len: usize,
    /// The token chosen last and not yet fed (its logits are not computed yet).
    pending: Option<TokenId>,
    /// The logits are those of the context's last token.
    ready: bool,
    finished: bool,
}

fn carve<'m, 'a>(model: &'m Model<'m>, beam_cap: usize, a: &mut Arena<'a>) -> Result<(Decoder<'m, 'a>, Histories<'a>), Error> {
    let c = &model.config;
    let dec = Decoder::carve(model, beam_cap, c.max_len, false, a)?;
    let hist = Histories::carve(a, beam_cap, c.max_len)?;
    Ok((dec, hist))
}

impl<'m, 'a> Generator<'m, 'a> {
    /// Exact arena bytes `model` needs for beams up to `beam_cap` (1 without beam search).
    pub fn arena_bytes(model: &'m Model<'m>, beam_cap: usize) -> usize {
        let mut a = Arena::dry();
        let _ = carve(model, beam_cap.clamp(1, MAX_BEAM), &mut a);
        a.used()
    }

    /// Every buffer of [`Generator::arena_bytes`]'s arena, in order, to `f`.
    pub fn arena_map(model: &'m Model<'m>, beam_cap: usize, f: &mut dyn FnMut(Region)) {
        let _ = carve(model, beam_cap.clamp(1, MAX_BEAM), &mut Arena::traced(0, Phase::Session, f));
    }

    /// A session whose buffers live in `arena` (8-byte aligned, at least
    /// [`Generator::arena_bytes`] bytes).
    pub fn new(model: &'m Model<'m>, arena: &'a mut [u8], beam_cap: usize) -> Result<Self, Error> {
        if beam_cap == 0 || beam_cap > MAX_BEAM {
            return Err(Error::BadBeamWidth { requested: beam_cap, capacity: MAX_BEAM });
        }
        let mut a = Arena::session(model, ModelKind::DecoderOnly, arena, || Self::arena_bytes(model, beam_cap))?;
        let (dec, hist) = carve(model, beam_cap, &mut a)?;
        Ok(Generator { dec, hist, len: 0, pending: None, ready: false, finished: true })
    }

    /// The model this session runs.
    pub fn model(&self) -> &'m Model<'m> {
        self.dec.model
    }

    /// The longest prompt: the context, less one position for the first new token.
    pub fn max_prompt(&self) -> usize {
        self.dec.model.config.max_len - 1
    }

    /// Start a new text from `prompt` (`1..=max_len - 1` ids, bos first if the model uses one;
    /// the continuation then has room for `max_len - prompt.len()` tokens),
    /// in one pass over its rows. A longer prompt is refused ([`Error::InputTooLong`]): cut it
    /// before, keeping its end, if that is what you want.
    pub fn prompt(&mut self, prompt: &[TokenId]) -> Result<(), Error> {
        self.prompt_observed(prompt, &mut NoObserver)
    }

    /// [`Generator::prompt`], reporting every activation site to `obs`.
    pub fn prompt_observed<O: Observer>(&mut self, prompt: &[TokenId], obs: &mut O) -> Result<(), Error> {
        self.finished = true;
        self.ready = false;
        if prompt.is_empty() {
            return Err(Error::EmptyInput);
        }
        if prompt.len() > self.max_prompt() {
            return Err(Error::InputTooLong { len: prompt.len(), max: self.max_prompt() });
        }
        self.dec.feed(0, prompt, 0, None, obs)?;
        (self.len, self.pending, self.ready, self.finished) = (prompt.len(), None, true, false);
        Ok(())
    }

    /// The `(vocab,)` logits for the next token.
    pub fn logits(&self) -> &[i32] {
        self.dec.logits
    }

    /// Tokens in the context.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been prompted.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Feed the pending token, so the logits are the next token's. `false` once the context is
    /// full.
    fn catch_up<O: Observer>(&mut self, obs: &mut O) -> Result<bool, Error> {
        if let Some(t) = self.pending.take() {
            if self.len >= self.dec.model.config.max_len {
                return Ok(false);
            }
            self.dec.feed(0, &[t], self.len, None, obs)?;
            self.len += 1;
        }
        Ok(true)
    }

    /// The next token by `choose(logits)`, streamed: eos once, when chosen, then `None`; `None`
    /// as soon as the context is full. The chosen token is fed lazily, on the next call.
    fn step_with<O: Observer>(&mut self, obs: &mut O, choose: impl FnOnce(&[i32]) -> TokenId) -> Result<Option<TokenId>, Error> {
        if !self.ready {
            return Err(Error::DecoderState);
        }
        // the prompt and the new tokens together never exceed the context
        if self.finished || !self.catch_up(obs)? || self.len >= self.dec.model.config.max_len {
            self.finished = true;
            return Ok(None);
        }
        let t = choose(self.dec.logits);
        if t == self.dec.model.config.eos {
            self.finished = true;
        } else {
            self.pending = Some(t);
        }
        Ok(Some(t))
    }

    /// Greedy continuation, one token per call (eos is not yielded).
    pub fn next_token(&mut self) -> Result<Option<TokenId>, Error> {
        self.next_observed(&mut NoObserver)
    }

    /// [`Generator::next_token`], reporting every activation site to `obs`.
    pub fn next_observed<O: Observer>(&mut self, obs: &mut O) -> Result<Option<TokenId>, Error> {
        let eos = self.dec.model.config.eos;
        Ok(self.greedy_step(obs)?.filter(|&t| t != eos))
    }

    /// One greedy step, reporting every activation site to `obs`: the chosen token, eos
    /// included, or `None` once eos was chosen or the context is full. [`Generator::logits`]
    /// holds the logits the token was chosen from (the test vectors digest them).
    pub fn greedy_step<O: Observer>(&mut self, obs: &mut O) -> Result<Option<TokenId>, Error> {
        self.step_with(obs, |l| argmax(l) as TokenId)
    }

    /// A sampled continuation, one token per call ([`Sampler`]: temperature, top-k, top-p and a
    /// seeded RNG; the same seed gives the same tokens on every target).
    pub fn sample_next(&mut self, sampler: &mut Sampler) -> Result<Option<TokenId>, Error> {
        let lsm = self.dec.model.output_scale;
        let eos = self.dec.model.config.eos;
        Ok(self.step_with(&mut NoObserver, |l| sampler.pick(l, lsm))?.filter(|&t| t != eos))
    }

    /// Teacher forcing: feed `token` as the next one, whatever the model would choose, and
    /// return the logits that follow it (for perplexity, or comparing layers).
    pub fn force_observed<O: Observer>(&mut self, token: TokenId, obs: &mut O) -> Result<&[i32], Error> {
        if !self.ready || !self.catch_up(obs)? || self.len >= self.dec.model.config.max_len {
            return Err(Error::DecoderState);
        }
        self.dec.feed(0, &[token], self.len, None, obs)?;
        self.len += 1;
        Ok(self.dec.logits)
    }

    /// Beam search of `width` (`1..=beam_cap`) continuing `prompt` ([`crate::beam`]): the best
    /// continuation (eos included when produced; at most `max_new` tokens, and no more than the
    /// context holds) goes to `out`, and its length is returned. The search feeds the prompt
    /// itself; afterwards the stream needs a new [`Generator::prompt`].
    pub fn beam_search(&mut self, prompt: &[TokenId], width: usize, max_new: usize, out: &mut [TokenId]) -> Result<usize, Error> {
        if width == 0 || width > self.dec.slots {
            return Err(Error::BadBeamWidth { requested: width, capacity: self.dec.slots });
        }
        let (Some((&last, head)), true) = (prompt.split_last(), prompt.len() <= self.max_prompt()) else {
            return Err(if prompt.is_empty() { Error::EmptyInput } else { Error::InputTooLong { len: prompt.len(), max: self.max_prompt() } });
        };
        // every id, the last one too, before anything runs (even a search of no steps)
        crate::decoder::check_ids(self.dec.model.config.vocab, prompt)?;
        self.finished = true;
        self.ready = false;
        // slot 0 holds every prompt position but the last, which the first beam step feeds
        if !head.is_empty() {
            self.dec.feed(0, head, 0, None, &mut NoObserver)?;
        }
        let m = self.dec.model;
        let c = &m.config;
        // the prompt and the continuation together fit the context
        let room = c.max_len - prompt.len();
        let start = Start { token: last, pos: head.len(), max_steps: max_new.min(room), eos: c.eos, log_softmax: m.output_scale };
        let slots = self.dec.slots;
        beam::search(&mut BeamStep { dec: &mut self.dec, cross: None }, &mut self.hist, slots, width, start, out)
    }
}
