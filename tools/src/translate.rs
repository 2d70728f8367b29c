//! `picoformer translate`: the int8 runtime on sentences from the command line or stdin.
//!
//! One output line per input line, always, so that the output pairs with the input line by
//! line: a line without pieces (empty, or only spaces) gives an empty line, and so does a line
//! that cannot be translated (not UTF-8, say), after an error on stderr that names it. The
//! others are still translated, and the run then fails. A source longer than `max_len - 1`
//! pieces is cut there (DESIGN §2), with a note on stderr.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, Result};
use picoformer::tokenizer::DecodeState;
use picoformer::{Model, MAX_BEAM};

use crate::host::{pieces, read_aligned, source_ids, Int8};

/// `--beam`: a width the runtime accepts, 1 (greedy) to [`MAX_BEAM`].
pub fn beam_width(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(w) if (1..=MAX_BEAM).contains(&w) => Ok(w),
        _ => Err(format!("the beam width is a whole number from 1 (greedy) to {MAX_BEAM}")),
    }
}

/// Translate `sentences`, or stdin line by line when there are none, one output line each:
/// greedy output streams piece by piece, beam search (`beam` > 1) prints when done.
pub fn run(model_path: &Path, beam: usize, sentences: &[String]) -> Result<()> {
    let blob = read_aligned(model_path)?;
    let model = Model::parse(blob.bytes()).map_err(|e| anyhow!("{}: {e}", model_path.display()))?;
    crate::generate::require_kind(&model, model_path, picoformer::blob::ModelKind::EncoderDecoder, "translate")?;
    let mut lines = Lines::new(&model, beam);
    let what = if sentences.is_empty() { "line" } else { "sentence" };
    crate::host::each_input(sentences, what, "translated", |n, text, out| lines.translate(what, n, text, out))
}

/// The int8 model, translating one input at a time.
pub struct Lines<'m> {
    int8: Int8<'m>,
    beam: usize,
}

impl<'m> Lines<'m> {
    /// Translations of width `beam` (1: greedy) with `model`.
    pub fn new(model: &'m Model<'m>, beam: usize) -> Lines<'m> {
        Lines { int8: Int8::new(model, beam), beam }
    }

    /// Write the translation of `text` (input `n`, a `what`) to `out`, without the newline.
    /// Errors writing `out` are `io::Error`s; every other error is the input's.
    pub fn translate(&mut self, what: &str, n: usize, text: &str, out: &mut impl Write) -> Result<()> {
        let model = self.int8.model;
        let tok = model.tokenizer();
        let keep = model.config().max_len - 1;
        let all = pieces(tok, text)?.len();
        if all == 0 {
            return Ok(());
        }
        if all > keep {
            eprintln!("note: {what} {n}: {all} pieces, the model reads {keep}: the last {} dropped", all - keep);
        }
        let src = source_ids(tok, text, model.config().max_len)?;
        let mut sink = String::new();
        let mut state = DecodeState::default();
        if self.beam == 1 {
            // stream: print each piece as it comes
            let mut sess = self.int8.session()?;
            sess.encode(&src)?;
            while let Some(t) = sess.next_token()? {
                sink.clear();
                tok.decode_piece(t, &mut state, &mut sink)?;
                write!(out, "{sink}")?;
                out.flush()?;
            }
            sink.clear();
        } else {
            for &t in &self.int8.translate_ids(&src, self.beam)? {
                tok.decode_piece(t, &mut state, &mut sink)?;
            }
        }
        // bytes of an unfinished UTF-8 sequence (byte-fallback pieces) end as U+FFFD
        state.finish(&mut sink)?;
        write!(out, "{sink}")?;
        Ok(())
    }
}
