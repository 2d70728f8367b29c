//! The workload: every test-vector case of every embedded model, replayed on the device
//! ([`picoformer::vectors::replay`]: the device tokenizer, greedy decoding or one
//! classification, the digest of every step's logits or of the head's outputs) and compared bit
//! for bit with the host's, with the instructions of each stage.

use core::fmt;

use picoformer::observe::NoObserver;
use picoformer::vectors::{replay, Buffers, Case, CaseKind, Meter, Replay};
use picoformer::{Error, Model};

use crate::Platform;

/// Bytes of output text kept for printing; longer outputs are cut (the checks are not).
pub const MAX_OUT_TEXT_BYTES: usize = 512;

/// The board's instruction counter as the replay's clock.
struct Instructions<'p, P: Platform>(&'p mut P);

impl<P: Platform> Meter for Instructions<'_, P> {
    fn now(&mut self) -> u64 {
        self.0.instructions()
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
        TextBuf { buf: [0; N], len: 0, truncated: false }
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(self.buf.get(..self.len).unwrap_or(&[])).unwrap_or("")
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

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "MISMATCH"
    }
}

/// Runs one case, logging its input, its output (text, or the class), the checks and the cost.
pub fn run_case<P: Platform>(p: &mut P, model: &Model<'_>, buf: &mut Buffers<'_>, index: usize, case: &Case<'_>) -> Result<Replay, Error> {
    match case.kind {
        CaseKind::Classify if case.features_len() > 0 => {
            let frames = case.features_len() / model.config().n_features.max(1);
            defmt::println!("case {=usize}: a window of {=usize} frames", index, frames);
        }
        _ => defmt::println!("case {=usize}: {=str}", index, case.text),
    }
    let mut text = TextBuf::<MAX_OUT_TEXT_BYTES>::new();
    let r = replay(model, case, buf, &mut Instructions(p), &mut NoObserver, &mut text)?;
    let c = &r.cost;
    let (what, n_in) = match case.kind {
        CaseKind::Translate => ("source", case.src_len()),
        CaseKind::Generate => ("prompt", case.src_len()),
        CaseKind::Classify if case.features_len() > 0 => ("frames", r.inputs),
        CaseKind::Classify => ("ids", case.src_len()),
    };
    defmt::println!("  {=str}: {=usize} {=str} (vector: {=usize})", what, r.inputs, verdict(r.input_ok), n_in);
    match case.kind {
        CaseKind::Classify => {
            let class = case.out().next().unwrap_or(0);
            defmt::println!("  class {=u16} {=str}; outputs digest {=u32:#010x} {=str} (vector: {=u32:#010x})", class, verdict(r.first_diff.is_none()), r.digest, verdict(r.digest == case.logits_digest), case.logits_digest);
            defmt::println!("  instructions: {=u64} (one pass over {=usize} rows)", c.total(), r.inputs);
        }
        _ => {
            defmt::println!("  output: {=str}{=str}", text.as_str(), if text.truncated { " [cut]" } else { "" });
            if let Some(step) = r.first_diff {
                defmt::println!("  first output id that differs: step {=usize}", step);
            }
            defmt::println!(
                "  ids: {=usize} {=str} (vector: {=usize}); logits digest {=u32:#010x} {=str} (vector: {=u32:#010x})",
                r.outputs,
                verdict(r.first_diff.is_none()),
                case.out_len(),
                r.digest,
                verdict(r.digest == case.logits_digest),
                case.logits_digest
            );
            defmt::println!(
                "  instructions: {=u64} (tokenize {=u64}, {=str} {=u64}, decode {=u64} = {=u64} per step)",
                c.total(),
                c.tokenize,
                if case.kind == CaseKind::Translate { "encode" } else { "prompt" },
                c.prefill,
                c.decode,
                c.decode / c.steps.max(1) as u64
            );
        }
    }
    Ok(r)
}
