//! `convert --flash-budget BYTES`: which weight matrices to store int4 so the blob fits.
//!
//! Sensitivity: for each weight matrix alone in int4 (everything else int8), the error of the
//! logits against the float model, teacher-forced on the float model's own output over a few
//! calibration inputs ([`layer_errors`]), as relative noise power `10^(−SQNR/10)`. The loss of a
//! tensor is how much that noise exceeds the all-int8 blob's. The plan takes tensors in order
//! of loss per byte saved until the blob fits, then returns to int8 the costliest ones the
//! budget still has room for (losses are assumed to add; the report measures the result).
//! int4 rows take the clipped scale with the least squared error
//! ([`crate::quantize::quantize_rows_to`]). Works for every model kind: the logits are the classifier head's output
//! for an encoder-only model.

use std::collections::HashSet;
use std::fmt::Write as _;

use anyhow::{anyhow, bail, Result};
use picoformer::blob::{self, Config, DType, Tag, TokenizerSizes};
use picoformer::observe::Site;
use picoformer::reference::FloatModel;
use picoformer::Model;

use crate::calibrate::Ranges;
use crate::eval::layer_errors;
use crate::host::AlignedBuf;
use crate::quantize::{quantize_with, FeatureScales, Precision, Quantized, WeightRule};
use crate::spm::VocabTables;
use crate::vectors::Inputs;

/// What quantizing needs, besides the plan.
pub struct Source<'a> {
    pub fm: &'a FloatModel<'a>,
    pub ranges: &'a Ranges,
    pub vocab: Option<&'a VocabTables>,
    pub features: Option<&'a FeatureScales>,
}

impl Source<'_> {
    /// The quantized model, its blob and the blob's logit SQNR on `inputs`.
    fn measure(&self, p: &Precision, inputs: Inputs<'_>) -> Result<(Quantized, usize, f64)> {
        let q = quantize_with(self.fm, self.ranges, WeightRule::default(), self.vocab, self.features, p)?;
        let bytes = q.blob(&self.fm.config)?;
        let buf = AlignedBuf::from_bytes(&bytes);
        let model = Model::parse(buf.bytes()).map_err(|e| anyhow!("a planned blob does not parse: {e}"))?;
        let errors = layer_errors(&model, self.fm, &q.scales, inputs)?;
        let sqnr = errors.iter().find(|e| e.site == Site::Logits).map(|e| e.sqnr_db).ok_or_else(|| anyhow!("no logits site measured"))?;
        Ok((q, bytes.len(), sqnr))
    }
}

/// One weight matrix's measurement.
#[derive(Debug, Clone)]
pub struct Tensor {
    pub tag: Tag,
    /// Bytes in int8 and in int4.
    pub int8_bytes: usize,
    pub int4_bytes: usize,
    /// Logit SQNR with only this tensor int4.
    pub sqnr_db: f64,
    /// Relative logit noise power added by making it int4 (≥ 0 up to measurement noise).
    pub loss: f64,
}

/// Every weight matrix's sensitivity, and the all-int8 blob it is measured against.
#[derive(Debug, Clone)]
pub struct Sensitivity {
    pub base_blob: usize,
    pub base_sqnr_db: f64,
    pub tensors: Vec<Tensor>,
    /// Inputs the logits were compared on.
    pub inputs: usize,
}

impl Tensor {
    /// Blob bytes saved by storing it int4 (padding included).
    pub fn saved(&self) -> usize {
        self.int8_bytes.next_multiple_of(blob::ALIGN) - self.int4_bytes.next_multiple_of(blob::ALIGN)
    }
}

fn noise(sqnr_db: f64) -> f64 {
    10f64.powf(-sqnr_db / 10.0)
}

/// The weight matrices of a config (the tensors the blob may store int4), in blob order, with
/// their shapes.
pub fn weight_matrices(c: &Config) -> Result<Vec<(Tag, usize, usize)>> {
    let mut out = Vec::new();
    blob::expected_tensors(c, TokenizerSizes::ANY, |s| {
        if s.dtype == DType::I8 {
            out.push((s.tag, s.dims[0], s.dims[1]));
        }
        Ok(())
    })
    .map_err(|e| anyhow!("{e}"))?;
    Ok(out)
}

/// Measure every weight matrix alone in int4 on `inputs`.
pub fn sensitivity(src: &Source<'_>, inputs: Inputs<'_>) -> Result<Sensitivity> {
    let n_inputs = inputs.len();
    let (_, base_blob, base_sqnr_db) = src.measure(&Precision::default(), inputs)?;
    let mut tensors = Vec::new();
    for (tag, n, k) in weight_matrices(&src.fm.config)? {
        let p = Precision { int4: HashSet::from([tag]) };
        let (_, blob4, sqnr_db) = src.measure(&p, inputs)?;
        let int8_bytes = DType::I8.bytes(n, k).unwrap_or(0);
        let int4_bytes = DType::I4.bytes(n, k).unwrap_or(0);
        // every tensor is padded to blob::ALIGN on its own, so savings add up exactly
        let saved = int8_bytes.next_multiple_of(blob::ALIGN) - int4_bytes.next_multiple_of(blob::ALIGN);
        if base_blob - blob4 != saved {
            bail!("internal: {tag} in int4 saves {} bytes, not {saved}", base_blob - blob4);
        }
        tensors.push(Tensor { tag, int8_bytes, int4_bytes, sqnr_db, loss: (noise(sqnr_db) - noise(base_sqnr_db)).max(0.0) });
    }
    Ok(Sensitivity { base_blob, base_sqnr_db, tensors, inputs: n_inputs })
}

impl Sensitivity {
    /// The cheapest set of int4 tensors (greedy by loss per byte saved, then the costliest
    /// given back to int8 while the blob still fits) whose blob is at most `budget` bytes, and
    /// the blob size it predicts.
    pub fn plan(&self, budget: usize) -> Result<(Precision, usize)> {
        let mut order: Vec<&Tensor> = self.tensors.iter().collect();
        order.sort_by(|a, b| {
            let ra = a.loss / a.saved().max(1) as f64;
            let rb = b.loss / b.saved().max(1) as f64;
            ra.total_cmp(&rb)
        });
        let mut p = Precision::default();
        let mut size = self.base_blob;
        for t in order {
            if size <= budget {
                break;
            }
            p.int4.insert(t.tag);
            size -= t.saved();
        }
        if size > budget {
            bail!("--flash-budget {budget}: even with every weight matrix int4 the blob is {size} bytes");
        }
        // a large tensor taken last may leave room: give back to int8 the costliest ones
        // (by loss) that still fit
        let mut taken: Vec<&Tensor> = self.tensors.iter().filter(|t| p.int4.contains(&t.tag)).collect();
        taken.sort_by(|a, b| b.loss.total_cmp(&a.loss));
        for t in taken {
            if size + t.saved() <= budget {
                p.int4.remove(&t.tag);
                size += t.saved();
            }
        }
        Ok((p, size))
    }

    /// The plan as a Markdown table: tensor, precision, bytes, measured loss.
    pub fn table(&self, p: &Precision) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "| tensor | precision | bytes | logit SQNR alone in int4 (dB) | loss (relative logit noise added) |");
        let _ = writeln!(s, "|---|---|---|---|---|");
        for t in &self.tensors {
            let int4 = p.int4.contains(&t.tag);
            let _ = writeln!(s, "| `{}` | {} | {} | {:.2} | {:.2e} |", t.tag, if int4 { "int4" } else { "int8" }, if int4 { t.int4_bytes } else { t.int8_bytes }, t.sqnr_db, t.loss);
        }
        s
    }
}

/// One point of a budget sweep.
#[derive(Debug, Clone)]
pub struct SweepPoint {
    pub budget: usize,
    pub blob: usize,
    pub int4_tensors: usize,
    /// Share of test outputs identical to float's (sentences, continuations, or classes).
    pub identical: f64,
    /// Translators: sacreBLEU against the references.
    pub bleu: Option<f64>,
    pub logit_sqnr_db: f64,
}

/// Flash bytes against identical-to-float share: one line through the sweep's points, each
/// labelled with its BLEU when there is one.
pub fn sweep_svg(points: &[SweepPoint]) -> String {
    let (w, h, l, r, t, b) = (640.0, 360.0, 70.0, 20.0, 30.0, 50.0);
    let xs: Vec<f64> = points.iter().map(|p| p.blob as f64).collect();
    let (x0, x1) = (xs.iter().copied().fold(f64::MAX, f64::min), xs.iter().copied().fold(0.0, f64::max));
    let (x0, x1) = if x1 > x0 { (x0 - 0.05 * (x1 - x0), x1 + 0.05 * (x1 - x0)) } else { (x0 - 1.0, x1 + 1.0) };
    let ys: Vec<f64> = points.iter().map(|p| 100.0 * p.identical).collect();
    let y0 = (ys.iter().copied().fold(100.0, f64::min) / 10.0).floor() * 10.0;
    let (y0, y1) = (y0.min(90.0), 100.0);
    let px = |x: f64| l + (x - x0) / (x1 - x0) * (w - l - r);
    let py = |y: f64| t + (y1 - y) / (y1 - y0) * (h - t - b);
    let mut s = String::new();
    let _ = writeln!(s, r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">"#);
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(s, r#"<text x="{}" y="18" text-anchor="middle" font-size="13">identical to float vs flash (blob bytes)</text>"#, w / 2.0);
    let mut y = y0;
    while y <= y1 + 1e-9 {
        let _ = writeln!(s, r##"<line x1="{l}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{y:.0}%</text>"##, w - r, py(y), py(y), l - 5.0, py(y) + 4.0);
        y += if y1 - y0 > 30.0 { 10.0 } else { 2.0 };
    }
    for p in points {
        let _ = writeln!(s, r#"<text x="{:.1}" y="{}" text-anchor="middle">{:.0} kB</text>"#, px(p.blob as f64), h - b + 16.0, p.blob as f64 / 1000.0);
    }
    let path: Vec<String> = points.iter().map(|p| format!("{:.1},{:.1}", px(p.blob as f64), py(100.0 * p.identical))).collect();
    let _ = writeln!(s, r##"<polyline points="{}" fill="none" stroke="#1f77b4" stroke-width="2"/>"##, path.join(" "));
    for p in points {
        let (cx, cy) = (px(p.blob as f64), py(100.0 * p.identical));
        let label = match p.bleu {
            Some(bl) => format!("{:.1}% · BLEU {bl:.2}", 100.0 * p.identical),
            None => format!("{:.1}%", 100.0 * p.identical),
        };
        let _ = writeln!(s, r##"<circle cx="{cx:.1}" cy="{cy:.1}" r="4" fill="#1f77b4"/><text x="{cx:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##, cy - 8.0);
    }
    let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="middle">blob bytes (flash, without code)</text>"#, (l + w - r) / 2.0, h - 12.0);
    let _ = writeln!(s, "</svg>");
    s
}

/// The sweep as a Markdown table.
pub fn sweep_table(points: &[SweepPoint]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| budget (B) | blob (B) | int4 tensors | identical to float | BLEU | logit SQNR (dB) |");
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for p in points {
        let bleu = p.bleu.map_or("—".into(), |b| format!("{b:.2}"));
        let _ = writeln!(s, "| {} | {} | {} | {:.1}% | {bleu} | {:.2} |", p.budget, p.blob, p.int4_tensors, 100.0 * p.identical, p.logit_sqnr_db);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use picoformer::blob::{Part, Side};

    /// A synthetic measurement: `(tag, int8 bytes, int4 bytes, loss)`; blob padding is 8 bytes.
    fn sens(t: &[(Tag, usize, usize, f64)]) -> Sensitivity {
        let tensors = t.iter().map(|&(tag, int8_bytes, int4_bytes, loss)| Tensor { tag, int8_bytes, int4_bytes, sqnr_db: 30.0, loss }).collect();
        Sensitivity { base_blob: 10_000, base_sqnr_db: 40.0, tensors, inputs: 4 }
    }

    const A: Tag = Tag::Embedding(Side::Source);
    const B: Tag = Tag::Embedding(Side::Target);
    const C: Tag = Tag::Output(Part::Weight);

    #[test]
    fn noise_is_relative_power() {
        assert!((noise(10.0) - 0.1).abs() < 1e-15);
        assert!((noise(30.0) - 0.001).abs() < 1e-15);
        assert_eq!(noise(0.0), 1.0);
    }

    #[test]
    fn saved_bytes_count_each_tensors_padding() {
        let s = sens(&[(A, 1001, 501, 0.0)]);
        // 1001 pads to 1008, 501 to 504
        assert_eq!(s.tensors[0].saved(), 504);
    }

    #[test]
    fn the_plan_takes_the_least_loss_per_byte_and_gives_back_what_still_fits() {
        // A saves 4000 at loss 4 (1e-3 per byte), B 1000 at 2 (2e-3), C 2000 at 1 (5e-4)
        let s = sens(&[(A, 8000, 4000, 4.0), (B, 2000, 1000, 2.0), (C, 4000, 2000, 1.0)]);
        // the int8 blob fits: nothing int4
        let (p, size) = s.plan(10_000).unwrap();
        assert!(p.int4.is_empty());
        assert_eq!(size, 10_000);
        // 1,500 to save: C alone (the cheapest per byte) saves 2,000
        let (p, size) = s.plan(8_500).unwrap();
        assert_eq!(p.int4, HashSet::from([C]));
        assert_eq!(size, 8_000);
        // 2,001 to save: C, then A (4,000 more) overshoots, so C goes back: A alone fits
        let (p, size) = s.plan(7_999).unwrap();
        assert_eq!(p.int4, HashSet::from([A]));
        assert_eq!(size, 6_000);
        // exactly C + A
        let (p, size) = s.plan(4_000).unwrap();
        assert_eq!(p.int4, HashSet::from([A, C]));
        assert_eq!(size, 4_000);
        // everything, and one byte less does not fit
        let (p, size) = s.plan(3_000).unwrap();
        assert_eq!((p.int4.len(), size), (3, 3_000));
        let e = s.plan(2_999).unwrap_err().to_string();
        assert!(e.contains("2999") && e.contains("3000 bytes"), "{e}");
    }

    #[test]
    fn the_give_back_returns_the_costliest_first() {
        // taken by loss per byte: C (1e-4), B (5e-4), then A (1e-3) overshoots by 2,500; of
        // the two that could go back, the costlier (B) does, and then C no longer fits
        let s = sens(&[(A, 8000, 4000, 4.0), (B, 2000, 1000, 0.5), (C, 2000, 1000, 0.1)]);
        let (p, size) = s.plan(5_500).unwrap();
        assert_eq!(p.int4, HashSet::from([A, C]));
        assert_eq!(size, 5_000);
    }

    #[test]
    fn the_table_names_each_tensors_precision_bytes_and_loss() {
        let s = sens(&[(A, 8000, 4000, 4.0), (C, 4000, 2000, 1.5e-3)]);
        let t = s.table(&Precision { int4: HashSet::from([C]) });
        let rows: Vec<&str> = t.lines().collect();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[2], format!("| `{A}` | int8 | 8000 | 30.00 | 4.00e0 |"));
        assert_eq!(rows[3], format!("| `{C}` | int4 | 2000 | 30.00 | 1.50e-3 |"));
    }

    fn point(blob: usize, identical: f64) -> SweepPoint {
        SweepPoint { budget: blob, blob, int4_tensors: 0, identical, bleu: Some(35.0), logit_sqnr_db: 30.0 }
    }

    #[test]
    fn the_sweep_plot_puts_each_point_where_it_belongs() {
        // x: 5% margins on each side of [1000, 2000] over the 550 px between the margins;
        // y: 90..100% (one grid line per 2%) over 280 px
        let s = sweep_svg(&[point(1000, 0.9), point(2000, 0.95)]);
        assert!(s.contains(r#"<circle cx="95.0" cy="310.0""#), "{s}");
        assert!(s.contains(r#"<circle cx="595.0" cy="170.0""#), "{s}");
        assert!(s.contains(r#"points="95.0,310.0 595.0,170.0""#));
        assert_eq!(s.matches(r##"stroke="#ddd""##).count(), 6);
        assert!(s.contains(">90.0% · BLEU 35.00<") && s.contains(">1 kB<") && s.contains(">2 kB<"));
        // a 30-point range takes 2% steps (16 lines), more takes 10% ones
        assert_eq!(sweep_svg(&[point(1000, 0.75), point(2000, 0.8)]).matches(r##"stroke="#ddd""##).count(), 16);
        assert_eq!(sweep_svg(&[point(1000, 0.65), point(2000, 0.8)]).matches(r##"stroke="#ddd""##).count(), 5);
        // one point: a 2-byte-wide axis around it, the point in the middle
        let s = sweep_svg(&[SweepPoint { bleu: None, ..point(1000, 0.9) }]);
        assert!(s.contains(r#"<circle cx="345.0" cy="310.0""#) && s.contains(">90.0%<"), "{s}");
    }

    #[test]
    fn the_sweep_table_has_a_row_per_point() {
        let t = sweep_table(&[SweepPoint { bleu: None, ..point(1000, 0.9) }, point(2000, 0.955)]);
        let rows: Vec<&str> = t.lines().collect();
        assert_eq!(rows[2], "| 1000 | 1000 | 0 | 90.0% | — | 30.00 |");
        assert_eq!(rows[3], "| 2000 | 2000 | 0 | 95.5% | 35.00 | 30.00 |");
    }
}
