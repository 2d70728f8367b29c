//! The workload: translate the test-vector sentences with the int8 model, on the device, and
//! check every step bit for bit against the host (`tools/src/convert.rs`, `digest_run`).
//!
//! Per case: tokenize the German text and compare the source ids (pieces truncated to
//! `max_len - 1`, then eos) with the vector's; encode; decode greedily one step at a time,
//! streaming each token's text; fold every step's `(vocab,)` i32 logits into a 32-bit FNV-1a
//! digest (little-endian bytes, in step order); compare the output ids (eos included) and the
//! digest with the vector's.

use core::fmt;

use picoformer::observe::NoObserver;
use picoformer::tokenizer::{DecodeState, Node};
use picoformer::vectors::{Case, Fnv1a};
use picoformer::{Error, Model, TokenId, Translator};

use crate::assets::MAX_TEXT_BYTES;
use crate::Platform;

/// Bytes of translated text kept for printing; longer translations are cut (the checks are not).
pub const MAX_OUT_TEXT_BYTES: usize = 512;

/// Instructions spent on one sentence, by stage.
#[derive(Clone, Copy, Default)]
pub struct Cost {
    pub tokenize: u64,
    pub encode: u64,
    /// Every greedy step, the final eos step included; digest and printing excluded.
    pub decode: u64,
    pub steps: usize,
}

impl Cost {
    /// Tokenize, encode and decode.
    pub fn total(&self) -> u64 {
        self.tokenize + self.encode + self.decode
    }
}

/// What one case produced and whether it matched.
pub struct Outcome {
    pub src_ok: bool,
    pub out_ok: bool,
    pub digest: u32,
    pub cost: Cost,
}

impl Outcome {
    pub fn ok(&self, case: &Case<'_>) -> bool {
        self.src_ok && self.out_ok && self.digest == case.logits_digest
    }
}

/// A fixed text buffer that keeps whole chunks until one does not fit, then drops the rest;
/// writing never fails.
struct TextBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
    truncated: bool,
}

impl<const N: usize> TextBuf<N> {
    fn new() -> Self {
        TextBuf {
            buf: [0; N],
            len: 0,
            truncated: false,
        }
    }

    /// The text from byte `from` on (only whole UTF-8 chunks are ever stored).
    fn since(&self, from: usize) -> &str {
        let bytes = self.buf.get(from..self.len).unwrap_or(&[]);
        core::str::from_utf8(bytes).unwrap_or("")
    }
}

impl<const N: usize> fmt::Write for TextBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        match self.buf.get_mut(self.len..self.len + s.len()) {
            Some(dst) if !self.truncated => {
                dst.copy_from_slice(s.as_bytes());
                self.len += s.len();
            }
            _ => self.truncated = true,
        }
        Ok(())
    }
}

/// Runs one case, logging its text, source check, streamed translation, checks and cost.
/// `scratch` is the tokenizer's ([`crate::assets::SCRATCH_NODES`] nodes).
pub fn run_case<P: Platform>(
    p: &mut P,
    model: &Model<'_>,
    t: &mut Translator<'_, '_>,
    scratch: &mut [Node],
    index: usize,
    case: &Case<'_>,
) -> Result<Outcome, Error> {
    let c = &model.config();
    let tok = model.tokenizer();
    let mut cost = Cost::default();
    defmt::println!("case {=usize}: {=str}", index, case.text);

    // tokenize on the device (pieces never outnumber the text's bytes plus the dummy prefix)
    let mut src = [0 as TokenId; MAX_TEXT_BYTES + 2];
    let t0 = p.instructions();
    let n = tok.encode_source(case.text, scratch, &mut src, c.max_len)?;
    cost.tokenize = p.instructions() - t0;
    let src = src.get(..n).unwrap_or(&[]);
    let src_ok = src.iter().copied().eq(case.src());
    defmt::println!(
        "  source: {=usize} ids {=str} (vector: {=usize})",
        src.len(),
        if src_ok { "ok" } else { "MISMATCH" },
        case.src_len()
    );
    if !src_ok {
        defmt::println!("  device ids: {=[?]}", src);
    }

    // encode
    let t0 = p.instructions();
    t.encode(src)?;
    cost.encode = p.instructions() - t0;

    // decode greedily, streaming each token's text
    let mut digest = Fnv1a::default();
    let mut expected = case.out();
    let mut first_diff = None;
    let mut text = TextBuf::<MAX_OUT_TEXT_BYTES>::new();
    let mut state = DecodeState::default();
    loop {
        let t0 = p.instructions();
        let step = t.greedy_step(&mut NoObserver)?;
        cost.decode += p.instructions() - t0;
        let Some(id) = step else { break };
        digest.i32s(t.logits());
        if first_diff.is_none() && expected.next() != Some(id) {
            first_diff = Some(cost.steps);
        }
        let from = text.len;
        tok.decode_piece(id, &mut state, &mut text)?;
        defmt::debug!(
            "  step {=usize}: id {=u16} \"{=str}\"",
            cost.steps,
            id,
            text.since(from)
        );
        cost.steps += 1;
    }
    state.finish(&mut text)?;
    let out_ok = first_diff.is_none() && cost.steps == case.out_len();
    defmt::println!(
        "  output: {=str}{=str}",
        text.since(0),
        if text.truncated { " [cut]" } else { "" }
    );
    if let Some(step) = first_diff {
        defmt::println!("  first output id that differs: step {=usize}", step);
    }
    defmt::println!(
        "  ids: {=usize} {=str} (vector: {=usize}); logits digest {=u32:#010x} {=str} (vector: {=u32:#010x})",
        cost.steps,
        if out_ok { "ok" } else { "MISMATCH" },
        case.out_len(),
        digest.0,
        if digest.0 == case.logits_digest { "ok" } else { "MISMATCH" },
        case.logits_digest
    );
    defmt::println!(
        "  instructions: {=u64} (tokenize {=u64}, encode {=u64}, decode {=u64} = {=u64} per step)",
        cost.total(),
        cost.tokenize,
        cost.encode,
        cost.decode,
        cost.decode / cost.steps.max(1) as u64
    );
    Ok(Outcome {
        src_ok,
        out_ok,
        digest: digest.0,
        cost,
    })
}
