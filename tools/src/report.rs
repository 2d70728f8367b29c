//! The conversion report: Markdown beside the blob, plus an SVG plot of per-site SQNR.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::eval::{Quality, SiteError};

/// What the blob costs in flash and RAM.
pub struct Sizes {
    pub blob: usize,
    pub weights: usize,
    pub vocab: usize,
    pub arena_greedy: usize,
    pub arena_beam: usize,
    pub beam: usize,
}

/// Everything the report says.
pub struct ReportInput<'a> {
    pub model_name: String,
    pub config_line: String,
    /// Largest |Δ| of the f32 forward pass against PyTorch's vectors, if there were any.
    pub reference_diff: Option<f32>,
    /// What the model was calibrated on, e.g. "300 sentence pairs (teacher-forced)".
    pub calibration: String,
    pub errors: &'a [SiteError],
    /// Inputs the per-site errors were measured on.
    pub layer_inputs: usize,
    pub quality: Option<&'a Quality>,
    pub sizes: Sizes,
    pub seconds: f64,
    /// `--flash-budget` / `--budget-sweep`: the precision plan and the sweep, as Markdown
    /// (none without them, so the report is unchanged).
    pub flash: Option<String>,
}

/// The files [`write`] wrote.
pub struct ReportFiles {
    pub markdown: PathBuf,
    pub svg: PathBuf,
}

/// Write `<stem>.report.md` and the plot it shows, `<stem>.sqnr.svg`.
pub fn write(stem: &Path, r: &ReportInput<'_>) -> Result<ReportFiles> {
    let svg_path = stem.with_extension("sqnr.svg");
    std::fs::write(&svg_path, svg(r.errors)).with_context(|| format!("writing {}", svg_path.display()))?;
    let svg_name = svg_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let md_path = stem.with_extension("report.md");
    std::fs::write(&md_path, markdown(r, &svg_name)).with_context(|| format!("writing {}", md_path.display()))?;
    Ok(ReportFiles { markdown: md_path, svg: svg_path })
}

fn kb(n: usize) -> String {
    format!("{n} B ({:.1} KiB)", n as f64 / 1024.0)
}

pub fn markdown(r: &ReportInput<'_>, svg_name: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Conversion report: {}\n", r.model_name);
    let _ = writeln!(s, "{}\n", r.config_line);
    let _ = writeln!(s, "Written by `picoformer convert` in {:.1} s. Calibration: {}.", r.seconds, r.calibration);
    match r.reference_diff {
        Some(d) => {
            let _ = writeln!(s, "The f32 forward pass matches PyTorch's `reference.safetensors` to max |Δ| = {d:.2e}.\n");
        }
        None => {
            let _ = writeln!(s, "The export has no `reference.safetensors`: the f32 forward pass was not checked against PyTorch.\n");
        }
    }
    let _ = writeln!(s, "## Quantization scheme\n");
    let _ = writeln!(s, "- Weights int8, symmetric, one scale per output channel; biases int32 in the accumulator's scale.");
    let _ = writeln!(s, "- Residual stream, LayerNorm outputs, attention contexts and FFN activations: int16, one scale per site.");
    let _ = writeln!(s, "- Q, K, V: int8; attention probabilities: u8 (1/256); logits: int32.");
    let _ = writeln!(s, "- Every scale is the calibrated max |x| over the calibration set; every multiplier a Q31 mantissa and a shift.\n");
    let _ = writeln!(s, "The design study (DESIGN §3, on the de-en translator) measured all-int8 activations at 74% identical greedy output against float and");
    let _ = writeln!(s, "int16 residual + LayerNorm output at 87%; the int16 sites above are where the per-site SQNR below shows int8 would lose most.\n");
    match r.quality {
        Some(Quality::Translation(a)) => {
            let _ = writeln!(s, "## Agreement with the float model ({} sentences)\n", a.sentences);
            let _ = writeln!(s, "| metric | int8 | float |\n|---|---|---|");
            let _ = writeln!(s, "| sacreBLEU (13a, greedy) | {:.2} | {:.2} |", a.bleu_int8.score, a.bleu_float.score);
            let _ = writeln!(s, "| identical greedy output | {:.1}% ({}/{}) | — |", 100.0 * a.identical as f64 / a.sentences as f64, a.identical, a.sentences);
            let _ = writeln!(s, "| tokens before the first difference | {:.1}% ({}/{}) | — |", 100.0 * a.prefix_tokens as f64 / a.float_tokens.max(1) as f64, a.prefix_tokens, a.float_tokens);
            let _ = writeln!(s, "| host time, one thread | {:.1} s | {:.1} s |\n", a.seconds_int8, a.seconds_float);
            let _ = writeln!(s, "int8: `{}`  \nfloat: `{}`\n", a.bleu_int8, a.bleu_float);
        }
        Some(Quality::Language(q)) => {
            let _ = writeln!(s, "## Agreement with the float model\n");
            let _ = writeln!(s, "| metric | int8 | float |\n|---|---|---|");
            let _ = writeln!(s, "| per-token perplexity ({} texts, {} tokens, eos included) | {:.3} ({:+.2}%) | {:.3} |", q.texts, q.tokens, q.ppl_int8, 100.0 * (q.ppl_int8 / q.ppl_float - 1.0), q.ppl_float);
            let _ = writeln!(s, "| greedy continuations identical to float ({} prompts, up to {} tokens) | {:.1}% ({}/{}) | — |\n", q.prompts, crate::vectors::MAX_NEW, 100.0 * q.identical as f64 / q.prompts.max(1) as f64, q.identical, q.prompts);
            if let Some(first) = q.int8_continuations.first() {
                let _ = writeln!(s, "First int8 continuation: `{first}`\n");
            }
        }
        Some(Quality::Classification(q, labelled)) => {
            let _ = writeln!(s, "## Agreement with the float model ({} test windows)\n", q.windows);
            let _ = writeln!(s, "| metric | int8 | float |\n|---|---|---|");
            if *labelled > 0 {
                let _ = writeln!(s, "| accuracy | {:.2}% ({}/{}) | {:.2}% ({}/{}) |", 100.0 * q.correct_int8 as f64 / *labelled as f64, q.correct_int8, labelled, 100.0 * q.correct_float as f64 / *labelled as f64, q.correct_float, labelled);
            }
            let _ = writeln!(s, "| predictions equal to float | {:.2}% ({}/{}) | — |", 100.0 * q.agree as f64 / q.windows.max(1) as f64, q.agree, q.windows);
            let _ = writeln!(s, "| mean |Δ| of the head's outputs | {:.4} | — |\n", q.mean_abs_diff);
        }
        None => {}
    }
    let _ = writeln!(s, "## Memory\n");
    let _ = writeln!(s, "| what | bytes |\n|---|---|");
    let _ = writeln!(s, "| flash: weights and quantization parameters | {} |", kb(r.sizes.weights));
    let _ = writeln!(s, "| flash: tokenizer vocabulary | {} |", kb(r.sizes.vocab));
    let _ = writeln!(s, "| flash: blob total (with header, table, padding) | {} |", kb(r.sizes.blob));
    let _ = writeln!(s, "| RAM: arena{} | {} |", if r.sizes.beam > 0 { ", greedy" } else { "" }, kb(r.sizes.arena_greedy));
    if r.sizes.beam > 0 {
        let _ = writeln!(s, "| RAM: arena, beam width up to {} | {} |", r.sizes.beam, kb(r.sizes.arena_beam));
    }
    let _ = writeln!(s);
    if let Some(f) = &r.flash {
        let _ = writeln!(s, "{f}");
    }
    let _ = writeln!(s, "## Per-site error of int8 against f32\n");
    let _ = writeln!(s, "Both models on the first {} test inputs (decoders teacher-forced on the float model's greedy output).\n", r.layer_inputs);
    let _ = writeln!(s, "![SQNR per site]({svg_name})\n");
    let _ = writeln!(s, "| site | SQNR (dB) | cosine | values |\n|---|---|---|---|");
    for e in r.errors {
        let _ = writeln!(s, "| `{}` | {:.1} | {:.6} | {} |", e.site, e.sqnr_db, e.cosine, e.values);
    }
    s
}

/// A horizontal bar chart of SQNR per site.
pub fn svg(errors: &[SiteError]) -> String {
    let row = 14;
    let (left, width) = (150, 420);
    let h = 40 + row * errors.len();
    let max_db = errors.iter().map(|e| e.sqnr_db).fold(10.0f64, f64::max).min(120.0);
    let mut s = String::new();
    let _ = writeln!(s, r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{h}" font-family="monospace" font-size="10">"#, left + width + 60);
    let _ = writeln!(s, r#"<text x="{left}" y="14" font-size="12">SQNR of int8 vs f32 per site (dB)</text>"#);
    for (i, e) in errors.iter().enumerate() {
        let y = 24 + row * i;
        let w = (e.sqnr_db.clamp(0.0, max_db) / max_db * width as f64) as usize;
        let color = if e.sqnr_db < 20.0 { "#d62728" } else if e.sqnr_db < 30.0 { "#ff7f0e" } else { "#1f77b4" };
        let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#, left - 4, y + 10, e.site);
        let _ = writeln!(s, r#"<rect x="{left}" y="{y}" width="{w}" height="{}" fill="{color}"/>"#, row - 3);
        let _ = writeln!(s, r#"<text x="{}" y="{}">{:.1}</text>"#, left + w + 3, y + 10, e.sqnr_db);
    }
    s.push_str("</svg>\n");
    s
}
