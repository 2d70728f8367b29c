//! Batched greedy translation: up to `lanes` sentences decoded together, one step for all of
//! them at a time. Each step is one many-row pass: every linear layer, and the output projection
//! (`(rows, d) × (d, vocab)`), runs the live sentences' rows as one product, while self- and
//! cross-attention stay per sentence, over its own KV slot and its own encoded source. Rows of a
//! linear layer are independent, so every sentence's tokens are those of
//! [`crate::Translator::greedy`], id for id.
//!
//! A sentence that finishes (eos, or `max_len - 1` tokens) frees its lane, and a new source may
//! be encoded into it between steps while the others continue.
//!
//! ```text
//! arena (8-byte aligned, Batch::arena_bytes(model, lanes) bytes):
//! ┌ cross K/V ────┬ self K/V ─────┬ lanes ┬ rows ─┬ owner ┬──────────── work ──────────────────┐
//! │ (N,L,T,kv) ×2 │ (N,L,T,kv) ×2 │ (N,)  │ (N,)  │ (N,)  │ encoding: one source's encoder     │
//! │ i8            │ i8            │ RowAt │ RowAt │ u32   │   buffers                          │
//! │               │               │       │       │       │ decoding: logits (N,V) i32 · N     │
//! │               │               │       │       │       │   rows' scratch (k, v: new keys)   │
//! └───────────────┴───────────────┴───────┴───────┴───────┴────────────────────────────────────┘
//! N = lanes, T = max_len, L = decoder layers. The work area holds nothing between calls, so
//! encoding a source into a free lane leaves the other lanes' caches as they were.
//! ```

use crate::arena::{map_work_phases, Arena, Region};
use crate::blob::{ModelKind, Stack};
use crate::forward::{cross_keys, embed_source, embed_target, output, run_stack, Keys, RowAt, Scratch, Source};
use crate::kernels::argmax::argmax;
use crate::kv::{CrossMemory, KvCache};
use crate::model::Model;
use crate::observe::NoObserver;
use crate::{Error, TokenId};

/// Largest number of lanes ([`Batch::greedy_all`] keeps a step's tokens on the stack).
pub const MAX_LANES: usize = 64;

/// A batched greedy translation session over one encoder-decoder model and one arena.
pub struct Batch<'m, 'a> {
    model: &'m Model<'m>,
    cross: CrossMemory<'a>,
    cache: KvCache<'a>,
    /// Each lane's next step (`src_len == 0`: free).
    lanes: &'a mut [RowAt],
    /// The live lanes of the step running, in lane order.
    rows: &'a mut [RowAt],
    /// [`Batch::greedy_all`]: the index of the source each lane decodes.
    owner: &'a mut [u32],
    work: &'a mut [u8],
}

/// The encoder's buffers, over the work area (those of [`crate::Translator`]).
fn encoder<'w>(model: &Model<'_>, a: &mut Arena<'w>) -> Result<Scratch<'w>, Error> {
    let c = &model.config;
    Scratch::carve(c, c.max_len, true, a)
}

/// A step's buffers, over the work area: `(lanes, vocab)` logits and the scratch of `lanes`
/// rows (its `k` and `v` hold the rows' new keys and values on their way to the cache).
fn step_buffers<'w>(model: &Model<'_>, lanes: usize, a: &mut Arena<'w>) -> Result<(&'w mut [i32], Scratch<'w>), Error> {
    let c = &model.config;
    let logits = a.take("logits", lanes * c.vocab)?;
    Ok((logits, Scratch::carve(c, lanes, true, a)?))
}

fn work_bytes(model: &Model<'_>, lanes: usize) -> usize {
    let (mut enc, mut dec) = (Arena::dry(), Arena::dry());
    let _ = encoder(model, &mut enc);
    let _ = step_buffers(model, lanes, &mut dec);
    enc.used().max(dec.used())
}

type Parts<'a> = (CrossMemory<'a>, KvCache<'a>, &'a mut [RowAt], &'a mut [RowAt], &'a mut [u32], &'a mut [u8]);

/// Every buffer of a batch, carved from `a` in one fixed order.
fn carve<'a>(model: &Model<'_>, lanes: usize, a: &mut Arena<'a>) -> Result<Parts<'a>, Error> {
    let c = &model.config;
    let cross = CrossMemory::carve(a, lanes, c.n_dec, c.max_len, c.kv_width())?;
    let cache = KvCache::carve(a, lanes, c.n_dec, c.max_len, c.kv_width())?;
    let (st, rows, owner) = (a.take("lanes", lanes)?, a.take("rows", lanes)?, a.take("owner", lanes)?);
    let work = a.take("work", work_bytes(model, lanes))?;
    Ok((cross, cache, st, rows, owner, work))
}

impl<'m, 'a> Batch<'m, 'a> {
    /// Exact arena bytes of a batch of `lanes` sentences (`1..=MAX_LANES`).
    pub fn arena_bytes(model: &'m Model<'m>, lanes: usize) -> usize {
        let mut a = Arena::dry();
        let _ = carve(model, lanes.clamp(1, MAX_LANES), &mut a);
        a.used()
    }

    /// Every buffer of [`Batch::arena_bytes`]'s arena, in order, to `f`: the session's, then the
    /// work area's while encoding and while decoding (the same bytes, in turn).
    pub fn arena_map(model: &'m Model<'m>, lanes: usize, f: &mut dyn FnMut(Region)) {
        let lanes = lanes.clamp(1, MAX_LANES);
        map_work_phases(
            f,
            |a| drop(carve(model, lanes, a)),
            |a| drop(encoder(model, a)),
            |a| drop(step_buffers(model, lanes, a)),
        );
    }

    /// A batch of `lanes` sentences (`1..=MAX_LANES`) whose buffers live in `arena` (8-byte
    /// aligned, at least [`Batch::arena_bytes`] bytes). Every lane starts free.
    pub fn new(model: &'m Model<'m>, arena: &'a mut [u8], lanes: usize) -> Result<Self, Error> {
        if lanes == 0 || lanes > MAX_LANES {
            return Err(Error::BadBatchSize { requested: lanes, capacity: MAX_LANES });
        }
        let mut a = Arena::session(model, ModelKind::EncoderDecoder, arena, || Self::arena_bytes(model, lanes))?;
        let (cross, cache, st, rows, owner, work) = carve(model, lanes, &mut a)?;
        Ok(Batch { model, cross, cache, lanes: st, rows, owner, work })
    }

    /// Lanes of this batch.
    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// Whether `lane` is decoding a sentence.
    pub fn is_live(&self, lane: usize) -> bool {
        self.lanes.get(lane).is_some_and(|l| l.src_len > 0)
    }

    /// Sentences decoding.
    pub fn live(&self) -> usize {
        self.lanes.iter().filter(|l| l.src_len > 0).count()
    }

    /// Encode a source (token ids, eos included, `1..=max_len`) into `lane`, which starts
    /// decoding it at the next [`Batch::step`]. A sentence still decoding there is dropped; the
    /// other lanes are untouched.
    pub fn encode(&mut self, lane: usize, src: &[TokenId]) -> Result<(), Error> {
        let m = self.model;
        let c = &m.config;
        if src.is_empty() {
            return Err(Error::EmptyInput);
        }
        if src.len() > c.max_len {
            return Err(Error::InputTooLong { len: src.len(), max: c.max_len });
        }
        crate::decoder::check_ids(c.vocab, src)?;
        let st = self.lanes.get_mut(lane).ok_or(Error::DecoderState)?;
        st.src_len = 0;
        let mut s = encoder(m, &mut Arena::reuse(self.work))?;
        let rows = embed_source(m, Source::Tokens(src), &mut s, &mut NoObserver)?;
        run_stack(m, Stack::Encoder, &mut s, rows, 0, Keys::Own, None, &mut NoObserver)?;
        cross_keys(m, &s, rows, &mut self.cross, lane, &mut NoObserver)?;
        // lane < MAX_LANES and rows <= max_len (<= blob::MAX_LEN), both checked
        *st = RowAt { token: c.bos, pos: 0, slot: lane as u16, src_len: rows as u16 };
        Ok(())
    }

    /// One greedy step of every live sentence: `out[lane]` gets the lane's next token (eos
    /// included), or `None` for a lane that is free. A lane whose sentence ends (eos, or
    /// `max_len - 1` tokens) is free after the step. Returns the number of sentences stepped.
    pub fn step(&mut self, out: &mut [Option<TokenId>]) -> Result<usize, Error> {
        let m = self.model;
        let c = &m.config;
        let n = self.lanes.len();
        if out.len() < n {
            return Err(Error::OutputFull { capacity: out.len() });
        }
        out.fill(None);
        let mut rows = 0;
        for (l, r) in self.lanes.iter().filter(|l| l.src_len > 0).zip(self.rows.iter_mut()) {
            *r = *l;
            rows += 1;
        }
        if rows == 0 {
            return Ok(0);
        }
        let at = self.rows.get(..rows).ok_or(Error::DecoderState)?;
        let (logits, mut s) = step_buffers(m, n, &mut Arena::reuse(self.work))?;
        embed_target(m, rows, at.iter().map(|r| (r.token, r.pos as usize)), &mut s, &mut NoObserver)?;
        run_stack(m, Stack::Decoder, &mut s, rows, 0, Keys::Rows(&mut self.cache, at), Some(&self.cross), &mut NoObserver)?;
        let logits = logits.get_mut(..rows * c.vocab).ok_or(Error::DecoderState)?;
        output(m, &s, 0..rows, logits, &mut NoObserver)?;
        for (r, lg) in at.iter().zip(logits.chunks_exact(c.vocab.max(1))) {
            let tok = argmax(lg) as TokenId;
            let lane = r.slot as usize;
            let st = self.lanes.get_mut(lane).ok_or(Error::DecoderState)?;
            let pos = r.pos as usize + 1;
            *st = if tok == c.eos || pos + 1 >= c.max_len { RowAt::default() } else { RowAt { token: tok, pos: pos as u16, ..*r } };
            if let Some(o) = out.get_mut(lane) {
                *o = Some(tok);
            }
        }
        Ok(rows)
    }

    /// Greedy decoding of every source in `srcs` (each as for [`Batch::encode`]), a freed lane
    /// taking the next source before the next step. `emit(i, token)` receives source `i`'s
    /// tokens in order, eos included when produced (the sentences' tokens interleave). Returns
    /// the number of sources. Lanes live before the call are dropped.
    pub fn greedy_all<'s>(&mut self, srcs: impl IntoIterator<Item = &'s [TokenId]>, mut emit: impl FnMut(usize, TokenId)) -> Result<usize, Error> {
        let mut srcs = srcs.into_iter();
        let mut seen = 0;
        let mut toks = [None; MAX_LANES];
        let toks = toks.get_mut(..self.lanes.len()).ok_or(Error::DecoderState)?;
        self.lanes.fill(RowAt::default());
        loop {
            for lane in 0..self.lanes.len() {
                if self.is_live(lane) {
                    continue;
                }
                let Some(src) = srcs.next() else { break };
                self.encode(lane, src)?;
                *self.owner.get_mut(lane).ok_or(Error::DecoderState)? = seen as u32;
                seen += 1;
            }
            // every lane free and no source left
            if self.step(toks)? == 0 {
                return Ok(seen);
            }
            for (t, &i) in toks.iter().zip(self.owner.iter()) {
                if let Some(t) = t {
                    emit(i as usize, *t);
                }
            }
        }
    }
}
