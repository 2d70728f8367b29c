//! The f32 check (DESIGN §5.2): the converter's float forward pass against PyTorch's
//! `reference.safetensors`, which shows that the weight mapping is right.

use std::path::Path;

use anyhow::{bail, Context, Result};
use picoformer::observe::NoObserver;
use picoformer::reference::FloatModel;
use picoformer::TokenId;
use safetensors::SafeTensors;

use crate::export::{floats, ints};
use crate::host::Float;

/// How closely the f32 forward pass matched PyTorch.
#[derive(Debug, Clone, Copy)]
pub struct ReferenceCheck {
    /// Reference sentences compared.
    pub sentences: usize,
    /// Largest |Δ| over the encoder memory and the logits of every sentence.
    pub max_diff: f32,
}

/// Compare `fm` with `<dir>/reference.safetensors`: encoder memory and teacher-forced logits to
/// 1e-3, greedy ids exactly. Fails naming the sentence that disagrees.
pub fn check_reference(fm: &FloatModel<'_>, dir: &Path) -> Result<ReferenceCheck> {
    let path = dir.join("reference.safetensors");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes).with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let mut fl = Float::new(fm)?;
    let mut worst = 0f32;
    let mut i = 0;
    while st.tensor(&format!("src_ids.{i}")).is_ok() {
        let src: Vec<TokenId> = ints(&st, &format!("src_ids.{i}"), &path)?.iter().map(|&v| v as TokenId).collect();
        let memory = floats(&st, &format!("memory.{i}"), &path)?.data;
        let greedy: Vec<TokenId> = ints(&st, &format!("greedy.{i}"), &path)?.iter().map(|&v| v as TokenId).collect();
        let logits = floats(&st, &format!("logits.{i}"), &path)?;
        let mut state = fl.state()?;
        fm.encode(&src, &mut state, &mut NoObserver)?;
        let diff = |a: &[f32], b: &[f32]| a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        let dm = diff(fm.memory(&state), &memory);
        let v = fm.config.vocab;
        let mut dl = 0f32;
        let mut last = fm.config.bos;
        for t in 0..logits.shape.first().copied().unwrap_or(0) {
            fm.decode_step(last, t, &mut state, &mut NoObserver)?;
            dl = dl.max(diff(state.logits(), &logits.data[t * v..(t + 1) * v]));
            last = greedy.get(t).copied().unwrap_or(0);
        }
        let ours = fl.greedy(&src)?;
        if dm > 1e-3 || dl > 1e-3 {
            bail!("{}: sentence {i}: f32 forward disagrees with PyTorch (memory max |Δ| {dm:.2e}, logits max |Δ| {dl:.2e}): the weight mapping is wrong", path.display());
        }
        if ours != greedy {
            bail!("{}: sentence {i}: f32 greedy {:?} differs from PyTorch {:?}", path.display(), ours, greedy);
        }
        worst = worst.max(dm).max(dl);
        i += 1;
    }
    if i == 0 {
        bail!("{}: no `src_ids.0` tensor", path.display());
    }
    Ok(ReferenceCheck { sentences: i, max_diff: worst })
}
