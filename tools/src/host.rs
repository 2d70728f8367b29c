//! Host helpers around the runtime: aligned blob loading, text ↔ ids, int8 and f32 greedy,
//! sentence files and progress bars.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use picoformer::reference::{FloatModel, FloatState};
use picoformer::tokenizer::{DecodeState, Node, Tokenizer};
use picoformer::{Model, TokenId, Translator};

pub use picoformer::align::AlignedBuf;

/// The file at `path`, in an 8-byte aligned buffer (as `Model::parse` wants a blob).
pub fn read_aligned(path: &Path) -> Result<AlignedBuf> {
    let b = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(AlignedBuf::from_bytes(&b))
}

/// Source ids for `text`: pieces cut at `max_len - 1`, then eos (DESIGN §2).
pub fn source_ids(tok: &Tokenizer<'_>, text: &str, max_len: usize) -> Result<Vec<TokenId>> {
    let mut scratch = vec![Node::default(); Tokenizer::scratch_len(text.len())];
    let mut ids = vec![0; max_len];
    let n = tok.encode_source(text, &mut scratch, &mut ids, max_len).map_err(|e| anyhow!("tokenizing {text:?}: {e}"))?;
    ids.truncate(n);
    Ok(ids)
}

/// All pieces of `text`, no eos.
pub fn pieces(tok: &Tokenizer<'_>, text: &str) -> Result<Vec<TokenId>> {
    let mut scratch = vec![Node::default(); Tokenizer::scratch_len(text.len())];
    let mut ids = vec![0; text.len() + 2];
    let n = tok.encode(text, &mut scratch, &mut ids).map_err(|e| anyhow!("tokenizing {text:?}: {e}"))?;
    ids.truncate(n);
    Ok(ids)
}

/// Decode ids (eos and other control ids print nothing), streaming into a growing string so
/// no piece is too long for a guessed buffer.
pub fn detok(tok: &Tokenizer<'_>, ids: &[TokenId]) -> Result<String> {
    let mut text = String::new();
    let mut state = DecodeState::default();
    for &id in ids {
        tok.decode_piece(id, &mut state, &mut text).map_err(|e| anyhow!("decoding id {id}: {e}"))?;
    }
    Ok(text)
}

/// An int8 session with its own arena.
pub struct Int8<'m> {
    pub model: &'m Model<'m>,
    arena: AlignedBuf,
    beam_cap: usize,
}

impl<'m> Int8<'m> {
    pub fn new(model: &'m Model<'m>, beam_cap: usize) -> Int8<'m> {
        Int8 { model, arena: AlignedBuf::zeroed(Translator::arena_bytes(model, beam_cap)), beam_cap }
    }

    pub fn session(&mut self) -> Result<Translator<'m, '_>> {
        Ok(Translator::new(self.model, self.arena.bytes_mut(), self.beam_cap)?)
    }

    /// Greedy (beam 1) or beam search ids of `src`, eos included when produced.
    pub fn translate_ids(&mut self, src: &[TokenId], beam: usize) -> Result<Vec<TokenId>> {
        let max = self.model.config().max_len;
        let mut t = self.session()?;
        t.encode(src)?;
        let mut out = vec![0; max];
        let n = if beam <= 1 { t.greedy(&mut out) } else { t.beam_search(beam, &mut out) }?;
        out.truncate(n);
        Ok(out)
    }
}

/// A float session with its own state memory.
pub struct Float<'m> {
    pub model: &'m FloatModel<'m>,
    mem: AlignedBuf,
}

impl<'m> Float<'m> {
    pub fn new(model: &'m FloatModel<'m>) -> Result<Float<'m>> {
        let bytes = FloatState::bytes(&model.config).map_err(|e| anyhow!("float model: {e}"))?;
        Ok(Float { model, mem: AlignedBuf::zeroed(bytes) })
    }

    pub fn state(&mut self) -> Result<FloatState<'_>> {
        FloatState::new(&self.model.config, self.mem.bytes_mut()).map_err(|e| anyhow!("float state: {e}"))
    }

    pub fn greedy(&mut self, src: &[TokenId]) -> Result<Vec<TokenId>> {
        let m = self.model;
        let mut st = self.state()?;
        m.encode(src, &mut st, &mut picoformer::observe::NoObserver)?;
        let mut out = vec![0; m.config.max_len];
        let n = m.greedy(&mut st, &mut out)?;
        out.truncate(n);
        Ok(out)
    }
}

/// Read a text file of one sentence per line (plain, or gzip when the name ends in `.gz`).
pub fn read_lines(path: &Path) -> Result<Vec<String>> {
    let text = if path.extension().is_some_and(|e| e == "gz") {
        let out = std::process::Command::new("gzip").arg("-dc").arg(path).output().with_context(|| format!("running gzip -dc {}", path.display()))?;
        String::from_utf8(out.stdout).with_context(|| format!("{}: not UTF-8", path.display()))?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    Ok(text.lines().map(str::to_owned).collect())
}

/// Source sentences and their translations, line by line.
#[derive(Debug, Clone, Default)]
pub struct SentencePairs {
    pub src: Vec<String>,
    pub tgt: Vec<String>,
}

impl SentencePairs {
    /// The first `n` lines of two files that must have as many lines as each other.
    pub fn read(src: &Path, tgt: &Path, n: usize) -> Result<SentencePairs> {
        let mut s = read_lines(src)?;
        let mut t = read_lines(tgt)?;
        if s.len() != t.len() {
            bail!("{} has {} lines but {} has {}", src.display(), s.len(), tgt.display(), t.len());
        }
        s.truncate(n);
        t.truncate(n);
        Ok(SentencePairs { src: s, tgt: t })
    }
}

/// A progress bar of `n` steps on stderr (hidden when stderr is not a terminal).
pub fn progress_bar(n: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(n as u64);
    pb.set_style(ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {elapsed}").unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> "));
    pb.set_message(what.to_owned());
    pb
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pieces longer than any guessed bytes-per-id bound decode in full (bug: `detok` returned
    /// "" when its 16-bytes-per-id buffer was short: "Fußgängerüberweg" is 19 bytes).
    #[test]
    fn detok_takes_long_pieces() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/de-en/de-en.pico"));
        let blob = read_aligned(path).unwrap();
        let model = Model::parse(blob.bytes()).unwrap();
        let tok = model.tokenizer();
        assert_eq!(tok.piece_str(3354), Some("Fußgängerüberweg")); // 19 bytes, more than 16
        let ids = [3354; 6];
        let mut big = vec![0u8; 1024];
        let want = tok.decode(&ids, &mut big).unwrap().to_owned();
        assert_eq!(want.len(), 114);
        assert_eq!(detok(tok, &ids).unwrap(), want);
    }

    /// The f32 reference refuses bad input with the runtime's typed errors (it panicked on an
    /// id equal to the vocabulary size and on 65 ids, and decoded 19 tokens from nothing).
    #[test]
    fn float_reference_refuses_bad_input() {
        use picoformer::Error;
        let ex = crate::export::Export::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/de-en/export"))).unwrap();
        let fm = ex.float_model();
        let mut fl = Float::new(&fm).unwrap();
        let mut st = fl.state().unwrap();
        let obs = &mut picoformer::observe::NoObserver;
        let c = fm.config;
        assert_eq!(fm.encode(&[5, c.vocab as u16, 3], &mut st, obs), Err(Error::TokenOutOfRange { id: 4000, vocab: 4000 }));
        assert_eq!(fm.encode(&[5; 65], &mut st, obs), Err(Error::InputTooLong { len: 65, max: 64 }));
        assert_eq!(fm.encode(&[], &mut st, obs), Err(Error::EmptyInput));
        assert_eq!(fm.decode_step(c.bos, 0, &mut st, obs), Err(Error::DecoderState));
        fm.encode(&[5, 6, 3], &mut st, obs).unwrap();
        assert_eq!(fm.decode_step(c.bos, 64, &mut st, obs), Err(Error::DecoderState));
        assert_eq!(fm.decode_step(4000, 0, &mut st, obs), Err(Error::TokenOutOfRange { id: 4000, vocab: 4000 }));
        assert_eq!(fm.greedy(&mut st, &mut [0; 2]), Err(Error::OutputFull { capacity: 2 }));
        // a hand-built float model whose views are short is refused, not indexed
        let mut short = fm.clone();
        short.src_emb = &fm.src_emb[..10];
        assert_eq!(short.encode(&[5, 3], &mut st, obs), Err(Error::BadConfig { field: "embeddings" }));
    }
}
