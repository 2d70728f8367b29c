//! `picoformer generate`: continue prompts with a decoder-only model, streaming each token.
//!
//! One output line per prompt (from the command line, or stdin line by line): the prompt, then
//! its continuation as it comes. Greedy by default; `--sample` draws with a seeded integer RNG
//! (`--seed`, `--temperature`, `--top-k`, `--top-p`), the same tokens as on every board;
//! `--beam` runs beam search. A prompt longer than the context is cut to its end, with a note.
//! A line that is not UTF-8 gives an empty line and an error naming it; the others still run
//! and the exit code then says one failed.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use picoformer::blob::ModelKind;
use picoformer::{Model, Sampler, Sampling, TokenId};

use crate::host::{read_aligned, pieces, primed, Lm};

/// How to continue.
#[derive(Debug, Clone, Copy)]
pub struct GenerateOpts {
    pub max_new: usize,
    /// `None`: greedy.
    pub sampling: Option<Sampling>,
    pub seed: u64,
    pub beam: usize,
}

/// Sampling settings from real-valued options, in the runtime's integers.
pub fn sampling(temperature: f64, top_k: usize, top_p: f64) -> Result<Sampling> {
    if !(0.0..=100.0).contains(&temperature) {
        bail!("--temperature {temperature}: give a value from 0 (greedy) to 100");
    }
    if !(0.0..=1.0).contains(&top_p) || top_p == 0.0 {
        bail!("--top-p {top_p}: give a share above 0 and at most 1");
    }
    Ok(Sampling { temperature_milli: (temperature * 1000.0).round() as u32, top_k: top_k as u32, top_p_milli: (top_p * 1000.0).round().max(1.0) as u32 })
}

/// Refuse a blob of another kind for a command, naming the command that fits it.
pub fn require_kind(model: &Model<'_>, path: &Path, want: ModelKind, command: &str) -> Result<()> {
    let kind = model.config().kind;
    if kind == want {
        return Ok(());
    }
    let (name, fits) = match kind {
        ModelKind::EncoderDecoder => ("an encoder-decoder (translation) model", "picoformer translate"),
        ModelKind::DecoderOnly => ("a decoder-only language model", "picoformer generate"),
        ModelKind::EncoderOnly => ("an encoder-only classifier", "picoformer classify"),
    };
    bail!("{}: `{command}` needs {}, but this is {name}: use `{fits}`", path.display(), match want {
        ModelKind::EncoderDecoder => "an encoder-decoder (translation) model",
        ModelKind::DecoderOnly => "a decoder-only language model",
        ModelKind::EncoderOnly => "an encoder-only classifier",
    })
}

/// Continue `prompts`, or stdin's lines when there are none.
pub fn run(model_path: &Path, o: &GenerateOpts, prompts: &[String]) -> Result<()> {
    let blob = read_aligned(model_path)?;
    let model = Model::parse(blob.bytes()).map_err(|e| anyhow!("{}: {e}", model_path.display()))?;
    require_kind(&model, model_path, ModelKind::DecoderOnly, "generate")?;
    let mut lm = Lm::new(&model, o.beam.max(1));
    let what = if prompts.is_empty() { "line" } else { "prompt" };
    crate::host::each_input(prompts, what, "continued", |n, text, out| generate_one(&model, &mut lm, o, n, text, out))
}

/// Prompt `n`'s ids: bos, then its pieces, cut to their end to leave room for a new token
/// (with a note on stderr).
pub fn prompt_ids(model: &Model<'_>, n: usize, text: &str) -> Result<Vec<TokenId>> {
    let c = model.config();
    let mut ids: Vec<TokenId> = vec![c.bos];
    let p = pieces(model.tokenizer(), text)?;
    let keep = c.max_len - 2; // room for bos and at least one new token
    if p.len() > keep {
        eprintln!("note: prompt {n}: {} pieces, the context holds {keep} with room to continue: the first {} dropped", p.len(), p.len() - keep);
    }
    ids.extend(&p[p.len().saturating_sub(keep)..]);
    Ok(ids)
}

/// Prompt `n`'s line without its newline: `text`, then its continuation, streamed to `out`.
pub fn generate_one(model: &Model<'_>, lm: &mut Lm<'_>, o: &GenerateOpts, n: usize, text: &str, out: &mut impl Write) -> Result<()> {
    let c = *model.config();
    let tok = model.tokenizer();
    let ids = prompt_ids(model, n, text)?;
    // the prompt sets the decoding state, so the continuation's first space is kept
    let mut state = primed(tok, &ids)?;
    write!(out, "{text}")?;
    let mut emit = |t: TokenId, out: &mut dyn Write| -> Result<()> {
        let mut s = String::new();
        tok.decode_piece(t, &mut state, &mut s)?;
        write!(out, "{s}")?;
        out.flush()?;
        Ok(())
    };
    let mut g = lm.session()?;
    if o.beam > 1 {
        let mut best = vec![0; o.max_new.max(1)];
        let m = g.beam_search(&ids, o.beam, o.max_new, &mut best)?;
        for &t in best[..m].iter().filter(|&&t| t != c.eos) {
            emit(t, out)?;
        }
        return Ok(());
    }
    g.prompt(&ids)?;
    let mut sampler = o.sampling.map(|s| Sampler::new(s, o.seed));
    for _ in 0..o.max_new {
        let next = match &mut sampler {
            Some(s) => g.sample_next(s)?,
            None => g.next_token()?,
        };
        let Some(t) = next else { break };
        emit(t, out)?;
    }
    Ok(())
}
