//! The f32 check (DESIGN §5.2): the converter's float forward pass against PyTorch's
//! `reference.safetensors`, which shows that the weight mapping is right. The vectors' keys
//! depend on the model kind (docs/export-format.md); the file is optional.

use std::path::Path;

use anyhow::{bail, Context, Result};
use picoformer::observe::NoObserver;
use picoformer::blob::ModelKind;
use picoformer::reference::{FSource, FloatModel};
use picoformer::TokenId;
use safetensors::SafeTensors;

use crate::export::{floats, ints, Floats};
use crate::host::Float;

/// How closely the f32 forward pass matched PyTorch.
#[derive(Debug, Clone, Copy)]
pub struct ReferenceCheck {
    /// Reference sentences compared.
    pub sentences: usize,
    /// Largest |Δ| over the encoder memory and the logits of every sentence.
    pub max_diff: f32,
}

/// Largest |Δ| the f32 forward pass may show against PyTorch.
const TOLERANCE: f32 = 1e-3;

/// Compare `fm` with `<dir>/reference.safetensors`: encoder memory and teacher-forced logits to
/// 1e-3, greedy ids exactly. Fails naming the sentence that disagrees, or `config.json`'s
/// `nhead` when another head count would make the forward pass match.
pub fn check_reference(fm: &FloatModel<'_>, dir: &Path) -> Result<Option<ReferenceCheck>> {
    let path = dir.join("reference.safetensors");
    if !path.exists() {
        return Ok(None);
    }
    if fm.config.kind != ModelKind::EncoderDecoder {
        return check_generic(fm, &path).map(Some);
    }
    let refs = read_references(&path)?;
    let mut fl = Float::new(fm)?;
    let mut worst = 0f32;
    for (i, r) in refs.iter().enumerate() {
        let d = diff(&mut fl, r, &path)?;
        if !d.within() {
            if let Some(h) = nhead_that_fits(fm, &refs, &path)? {
                bail!("{}: field `nhead`: {}, but the f32 forward pass matches PyTorch's {} with nhead {h}", dir.join("config.json").display(), fm.config.nhead, path.display());
            }
            bail!("{}: sentence {i}: f32 forward disagrees with PyTorch (memory max |Δ| {:.2e}, logits max |Δ| {:.2e}): the weight mapping is wrong", path.display(), d.memory, d.logits);
        }
        let ours = fl.greedy(&r.src)?;
        if ours != r.greedy {
            bail!("{}: sentence {i}: f32 greedy {:?} differs from PyTorch {:?}", path.display(), ours, r.greedy);
        }
        worst = worst.max(d.memory).max(d.logits);
    }
    Ok(Some(ReferenceCheck { sentences: refs.len(), max_diff: worst }))
}

/// The encoder-only and decoder-only vectors: per case `i`, a decoder-only model's `ids.i`,
/// `logits.i` (every position) and `greedy.i`; an encoder-only model's `input.i`, `hidden.i`
/// (the final norm's output) and `output.i`.
fn check_generic(fm: &FloatModel<'_>, path: &Path) -> Result<ReferenceCheck> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes).with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let c = fm.config;
    let mut fl = Float::new(fm)?;
    let max_diff = |a: &[f32], b: &[f32]| a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    let ids = |name: &str| -> Result<Vec<TokenId>> { Ok(ints(&st, name, path)?.iter().map(|&v| v as TokenId).collect()) };
    let (mut worst, mut n) = (0f32, 0);
    let key = if c.kind == ModelKind::DecoderOnly { "ids" } else { "input" };
    while st.tensor(&format!("{key}.{n}")).is_ok() {
        let i = n;
        let mut state = fl.state()?;
        let d = if c.kind == ModelKind::DecoderOnly {
            let prompt = ids(&format!("ids.{i}"))?;
            let want = floats(&st, &format!("logits.{i}"), path)?;
            let mut d = 0f32;
            for (pos, &t) in prompt.iter().enumerate() {
                fm.decode_step(t, pos, &mut state, &mut NoObserver)?;
                let Some(w) = want.data.get(pos * c.vocab..(pos + 1) * c.vocab) else {
                    bail!("{}: `logits.{i}` of shape {:?} is not {} rows of the vocabulary size {}", path.display(), want.shape, prompt.len(), c.vocab);
                };
                d = d.max(max_diff(state.logits(), w));
            }
            let greedy = ids(&format!("greedy.{i}"))?;
            let mut out = vec![0; greedy.len().max(1)];
            let mut st2 = fl.state()?;
            let m = fm.generate(&prompt, greedy.len(), &mut st2, &mut out)?;
            if out[..m] != greedy[..] {
                bail!("{}: case {i}: f32 greedy {:?} differs from PyTorch {:?}", path.display(), &out[..m], greedy);
            }
            d
        } else {
            let hidden = floats(&st, &format!("hidden.{i}"), path)?;
            let output = floats(&st, &format!("output.{i}"), path)?;
            let out = if c.tokens() {
                let src = ids(&format!("input.{i}"))?;
                fm.classify(FSource::Tokens(&src), &mut state, &mut NoObserver)?.to_vec()
            } else {
                let src = floats(&st, &format!("input.{i}"), path)?;
                fm.classify(FSource::Features(&src.data), &mut state, &mut NoObserver)?.to_vec()
            };
            max_diff(fm.memory(&state), &hidden.data).max(max_diff(&out, &output.data))
        };
        if d > TOLERANCE {
            bail!("{}: case {i}: f32 forward disagrees with PyTorch (max |Δ| {d:.2e}): the weight mapping is wrong", path.display());
        }
        worst = worst.max(d);
        n += 1;
    }
    if n == 0 {
        bail!("{}: no `{key}.0` tensor", path.display());
    }
    Ok(ReferenceCheck { sentences: n, max_diff: worst })
}

/// One reference sentence as PyTorch ran it.
struct Reference {
    src: Vec<TokenId>,
    /// `(src_len, d_model)` encoder output.
    memory: Vec<f32>,
    /// `(steps, vocab)` logits of the first decoder steps, teacher-forced on `greedy`.
    logits: Floats,
    greedy: Vec<TokenId>,
}

/// Every sentence `i` of the file (`src_ids.i`, `memory.i`, `logits.i`, `greedy.i`), at least one.
fn read_references(path: &Path) -> Result<Vec<Reference>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes).with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let ids = |name: String| -> Result<Vec<TokenId>> { Ok(ints(&st, &name, path)?.iter().map(|&v| v as TokenId).collect()) };
    let mut refs = Vec::new();
    for i in 0.. {
        if st.tensor(&format!("src_ids.{i}")).is_err() {
            break;
        }
        refs.push(Reference {
            src: ids(format!("src_ids.{i}"))?,
            memory: floats(&st, &format!("memory.{i}"), path)?.data,
            logits: floats(&st, &format!("logits.{i}"), path)?,
            greedy: ids(format!("greedy.{i}"))?,
        });
    }
    if refs.is_empty() {
        bail!("{}: no `src_ids.0` tensor", path.display());
    }
    Ok(refs)
}

/// Largest |Δ| of one sentence's memory and logits.
struct Diff {
    memory: f32,
    logits: f32,
}

impl Diff {
    fn within(&self) -> bool {
        self.memory <= TOLERANCE && self.logits <= TOLERANCE
    }
}

/// Encode `r`'s source and teacher-force `r`'s greedy ids through `fl`'s model.
fn diff(fl: &mut Float<'_>, r: &Reference, path: &Path) -> Result<Diff> {
    let fm = fl.model;
    let mut state = fl.state()?;
    fm.encode(&r.src, &mut state, &mut NoObserver)?;
    let max_diff = |a: &[f32], b: &[f32]| a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    let memory = max_diff(fm.memory(&state), &r.memory);
    let v = fm.config.vocab;
    let mut logits = 0f32;
    let mut last = fm.config.bos;
    for t in 0..r.logits.shape.first().copied().unwrap_or(0) {
        fm.decode_step(last, t, &mut state, &mut NoObserver)?;
        let Some(want) = r.logits.data.get(t * v..(t + 1) * v) else {
            bail!("{}: logits of shape {:?} are not rows of the vocabulary size {v}", path.display(), r.logits.shape);
        };
        logits = logits.max(max_diff(state.logits(), want));
        last = r.greedy.get(t).copied().unwrap_or(0);
    }
    Ok(Diff { memory, logits })
}

/// A head count other than the config's under which every reference sentence matches: the
/// shapes of the weights do not depend on `nhead`, so this is how a wrong one shows.
fn nhead_that_fits(fm: &FloatModel<'_>, refs: &[Reference], path: &Path) -> Result<Option<usize>> {
    let d = fm.config.d_model;
    for h in (1..=d).filter(|&h| d.is_multiple_of(h) && h != fm.config.nhead) {
        let mut alt = fm.clone();
        alt.config.nhead = h;
        alt.config.n_kv_heads = h;
        if alt.config.validate().is_err() {
            continue;
        }
        let mut fl = Float::new(&alt)?;
        let mut fits = true;
        for r in refs {
            fits &= diff(&mut fl, r, path)?.within();
        }
        if fits {
            return Ok(Some(h));
        }
    }
    Ok(None)
}
