//! `picoformer classify`: an encoder-only model over feature windows (CSV: one line per frame,
//! windows separated by blank lines, or one window per line) or texts (one per line), from a
//! file or stdin. One line per window: its index, the class (with its label when the export
//! names them) and the head's outputs in real units.

use std::io::{self, Read, Write};
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use picoformer::blob::{InputKind, ModelKind};
use picoformer::Model;

use crate::calibrate::text_ids;
use crate::generate::require_kind;
use crate::host::{read_aligned, quantize_window, read_windows, Clf};

/// Classify the windows of `input` (a file, or stdin when `None`); `labels` names the classes.
pub fn run(model_path: &Path, input: Option<&Path>, labels: &[String]) -> Result<()> {
    let blob = read_aligned(model_path)?;
    let model = Model::parse(blob.bytes()).map_err(|e| anyhow!("{}: {e}", model_path.display()))?;
    require_kind(&model, model_path, ModelKind::EncoderOnly, "classify")?;
    let c = *model.config();
    let (path, _tmp) = match input {
        Some(p) => (p.to_path_buf(), None),
        None => {
            let mut text = String::new();
            io::stdin().read_to_string(&mut text).context("reading stdin")?;
            let p = std::env::temp_dir().join(format!("picoformer-classify-{}.csv", std::process::id()));
            std::fs::write(&p, text)?;
            (p.clone(), Some(TempFile(p)))
        }
    };
    let unit = model.output_scale().to_real();
    let mut clf = Clf::new(&model);
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut print = |i: usize, outputs: &[i32]| -> Result<()> {
        let class = picoformer::argmax(outputs);
        let name = labels.get(class).map(|l| format!(" ({l})")).unwrap_or_default();
        let scores: Vec<String> = outputs.iter().map(|&v| format!("{:.4}", v as f64 * unit)).collect();
        writeln!(out, "{i}: class {class}{name}  [{}]", scores.join(", "))?;
        Ok(())
    };
    match c.input {
        InputKind::Features => {
            let windows = read_windows(&path, c.n_features)?;
            for (i, w) in windows.iter().enumerate() {
                let frames = quantize_window(&model, w);
                let mut k = clf.session()?;
                let outputs = k.classify_features(&frames).map_err(|e| anyhow!("window {i}: {e}"))?.to_vec();
                print(i, &outputs)?;
            }
        }
        InputKind::Tokens => {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            for (i, line) in text.lines().enumerate() {
                let ids = text_ids(model.tokenizer(), line, c.max_len, false)?;
                let mut k = clf.session()?;
                let outputs = k.classify_tokens(&ids).map_err(|e| anyhow!("line {}: {e}", i + 1))?.to_vec();
                print(i, &outputs)?;
            }
        }
    }
    Ok(())
}

/// A temporary file removed when dropped.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
