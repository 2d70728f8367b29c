//! Replay one test-vector case on this build and compare it with the host's results: the same
//! input rule (the device tokenizer on the case's text, or its feature frames), the same
//! greedy decoding, the same digest. The host tests and every firmware run this; the converter
//! writes what it checks (`tools/src/vectors.rs`).
//!
//! Per kind:
//! - translate: `encode_source(text)` must give the case's source ids; encode; greedy steps
//!   until eos or `max_len - 1` tokens, each step's `(vocab,)` logits into the digest;
//! - generate: `encode_prompt(text, max_len - 1)` (bos, then pieces) must give the prompt ids;
//!   prompt; greedy steps until eos, a full context or [`MAX_NEW`] tokens, each step's logits
//!   into the digest;
//! - classify: the case's `i16` feature frames (or `encode_prompt(text, max_len)`); one pass;
//!   the `(n_outputs,)` head outputs into the digest, their argmax the one output id.
//!
//! Digests are 32-bit FNV-1a over the little-endian bytes of every `i32`, in step order.

use core::fmt;

use super::{Case, CaseKind, Fnv1a, MAX_NEW};
use crate::blob::ModelKind;
use crate::observe::Observer;
use crate::tokenizer::{DecodeState, Node};
use crate::{argmax, Classifier, Error, Generator, Model, TokenId, Translator};

/// A clock the replay reads between stages: instructions retired on a board, anything
/// monotonic elsewhere.
pub trait Meter {
    fn now(&mut self) -> u64;
}

/// No clock: every cost is 0.
pub struct NoMeter;

impl Meter for NoMeter {
    fn now(&mut self) -> u64 {
        0
    }
}

/// What a case cost, by stage, in [`Meter`] units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    pub tokenize: u64,
    /// The encoder pass (translate), the prompt pass (generate) or the whole classification.
    pub prefill: u64,
    /// Every greedy step, the final eos step included; the digest and the text excluded.
    pub decode: u64,
    pub steps: usize,
}

impl Cost {
    pub fn total(&self) -> u64 {
        self.tokenize + self.prefill + self.decode
    }

    /// Add `o`'s stages and steps to these.
    pub fn add(&mut self, o: &Cost) {
        self.tokenize += o.tokenize;
        self.prefill += o.prefill;
        self.decode += o.decode;
        self.steps += o.steps;
    }
}

/// The outcome of one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replay {
    /// The device's input ids (or frames) equal the case's.
    pub input_ok: bool,
    /// Input ids (translate, generate, token classify) or frames (feature classify).
    pub inputs: usize,
    /// Output ids produced (the class: 1).
    pub outputs: usize,
    /// The first output position that differs from the case's, if any (a length difference
    /// counts at the shorter length).
    pub first_diff: Option<usize>,
    pub digest: u32,
    pub cost: Cost,
}

impl Replay {
    /// Inputs, outputs and digest all equal the case's.
    pub fn ok(&self, case: &Case<'_>) -> bool {
        self.input_ok && self.first_diff.is_none() && self.digest == case.logits_digest
    }
}

/// The caller's memory for a replay: the session's arena (8-byte aligned, at least the
/// runner's `arena_bytes` for a beam of 1), the tokenizer's scratch (enough for the case's
/// text), room for the input ids (`max_len`) and for the feature frames.
pub struct Buffers<'b> {
    pub arena: &'b mut [u8],
    pub scratch: &'b mut [Node],
    pub ids: &'b mut [TokenId],
    pub features: &'b mut [i16],
}

/// Text nobody reads.
struct Discard;

impl fmt::Write for Discard {
    fn write_str(&mut self, _: &str) -> fmt::Result {
        Ok(())
    }
}

/// Compares the output ids as they come.
struct Outputs<I: Iterator<Item = TokenId>> {
    want: I,
    n: usize,
    first_diff: Option<usize>,
}

impl<I: Iterator<Item = TokenId>> Outputs<I> {
    fn push(&mut self, id: TokenId) {
        if self.first_diff.is_none() && self.want.next() != Some(id) {
            self.first_diff = Some(self.n);
        }
        self.n += 1;
    }

    fn finish(mut self) -> (usize, Option<usize>) {
        if self.first_diff.is_none() && self.want.next().is_some() {
            self.first_diff = Some(self.n);
        }
        (self.n, self.first_diff)
    }
}

/// Run `case` on `model`, reporting every activation site to `obs` and writing the decoded
/// output (translations and continuations) to `text` as it streams; errors from `text` are
/// ignored. A case of another kind than the model gives [`Error::WrongModelKind`].
pub fn replay<M: Meter, O: Observer, W: fmt::Write>(model: &Model<'_>, case: &Case<'_>, buf: &mut Buffers<'_>, meter: &mut M, obs: &mut O, text: &mut W) -> Result<Replay, Error> {
    let c = model.config();
    let tok = model.tokenizer();
    let mut cost = Cost::default();
    let mut digest = Fnv1a::default();
    let mut out = Outputs { want: case.out(), n: 0, first_diff: None };
    let mut state = DecodeState::default();
    let mut emit = |id: TokenId, state: &mut DecodeState| {
        let _ = tok.decode_piece(id, state, text);
    };
    let inputs;
    let input_ok = match (case.kind, c.kind) {
        (CaseKind::Translate, ModelKind::EncoderDecoder) => {
            let t0 = meter.now();
            let n = tok.encode_source(case.text, buf.scratch, buf.ids, c.max_len)?;
            cost.tokenize = meter.now() - t0;
            let src = buf.ids.get(..n).unwrap_or(&[]);
            inputs = n;
            let mut t = Translator::new(model, buf.arena, 1)?;
            let t0 = meter.now();
            t.encode_observed(src, obs)?;
            cost.prefill = meter.now() - t0;
            loop {
                let t0 = meter.now();
                let step = t.greedy_step(obs)?;
                cost.decode += meter.now() - t0;
                let Some(id) = step else { break };
                digest.i32s(t.logits());
                out.push(id);
                emit(id, &mut state);
                cost.steps += 1;
            }
            src.iter().copied().eq(case.src())
        }
        (CaseKind::Generate, ModelKind::DecoderOnly) => {
            let t0 = meter.now();
            let n = tok.encode_prompt(case.text, buf.scratch, buf.ids, c.max_len.saturating_sub(1))?;
            cost.tokenize = meter.now() - t0;
            let prompt = buf.ids.get(..n).unwrap_or(&[]);
            inputs = n;
            // the prompt's own text sets the decoding state: the continuation keeps its space
            for &id in prompt {
                let _ = tok.decode_piece(id, &mut state, &mut Discard);
            }
            let mut g = Generator::new(model, buf.arena, 1)?;
            let t0 = meter.now();
            g.prompt_observed(prompt, obs)?;
            cost.prefill = meter.now() - t0;
            while cost.steps < MAX_NEW {
                let t0 = meter.now();
                let step = g.greedy_step(obs)?;
                cost.decode += meter.now() - t0;
                let Some(id) = step else { break };
                digest.i32s(g.logits());
                out.push(id);
                emit(id, &mut state);
                cost.steps += 1;
            }
            prompt.iter().copied().eq(case.src())
        }
        (CaseKind::Classify, ModelKind::EncoderOnly) => {
            let mut k = Classifier::new(model, buf.arena)?;
            let outputs = if case.features_len() > 0 {
                let capacity = buf.features.len();
                let frames = buf.features.get_mut(..case.features_len()).ok_or(Error::OutputFull { capacity })?;
                for (f, v) in frames.iter_mut().zip(case.features()) {
                    *f = v;
                }
                inputs = frames.len() / c.n_features.max(1);
                let t0 = meter.now();
                let outputs = k.run_observed(None, Some(frames), obs)?;
                cost.prefill = meter.now() - t0;
                outputs
            } else {
                let t0 = meter.now();
                let n = tok.encode_prompt(case.text, buf.scratch, buf.ids, c.max_len)?;
                cost.tokenize = meter.now() - t0;
                let ids = buf.ids.get(..n).unwrap_or(&[]);
                if !ids.iter().copied().eq(case.src()) {
                    return Ok(Replay { input_ok: false, inputs: n, outputs: 0, first_diff: Some(0), digest: 0, cost });
                }
                inputs = n;
                let t0 = meter.now();
                let outputs = k.run_observed(Some(ids), None, obs)?;
                cost.prefill = meter.now() - t0;
                outputs
            };
            digest.i32s(outputs);
            out.push(argmax(outputs) as TokenId);
            true
        }
        _ => return Err(Error::WrongModelKind),
    };
    let _ = state.finish(text);
    let (outputs, first_diff) = out.finish();
    Ok(Replay { input_ok, inputs, outputs, first_diff, digest: digest.0, cost })
}
