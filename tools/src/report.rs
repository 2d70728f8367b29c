//! The conversion report: Markdown beside the blob, an SVG plot of per-site SQNR, and an SVG
//! map of the blob's flash by layer and tensor, drawn from the blob's own tensor table.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use picoformer::blob::{self, Part, Stack, Tag, ENTRY_LEN, HEADER_LEN};

use crate::clip::ScaleRule;
use crate::eval::{Quality, SiteError};
use crate::quantize::WeightRule;
use picoformer::observe::Site;

/// An `i8` site's calibrated max |x| and the clip point its scale was set from.
pub struct Clip {
    pub site: Site,
    pub max: f32,
    pub clip: f32,
}

/// What the blob costs in flash and RAM.
#[derive(Debug, Clone)]
pub struct Sizes {
    pub blob: usize,
    pub weights: usize,
    pub vocab: usize,
    pub arena_greedy: usize,
    pub arena_beam: usize,
    pub beam: usize,
    /// Every buffer of the greedy arena (`arena_map`), for the RAM map.
    pub arena_map: Vec<picoformer::Region>,
}

/// Everything the report says.
pub struct ReportInput<'a> {
    pub model_name: String,
    pub config_line: String,
    /// Largest |Δ| of the f32 forward pass against PyTorch's vectors, if there were any.
    pub reference_diff: Option<f32>,
    /// What the model was calibrated on, e.g. "300 sentence pairs (teacher-forced)".
    pub calibration: String,
    /// How the activation scales were chosen, the `i8` sites' clip points, and the time it took.
    pub scales: ScaleRule,
    pub weights: WeightRule,
    pub clips: &'a [Clip],
    pub clip_seconds: f64,
    pub errors: &'a [SiteError],
    /// Inputs the per-site errors were measured on.
    pub layer_inputs: usize,
    pub quality: Option<&'a Quality>,
    pub sizes: Sizes,
    pub seconds: f64,
    /// The blob as written: the flash map reads its tensor table.
    pub blob: &'a [u8],
    /// `--flash-budget` / `--budget-sweep`: the precision plan and the sweep, as Markdown
    /// (none without them, so the report is unchanged).
    pub flash: Option<String>,
}

/// The files [`write`] wrote.
pub struct ReportFiles {
    pub markdown: PathBuf,
    pub svg: PathBuf,
    pub flash: PathBuf,
}

/// Write `<stem>.report.md` and the plots it shows, `<stem>.sqnr.svg` and `<stem>.flash.svg`.
pub fn write(stem: &Path, r: &ReportInput<'_>) -> Result<ReportFiles> {
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let svg_path = stem.with_extension("sqnr.svg");
    std::fs::write(&svg_path, svg(r.errors)).with_context(|| format!("writing {}", svg_path.display()))?;
    let ram_path = stem.with_extension("ram.svg");
    std::fs::write(&ram_path, crate::memory_map::ram_svg(&r.model_name, &r.sizes.arena_map, r.sizes.arena_greedy)).with_context(|| format!("writing {}", ram_path.display()))?;
    let flash_path = stem.with_extension("flash.svg");
    std::fs::write(&flash_path, flash_svg(&r.model_name, r.blob)?).with_context(|| format!("writing {}", flash_path.display()))?;
    let md_path = stem.with_extension("report.md");
    std::fs::write(&md_path, markdown(r, &name(&svg_path), &name(&flash_path))).with_context(|| format!("writing {}", md_path.display()))?;
    Ok(ReportFiles { markdown: md_path, svg: svg_path, flash: flash_path })
}

fn kb(n: usize) -> String {
    format!("{n} B ({:.1} KiB)", n as f64 / 1024.0)
}

pub fn markdown(r: &ReportInput<'_>, svg_name: &str, flash_name: &str) -> String {
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
    let clip = match r.weights {
        WeightRule::Max => "",
        WeightRule::Mse => ", clipped where the row's squared error is least (`--weights mse`)",
        WeightRule::Gptq => ", GPTQ-rounded against each linear's calibration inputs (`--weights gptq`)",
    };
    let _ = writeln!(s, "- Weights int8, symmetric, one scale per output channel{clip}; biases int32 in the accumulator's scale.");
    let _ = writeln!(s, "- Residual stream, LayerNorm outputs, attention contexts and FFN activations: int16, one scale per site.");
    let _ = writeln!(s, "- Q, K, V: int8; attention probabilities: u8 (1/256); logits: int32.");
    let rule = match r.scales {
        ScaleRule::Max => "the calibrated max |x| over the calibration set".to_string(),
        ScaleRule::Mse => "the calibrated max |x| over the calibration set, but at the int8 sites (Q, K, V) the clip point of least quantization MSE".to_string(),
        ScaleRule::Search => format!("the calibrated max |x| over the calibration set, but at the int8 sites (Q, K, V) the clip point searched by the int8 model's loss against float (`--scales search`, {:.1} s)", r.clip_seconds),
    };
    let _ = writeln!(s, "- Every scale is {rule}; every multiplier a Q31 mantissa and a shift.\n");
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
    let ram_name = flash_name.replace(".flash.svg", ".ram.svg");
    let _ = writeln!(s, "The arena{} buffer by buffer (hover for sizes):\n\n![RAM map]({ram_name})\n", if r.sizes.beam > 0 { " for greedy decoding," } else { "," });
    let _ = writeln!(s, "The blob's flash by layer and tensor, from its tensor table:\n");
    let _ = writeln!(s, "![Flash map]({flash_name})\n");
    if r.scales != ScaleRule::Max && !r.clips.is_empty() {
        let _ = writeln!(s, "## Clipping of the int8 sites\n");
        let _ = writeln!(s, "| site | max \\|x\\| | clip | clip / max |\n|---|---|---|---|");
        for c in r.clips {
            let _ = writeln!(s, "| `{}` | {:.4} | {:.4} | {:.2} |", c.site, c.max, c.clip, c.clip / c.max.max(1e-30));
        }
        let _ = writeln!(s);
    }
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

/// Where a tensor belongs in the flash map: its row (a layer, or a part of the model) and
/// what it is (the segment's colour).
fn flash_place(tag: Tag) -> (String, &'static str) {
    let stack = |s: Stack| match s {
        Stack::Encoder => "encoder",
        Stack::Decoder => "decoder",
    };
    let kind = |p: Part| if p == Part::Weight { "int8 weights" } else { "biases, requantizers" };
    match tag {
        Tag::Embedding(_) => ("embedding".into(), "int8 weights"),
        Tag::EmbeddingRq(_) => ("embedding".into(), "biases, requantizers"),
        Tag::Positions | Tag::RopeCos | Tag::RopeSin => ("positions".into(), "tables, records"),
        Tag::InputProj(p) => ("input projection".into(), kind(p)),
        Tag::FeatureQuant => ("input projection".into(), "tables, records"),
        Tag::FinalNorm(s, _) => (format!("{} final norm", stack(s)), "norms"),
        Tag::EmbedNorm(_) => ("embedding".into(), "norms"),
        Tag::Pooler(p) => ("pooler".into(), kind(p)),
        Tag::PoolerTable => ("pooler".into(), "tables, records"),
        Tag::Output(p) => ("output".into(), kind(p)),
        Tag::LogSoftmax | Tag::HeadScale => ("output".into(), "tables, records"),
        Tag::Linear { stack: s, layer, part, .. } => (format!("{} {layer}", stack(s)), kind(part)),
        Tag::Norm { stack: s, layer, .. } => (format!("{} {layer}", stack(s)), "norms"),
        Tag::Attention { stack: s, layer, .. } | Tag::Residual { stack: s, layer, .. } => (format!("{} {layer}", stack(s)), "tables, records"),
        Tag::Rope { stack: s, layer } | Tag::ActTable { stack: s, layer } | Tag::GateMul { stack: s, layer } => (format!("{} {layer}", stack(s)), "tables, records"),
        Tag::Tokenizer(_) => ("tokenizer".into(), "tokenizer"),
    }
}

const FLASH_KINDS: [(&str, &str); 6] = [
    ("int8 weights", "#1f77b4"),
    ("biases, requantizers", "#ff7f0e"),
    ("norms", "#2ca02c"),
    ("tables, records", "#9467bd"),
    ("tokenizer", "#8c564b"),
    ("header, table, padding", "#bbbbbb"),
];

fn flash_colour(kind: &str) -> &'static str {
    FLASH_KINDS.iter().find(|(k, _)| *k == kind).map_or("#000000", |(_, c)| *c)
}

/// One tensor of the flash map.
pub struct FlashTensor {
    /// The layer or part of the model it belongs to.
    pub row: String,
    pub kind: &'static str,
    /// Name, shape and bytes, for the tooltip.
    pub label: String,
    /// Written on the segment when it is wide enough.
    pub short: String,
    pub offset: usize,
    pub bytes: usize,
}

/// The blob's flash, read from its own header and tensor table.
pub struct FlashMap {
    pub total: usize,
    /// The header and the tensor table.
    pub table_end: usize,
    /// In table order (which is address order).
    pub tensors: Vec<FlashTensor>,
    /// Bytes per layer or part of the model, in table order, then "header, table, padding".
    pub rows: Vec<(String, usize)>,
}

/// Read the flash map of blob `b` (a blob `Model::parse` accepted).
pub fn flash_map(b: &[u8]) -> Result<FlashMap> {
    let h = blob::read_header(b).ok_or_else(|| anyhow!("the blob is shorter than its header"))?;
    let total = h.total_len as usize;
    let mut tensors = Vec::new();
    for i in 0..h.tensor_count as usize {
        let e = blob::read_entry(b, i).ok_or_else(|| anyhow!("tensor table entry {i} is past the blob's end"))?;
        let tag = Tag::from_code(e.tag).ok_or_else(|| anyhow!("tensor {i}: unknown tag {:#x}", e.tag))?;
        let (row, kind) = flash_place(tag);
        let label = format!("{tag} [{}×{}] {} B", e.dims[0], e.dims[1], e.bytes);
        let short = match tag {
            Tag::Linear { sub: blob::Sub::CrossAttn, proj, part: Part::Weight, .. } => format!("x{proj:?}"),
            Tag::Linear { proj, part: Part::Weight, .. } => format!("{proj:?}"),
            Tag::Embedding(_) | Tag::Output(Part::Weight) | Tag::InputProj(Part::Weight) | Tag::Positions => format!("{tag:?}").to_lowercase(),
            Tag::Tokenizer(p) => format!("{p:?}").to_lowercase(),
            _ => String::new(),
        };
        tensors.push(FlashTensor { row, kind, label, short, offset: e.offset as usize, bytes: e.bytes as usize });
    }
    let table_end = HEADER_LEN + ENTRY_LEN * tensors.len();
    let data: usize = tensors.iter().map(|t| t.bytes).sum();
    let mut rows: Vec<(String, usize)> = Vec::new();
    for t in &tensors {
        match rows.iter_mut().find(|(r, _)| *r == t.row) {
            Some(r) => r.1 += t.bytes,
            None => rows.push((t.row.clone(), t.bytes)),
        }
    }
    // the rest: the header and table, and the alignment padding between tensors
    rows.push((OVERHEAD.into(), total.saturating_sub(data)));
    Ok(FlashMap { total, table_end, tensors, rows })
}

const OVERHEAD: &str = "header, table, padding";

/// The blob's flash as SVG ([`flash_map`]): a strip of the whole blob in address order (every
/// tensor a segment), then a bar per layer or part of the model, its tensors stacked, with its
/// bytes and share. Segments carry the tensor's name, shape and bytes as a tooltip.
pub fn flash_svg(name: &str, b: &[u8]) -> Result<String> {
    let FlashMap { total, table_end, tensors, rows } = flash_map(b)?;
    let overhead = rows.last().map_or(0, |r| r.1);
    let largest = rows.iter().map(|r| r.1).max().unwrap_or(1).max(1);

    let (left, width, row_h) = (150usize, 480usize, 16usize);
    let strip_y = 40;
    let rows_y = strip_y + 52;
    let height = rows_y + row_h * rows.len() + 34;
    let mut s = String::new();
    let _ = writeln!(s, r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" font-family="monospace" font-size="10">"#, left + width + 130);
    let _ = writeln!(s, r#"<text x="10" y="16" font-size="12">{}: flash, {} bytes ({:.1} KiB), {} tensors</text>"#, esc(name), total, total as f64 / 1024.0, tensors.len());
    // the address strip
    let x = |off: usize| left as f64 + off as f64 / total.max(1) as f64 * width as f64;
    let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="end">address order</text>"#, left - 4, strip_y + 12);
    let _ = writeln!(s, r#"<rect x="{left}" y="{strip_y}" width="{width}" height="16" fill="{}"><title>header and tensor table, 0..{table_end}</title></rect>"#, flash_colour(OVERHEAD));
    for t in &tensors {
        let (x0, x1) = (x(t.offset), x(t.offset + t.bytes));
        let _ = writeln!(s, r#"<rect x="{x0:.2}" y="{strip_y}" width="{:.2}" height="16" fill="{}"><title>{} at {}</title></rect>"#, (x1 - x0).max(0.3), flash_colour(t.kind), esc(&t.label), t.offset);
    }
    let _ = writeln!(s, r#"<text x="{left}" y="{}">0</text><text x="{}" y="{}" text-anchor="end">{total}</text>"#, strip_y + 28, left + width, strip_y + 28);
    // a bar per row, its tensors stacked in table order
    for (i, (row, bytes)) in rows.iter().enumerate() {
        let y = rows_y + row_h * i;
        let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#, left - 4, y + 11, esc(row));
        let scale = width as f64 / largest as f64;
        let mut at = left as f64;
        if row == OVERHEAD {
            let w = *bytes as f64 * scale;
            let _ = writeln!(s, r#"<rect x="{at:.2}" y="{y}" width="{:.2}" height="{}" fill="{}"><title>header {HEADER_LEN} B, table {} B, padding {} B</title></rect>"#, w.max(0.3), row_h - 3, flash_colour(row), table_end - HEADER_LEN, overhead.saturating_sub(table_end));
            at += w;
        }
        for t in tensors.iter().filter(|t| t.row == *row) {
            let w = t.bytes as f64 * scale;
            let _ = writeln!(s, r#"<rect x="{at:.2}" y="{y}" width="{:.2}" height="{}" fill="{}" stroke="white" stroke-width="0.3"><title>{}</title></rect>"#, w.max(0.3), row_h - 3, flash_colour(t.kind), esc(&t.label));
            if !t.short.is_empty() && w > 6.0 * t.short.len() as f64 + 4.0 {
                let _ = writeln!(s, r#"<text x="{:.2}" y="{}" fill="white" text-anchor="middle">{}</text>"#, at + w / 2.0, y + 10, esc(&t.short));
            }
            at += w;
        }
        let _ = writeln!(s, r#"<text x="{:.2}" y="{}">{} B ({:.1}%)</text>"#, at + 4.0, y + 11, bytes, 100.0 * *bytes as f64 / total.max(1) as f64);
    }
    // legend
    let ly = rows_y + row_h * rows.len() + 14;
    let mut lx = 10usize;
    for (k, c) in FLASH_KINDS {
        let _ = writeln!(s, r#"<rect x="{lx}" y="{}" width="10" height="10" fill="{c}"/><text x="{}" y="{}">{k}</text>"#, ly, lx + 14, ly + 9);
        lx += 24 + 6 * k.len();
    }
    s.push_str("</svg>\n");
    Ok(s)
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// de-en's flash map: every byte of the blob in exactly one row, the rows its layers, and
    /// the sizes the config implies (vocabulary 4,000, d_model 128, FFN 256, 2 + 2 layers).
    #[test]
    fn flash_map_of_de_en() {
        let b = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/de-en/de-en.pico")).unwrap();
        let m = flash_map(&b).unwrap();
        assert_eq!(m.total, b.len());
        assert_eq!(m.rows.iter().map(|r| r.1).sum::<usize>(), b.len());
        let row = |name: &str| m.rows.iter().find(|r| r.0 == name).map(|r| r.1);
        let names: Vec<&str> = m.rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(names, ["embedding", "positions", "encoder 0", "encoder 1", "encoder final norm", "decoder 0", "decoder 1", "decoder final norm", "output", "tokenizer", OVERHEAD]);
        // the token embedding (4000 × 128 int8) and its per-row requantizers (8 bytes each)
        assert_eq!(row("embedding"), Some(4000 * 128 + 4000 * 8));
        // an encoder layer's int8 weights: Q, K, V, O (128 × 128) and the FFN (2 × 128 × 256)
        let enc0: usize = m.tensors.iter().filter(|t| t.row == "encoder 0" && t.kind == "int8 weights").map(|t| t.bytes).sum();
        assert_eq!(enc0, 4 * 128 * 128 + 2 * 128 * 256);
        // a decoder layer has cross-attention too
        let dec0: usize = m.tensors.iter().filter(|t| t.row == "decoder 0" && t.kind == "int8 weights").map(|t| t.bytes).sum();
        assert_eq!(dec0, 8 * 128 * 128 + 2 * 128 * 256);
        // tensors in address order, after the table, inside the blob, not overlapping
        let mut end = m.table_end;
        for t in &m.tensors {
            assert!(t.offset >= end && t.offset % blob::ALIGN == 0, "{}", t.label);
            end = t.offset + t.bytes;
        }
        assert!(end <= b.len());
        let svg = flash_svg("de-en.pico", &b).unwrap();
        assert_eq!(svg.matches("<title>").count(), 1 + 2 * m.tensors.len() + 1);
        assert!(svg.contains("de-en.pico: flash, 1408712 bytes"));
    }
}
