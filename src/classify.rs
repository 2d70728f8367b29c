//! Classification sessions (encoder-only models): one window of token ids or feature frames in,
//! the head's `i32` outputs out (class scores, or regression values in units of
//! [`Model::output_scale`]). All memory comes from the caller's arena.
//!
//! ```text
//! arena (8-byte aligned, Classifier::arena_bytes(model) bytes):
//! ┌─────────────────────── scratch ──────────────────────┬ pooled ┬ outputs ┐
//! │ x (T,d) i16 · k v (T,kv) i8 · one block's h a ctx q ff│ (d) i16│ (N) i32 │
//! │ (B rows) · scores, probs (T)                          │        │         │
//! └───────────────────────────────────────────────────────┴────────┴─────────┘
//! T = max_len frames or ids, N = n_outputs, B = forward::BLOCK_ROWS.
//! ```

use crate::arena::{Arena, Phase, Region};
use crate::beam::argmax;
use crate::blob::{ModelKind, Stack};
use crate::forward::{embed_source, pool_and_head, run_stack, Keys, Scratch, Source};
use crate::model::Model;
use crate::observe::{NoObserver, Observer};
use crate::tokenizer::Node;
use crate::{Error, TokenId};

/// A classification session over one encoder-only model and one arena.
pub struct Classifier<'m, 'a> {
    model: &'m Model<'m>,
    s: Scratch<'a>,
    pooled: &'a mut [i16],
    outputs: &'a mut [i32],
}

struct Buffers<'a> {
    s: Scratch<'a>,
    pooled: &'a mut [i16],
    outputs: &'a mut [i32],
}

fn carve<'a>(model: &Model<'_>, a: &mut Arena<'a>) -> Result<Buffers<'a>, Error> {
    let c = &model.config;
    Ok(Buffers { s: Scratch::carve(c, c.max_len, true, a)?, pooled: a.take("pooled", c.d_model)?, outputs: a.take("outputs", c.n_outputs)? })
}

impl<'m, 'a> Classifier<'m, 'a> {
    /// Exact arena bytes `model` needs.
    pub fn arena_bytes(model: &Model<'_>) -> usize {
        let mut a = Arena::dry();
        let _ = carve(model, &mut a);
        a.used()
    }

    /// Every buffer of [`Classifier::arena_bytes`]'s arena, in order, to `f`.
    pub fn arena_map(model: &Model<'_>, f: &mut dyn FnMut(Region)) {
        let _ = carve(model, &mut Arena::traced(0, Phase::Session, f));
    }

    /// A session whose buffers live in `arena` (8-byte aligned, at least
    /// [`Classifier::arena_bytes`] bytes).
    pub fn new(model: &'m Model<'m>, arena: &'a mut [u8]) -> Result<Self, Error> {
        let mut a = Arena::session(model, ModelKind::EncoderOnly, arena, || Self::arena_bytes(model))?;
        let b = carve(model, &mut a)?;
        Ok(Classifier { model, s: b.s, pooled: b.pooled, outputs: b.outputs })
    }

    /// The model this session runs.
    pub fn model(&self) -> &'m Model<'m> {
        self.model
    }

    /// Classify a window of token ids (`1..=max_len`, as the model was trained: bos first, say):
    /// the head's `(n_outputs,)` outputs.
    pub fn classify_tokens(&mut self, ids: &[TokenId]) -> Result<&[i32], Error> {
        self.run(Source::Tokens(ids), &mut NoObserver)
    }

    /// Classify a text (token models): the model's tokenizer gives the ids the model reads
    /// ([`crate::tokenizer::Tokenizer::encode_prompt`], at most `max_len`; WordPiece frames them
    /// `[CLS] … [SEP]`), in the caller's `scratch` ([`crate::tokenizer::Tokenizer::scratch_len`]
    /// of the text's length) and `ids` (`max_len` entries).
    pub fn classify_text(&mut self, text: &str, scratch: &mut [Node], ids: &mut [TokenId]) -> Result<&[i32], Error> {
        let c = &self.model.config;
        if !c.tokens() {
            return Err(Error::WrongInput);
        }
        let n = self.model.tokenizer.encode_prompt(text, scratch, ids, c.max_len)?;
        let ids = ids.get(..n).ok_or(Error::OutputFull { capacity: n })?;
        self.run(Source::Tokens(ids), &mut NoObserver)
    }

    /// Classify a window of feature frames: `(frames, n_features)` `i16`, quantized as
    /// [`Model::feature_quant`] says, `1..=max_len` frames.
    pub fn classify_features(&mut self, frames: &[i16]) -> Result<&[i32], Error> {
        self.run(Source::Features(frames), &mut NoObserver)
    }

    /// The class with the highest score in the last outputs (the first of equals).
    pub fn class(&self) -> usize {
        argmax(self.outputs)
    }

    /// The last outputs.
    pub fn outputs(&self) -> &[i32] {
        self.outputs
    }

    /// [`Classifier::classify_tokens`] or [`Classifier::classify_features`], reporting every
    /// activation site to `obs`.
    pub fn run_observed<O: Observer>(&mut self, ids: Option<&[TokenId]>, frames: Option<&[i16]>, obs: &mut O) -> Result<&[i32], Error> {
        match (ids, frames) {
            (Some(ids), None) => self.run(Source::Tokens(ids), obs),
            (None, Some(f)) => self.run(Source::Features(f), obs),
            _ => Err(Error::WrongInput),
        }
    }

    fn run<O: Observer>(&mut self, src: Source<'_>, obs: &mut O) -> Result<&[i32], Error> {
        let m = self.model;
        let c = &m.config;
        let rows = match src {
            Source::Tokens(ids) => {
                if !c.tokens() {
                    return Err(Error::WrongInput);
                }
                crate::decoder::check_ids(c.vocab, ids)?;
                ids.len()
            }
            Source::Features(f) => {
                if c.tokens() {
                    return Err(Error::WrongInput);
                }
                if f.len() % c.n_features != 0 {
                    return Err(Error::BadFeatureCount { len: f.len(), per_frame: c.n_features });
                }
                f.len() / c.n_features
            }
        };
        if rows == 0 {
            return Err(Error::EmptyInput);
        }
        if rows > c.max_len {
            return Err(Error::InputTooLong { len: rows, max: c.max_len });
        }
        embed_source(m, src, &mut self.s, obs)?;
        run_stack(m, Stack::Encoder, &mut self.s, rows, 0, Keys::Own, None, obs)?;
        pool_and_head(m, &mut self.s, rows, self.pooled, self.outputs, obs)?;
        Ok(self.outputs)
    }
}
