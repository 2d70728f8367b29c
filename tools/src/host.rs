//! Host helpers around the runtime: aligned blob loading, text ↔ ids, int8 and f32 greedy,
//! sentence files and progress bars.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use picoformer::reference::{FSource, FloatModel, FloatState};
use picoformer::tokenizer::{DecodeState, Node, Tokenizer};
use picoformer::{Batch, Classifier, Generator, Model, TokenId, Translator};

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
    detok_after(tok, &mut DecodeState::default(), ids)
}

/// The decoding state after `ids`: a prompt's, so its continuation keeps its first space.
pub fn primed(tok: &Tokenizer<'_>, ids: &[TokenId]) -> Result<DecodeState> {
    let mut state = DecodeState::default();
    detok_after(tok, &mut state, ids)?;
    Ok(state)
}

/// The text of `ids`, decoded on from `state`.
pub fn detok_after(tok: &Tokenizer<'_>, state: &mut DecodeState, ids: &[TokenId]) -> Result<String> {
    let mut text = String::new();
    for &id in ids {
        tok.decode_piece(id, state, &mut text).map_err(|e| anyhow!("decoding id {id}: {e}"))?;
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

/// Greedy ids of every source (eos included when produced), `lanes` sentences decoded together
/// ([`Batch`]); the same ids as [`Int8::translate_ids`] at beam 1. `progress` gets the number
/// of sentences finished, each time one finishes.
pub fn translate_batch(model: &Model<'_>, srcs: &[Vec<TokenId>], lanes: usize, mut progress: impl FnMut(usize)) -> Result<Vec<Vec<TokenId>>> {
    let mut arena = AlignedBuf::zeroed(Batch::arena_bytes(model, lanes));
    let mut b = Batch::new(model, arena.bytes_mut(), lanes)?;
    let mut out = vec![Vec::new(); srcs.len()];
    let (eos, max) = (model.config().eos, model.config().max_len);
    let mut finished = 0;
    b.greedy_all(srcs.iter().map(Vec::as_slice), |i, t| {
        out[i].push(t);
        if t == eos || out[i].len() + 1 >= max {
            finished += 1;
            progress(finished);
        }
    })?;
    Ok(out)
}

/// A language-model session with its own arena.
pub struct Lm<'m> {
    pub model: &'m Model<'m>,
    arena: AlignedBuf,
    beam_cap: usize,
}

impl<'m> Lm<'m> {
    pub fn new(model: &'m Model<'m>, beam_cap: usize) -> Lm<'m> {
        Lm { model, arena: AlignedBuf::zeroed(Generator::arena_bytes(model, beam_cap)), beam_cap }
    }

    pub fn session(&mut self) -> Result<Generator<'m, '_>> {
        Ok(Generator::new(self.model, self.arena.bytes_mut(), self.beam_cap)?)
    }

    /// `prompt`'s greedy continuation of at most `max_new` tokens (eos included when produced).
    pub fn generate(&mut self, prompt: &[TokenId], max_new: usize) -> Result<Vec<TokenId>> {
        let eos = self.model.config().eos;
        let mut g = self.session()?;
        g.prompt(prompt)?;
        let mut out = Vec::new();
        while out.len() < max_new {
            match g.next_token()? {
                Some(t) => out.push(t),
                None => {
                    // eos ends the continuation (unless the context was full)
                    if g.len() < self.model.config().max_len {
                        out.push(eos);
                    }
                    break;
                }
            }
        }
        Ok(out)
    }
}

/// A classifier session with its own arena.
pub struct Clf<'m> {
    pub model: &'m Model<'m>,
    arena: AlignedBuf,
}

impl<'m> Clf<'m> {
    pub fn new(model: &'m Model<'m>) -> Clf<'m> {
        Clf { model, arena: AlignedBuf::zeroed(Classifier::arena_bytes(model)) }
    }

    pub fn session(&mut self) -> Result<Classifier<'m, '_>> {
        Ok(Classifier::new(self.model, self.arena.bytes_mut())?)
    }
}

/// A feature window quantized as the model's blob says (`FeatureQuant` per feature).
pub fn quantize_window(model: &Model<'_>, w: &[f32]) -> Vec<i16> {
    let q = model.feature_quant();
    w.iter()
        .enumerate()
        .map(|(i, &x)| match q.get(i % q.len().max(1)) {
            Some(f) => ((x as f64 / f.scale.to_real()).round() + f.zero_point as f64).clamp(-32768.0, 32767.0) as i16,
            None => 0,
        })
        .collect()
}

/// Feature windows from a CSV file: blocks of frames (one line per frame, `n_features` values)
/// separated by blank lines; a file without blank lines holds one window per line.
pub fn read_windows(path: &Path, n_features: usize) -> Result<Vec<Vec<f32>>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let blocks = text.lines().any(|l| l.trim().is_empty());
    let mut windows = Vec::new();
    let mut cur: Vec<f32> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            if !cur.is_empty() {
                windows.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let values: Vec<f32> = line.split(',').map(|v| v.trim().parse::<f32>().with_context(|| format!("{}: line {}: {v:?} is not a number", path.display(), n + 1))).collect::<Result<_>>()?;
        if blocks && values.len() != n_features {
            bail!("{}: line {}: {} values, the model reads frames of {n_features}", path.display(), n + 1, values.len());
        }
        if !blocks && (values.is_empty() || !values.len().is_multiple_of(n_features)) {
            bail!("{}: line {}: {} values are not whole frames of {n_features}", path.display(), n + 1, values.len());
        }
        cur.extend(values);
        if !blocks {
            windows.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        windows.push(cur);
    }
    if windows.is_empty() {
        bail!("{}: no windows", path.display());
    }
    Ok(windows)
}

/// Class labels, one integer per line.
pub fn read_labels(path: &Path) -> Result<Vec<usize>> {
    read_lines(path)?
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| l.trim().parse::<usize>().with_context(|| format!("{}: line {}: {l:?} is not a class index", path.display(), n + 1)))
        .collect()
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
        FloatState::new(self.model, self.mem.bytes_mut()).map_err(|e| anyhow!("float state: {e}"))
    }

    /// Decoder-only: `prompt`'s greedy continuation of at most `max_new` tokens (eos included
    /// when produced).
    pub fn generate(&mut self, prompt: &[TokenId], max_new: usize) -> Result<Vec<TokenId>> {
        let m = self.model;
        let mut st = self.state()?;
        let mut out = vec![0; max_new.max(1)];
        let n = m.generate(prompt, max_new, &mut st, &mut out)?;
        out.truncate(n);
        Ok(out)
    }

    /// Encoder-only: the head's outputs for `src`.
    pub fn classify(&mut self, src: FSource<'_>) -> Result<Vec<f32>> {
        let m = self.model;
        let mut st = self.state()?;
        Ok(m.classify(src, &mut st, &mut picoformer::observe::NoObserver)?.to_vec())
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

/// The CLI's input loop: `f` on each of `args`, or on each line of stdin when there are none
/// (numbered from 1), writing to stdout; one output line per input. An input that fails (its
/// error, or a stdin line that is not UTF-8) gives an empty line and an error naming it on
/// stderr, and the others still run; an I/O error on stdout stops at once. Fails at the end,
/// naming the inputs that were not `done` (say "translated").
pub fn each_input(args: &[String], what: &str, done: &str, mut f: impl FnMut(usize, &str, &mut std::io::StdoutLock<'_>) -> Result<()>) -> Result<()> {
    use std::io::{BufRead, Write};
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failed: Vec<String> = Vec::new();
    let mut total = 0;
    let mut one = |n: usize, text: Result<&str>| -> std::io::Result<()> {
        total += 1;
        if let Err(e) = text.and_then(|text| f(n, text, &mut out)) {
            match e.downcast::<std::io::Error>() {
                Ok(io) => return Err(io),
                Err(e) => {
                    eprintln!("{what} {n}: {e:#}");
                    failed.push(n.to_string());
                }
            }
        }
        writeln!(out)?;
        out.flush()
    };
    if args.is_empty() {
        let mut stdin = std::io::stdin().lock();
        let mut buf = Vec::new();
        for n in 1.. {
            buf.clear();
            if stdin.read_until(b'\n', &mut buf)? == 0 {
                break;
            }
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            one(n, std::str::from_utf8(line).map_err(|e| anyhow!("not valid UTF-8 ({e})")))?;
        }
    } else {
        for (i, a) in args.iter().enumerate() {
            one(i + 1, Ok(a))?;
        }
    }
    match failed.as_slice() {
        [] => Ok(()),
        [n] => bail!("{what} {n} of {total} was not {done}"),
        _ => bail!("{} of {total} {what}s were not {done} ({what}s {})", failed.len(), failed.join(", ")),
    }
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
        short.source = &fm.source[..10];
        assert_eq!(short.encode(&[5, 3], &mut st, obs), Err(Error::BadConfig { field: "embeddings" }));
    }
}
