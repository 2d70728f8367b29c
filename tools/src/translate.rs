//! `picoformer translate`: the int8 runtime on sentences from the command line or stdin.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{anyhow, Result};
use picoformer::tokenizer::DecodeState;
use picoformer::Model;

use crate::host::{source_ids, Aligned, Int8};

/// Translate `sentences`, or stdin line by line when there are none, one output line each:
/// greedy output streams piece by piece, beam search (`beam` > 1) prints when done.
pub fn run(model_path: &Path, beam: usize, sentences: &[String]) -> Result<()> {
    let blob = Aligned::read(model_path)?;
    let model = Model::parse(blob.bytes()).map_err(|e| anyhow!("{}: {e}", model_path.display()))?;
    let mut int8 = Int8::new(&model, beam.max(1));
    let tok = model.tokenizer();
    let c = *model.config();
    let mut one = |text: &str| -> Result<()> {
        let src = source_ids(tok, text, c.max_len)?;
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let mut sink = String::new();
        let mut state = DecodeState::default();
        if beam <= 1 {
            // stream: print each piece as it comes
            let mut sess = int8.session()?;
            sess.encode(&src)?;
            while let Some(t) = sess.next_token()? {
                sink.clear();
                tok.decode_piece(t, &mut state, &mut sink)?;
                write!(out, "{sink}")?;
                out.flush()?;
            }
        } else {
            let ids = int8.translate_ids(&src, beam)?;
            for &t in &ids {
                tok.decode_piece(t, &mut state, &mut sink)?;
            }
            write!(out, "{sink}")?;
        }
        writeln!(out)?;
        Ok(())
    };
    if sentences.is_empty() {
        for line in std::io::stdin().lock().lines() {
            one(&line?)?;
        }
    } else {
        for s in sentences {
            one(s)?;
        }
    }
    Ok(())
}
