//! Sentence mode: when the firmware is built with `PICOFORMER_SENTENCE` set, it translates that
//! one sentence on the device instead of running the test vectors, logging each token as the
//! decoder produces it (`scripts/translate` uses this); with `PICOFORMER_PROMPT`, the first
//! embedded language model continues that prompt greedily (`scripts/generate`).

use core::fmt::Write;

use picoformer::tokenizer::DecodeState;
use picoformer::blob::ModelKind;
use picoformer::{Error, Generator, Model, TokenId, Translator};

use crate::{assets, Platform};

/// The sentence built in, if any.
pub const SENTENCE: Option<&str> = option_env!("PICOFORMER_SENTENCE");

/// The prompt built in, if any.
pub const PROMPT: Option<&str> = option_env!("PICOFORMER_PROMPT");

/// New tokens a built-in prompt is continued by, at most.
const MAX_NEW: usize = 20;

/// The English so far; pieces that no longer fit are dropped.
struct Text {
    buf: [u8; 512],
    len: usize,
}

impl Write for Text {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        if let Some(dst) = self.buf.get_mut(self.len..self.len + s.len()) {
            dst.copy_from_slice(s.as_bytes());
            self.len += s.len();
        }
        Ok(())
    }
}

impl Text {
    fn as_str(&self) -> &str {
        core::str::from_utf8(self.buf.get(..self.len).unwrap_or(&[])).unwrap_or("")
    }
}

/// Translate `text`, streaming; `true` when it ran to the end.
pub fn translate<P: Platform>(p: &mut P, text: &str) -> bool {
    match run(p, text) {
        Ok(()) => true,
        Err(e) => {
            defmt::println!("error: {}", defmt::Display2Format(&e));
            false
        }
    }
}

fn run<P: Platform>(p: &mut P, text: &str) -> Result<(), Error> {
    let memory = assets::take_memory().ok_or(Error::DecoderState)?;
    Model::parse_into(assets::BLOB, memory.model)?;
    let model: &Model<'_> = memory.model;
    let mut t = Translator::new(model, memory.arena, 1)?;
    let tok = model.tokenizer();
    defmt::println!("de: {=str}", text);
    let t0 = p.instructions();
    let mut src = [0 as TokenId; assets::MAX_TEXT_BYTES + 2];
    let n = tok.encode_source(text, memory.scratch, &mut src, model.config().max_len)?;
    t.encode(src.get(..n).unwrap_or(&[]))?;
    let mut state = DecodeState::default();
    let mut en = Text { buf: [0; 512], len: 0 };
    let mut tokens = 0u32;
    while let Some(id) = t.next_token()? {
        let before = en.len;
        tok.decode_piece(id, &mut state, &mut en)?;
        let piece = core::str::from_utf8(en.buf.get(before..en.len).unwrap_or(&[])).unwrap_or("");
        defmt::println!("  token {=u16} {=str}", id, piece);
        tokens += 1;
    }
    state.finish(&mut en)?;
    let spent = p.instructions() - t0;
    defmt::println!("en: {=str}", en.as_str());
    defmt::println!("{=u32} tokens in {=u64} instructions (tokenize + encode + decode)", tokens, spent);
    Ok(())
}

/// Continue `prompt` with the first embedded decoder-only model, streaming; `true` when it ran
/// to the end.
pub fn generate<P: Platform>(p: &mut P, prompt: &str) -> bool {
    match continue_prompt(p, prompt) {
        Ok(()) => true,
        Err(e) => {
            defmt::println!("error: {}", defmt::Display2Format(&e));
            false
        }
    }
}

fn continue_prompt<P: Platform>(p: &mut P, prompt: &str) -> Result<(), Error> {
    let memory = assets::take_memory().ok_or(Error::DecoderState)?;
    let lm = assets::MODELS.iter().find(|e| Model::parse(e.blob).is_ok_and(|m| m.config().kind == ModelKind::DecoderOnly)).ok_or(Error::WrongModelKind)?;
    Model::parse_into(lm.blob, memory.model)?;
    let model: &Model<'_> = memory.model;
    let mut g = Generator::new(model, memory.arena, 1)?;
    let tok = model.tokenizer();
    defmt::println!("prompt: {=str}", prompt);
    let t0 = p.instructions();
    let mut ids = [0 as TokenId; assets::MAX_TEXT_BYTES + 2];
    let n = tok.encode_prompt(prompt, memory.scratch, &mut ids, model.config().max_len - 1)?;
    let ids = ids.get(..n).unwrap_or(&[]);
    g.prompt(ids)?;
    // the prompt sets the decoding state, so the continuation keeps its first space
    let mut state = DecodeState::default();
    let mut text = Text { buf: [0; 512], len: 0 };
    for &id in ids {
        tok.decode_piece(id, &mut state, &mut text)?;
    }
    let mut tokens = 0u32;
    for _ in 0..MAX_NEW {
        let Some(id) = g.next_token()? else { break };
        let before = text.len;
        tok.decode_piece(id, &mut state, &mut text)?;
        let piece = core::str::from_utf8(text.buf.get(before..text.len).unwrap_or(&[])).unwrap_or("");
        defmt::println!("  token {=u16} {=str}", id, piece);
        tokens += 1;
    }
    state.finish(&mut text)?;
    let spent = p.instructions() - t0;
    defmt::println!("text: {=str}", text.as_str());
    defmt::println!("{=u32} new tokens in {=u64} instructions (tokenize + prompt + decode)", tokens, spent);
    Ok(())
}
