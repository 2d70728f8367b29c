//! Activation clipping (DESIGN §3): the scale of an `i8` site (Q, K, V) need not be its
//! calibrated max |x|. Clipping the rare large values buys finer steps for the rest. Per site,
//! [`mse_clip`] picks the clip point that minimises the quantize-dequantize error of the site's
//! calibration values. [`Tuner`] then measures what the whole int8 model loses against float
//! (teacher-forced outputs on tuning inputs, with the host simulator) and keeps, site by site,
//! the clip point that loses least.
//!
//! A clip point only replaces a site's range in [`Ranges`]: every scale, requantizer and table
//! that depends on it (the softmax multiplier of Q·K, the context requant of V) is then derived
//! by [`quantize`] as for max |x|, so the blob stays consistent.

use std::collections::HashMap;

use anyhow::{anyhow, bail, Result};
use picoformer::blob::{HeadKind, ModelKind};
use picoformer::observe::{Data, NoObserver, Observer, Site};
use picoformer::reference::{FSource, FloatModel};
use picoformer::tokenizer::Tokenizer;
use picoformer::{Model, TokenId};

use crate::calibrate::{text_ids, CalibData, Ranges};
use crate::host::{progress_bar, quantize_window, source_ids, AlignedBuf, Clf, Float, Int8, Lm};
use crate::quantize::{quantize, site_qmax, FeatureScales, Quantized, WeightRule};
use crate::spm::VocabTables;

/// How `convert` picks the activation scales.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ScaleRule {
    /// Every site's calibrated max |x| (no clipping). The default: neither clipping rule
    /// moved de-en beyond noise (models/de-en/README.md), and clipping Q and K can cost a
    /// model with peaked attention much more (`tools/tests/variants.rs`).
    #[default]
    Max,
    /// The `i8` sites clipped where their own quantization error is least ([`mse_clip`]).
    Mse,
    /// From [`ScaleRule::Mse`], each `i8` site's clip point searched by the model's output loss
    /// ([`Tuner::search`]), at 2-7× the convert time.
    Search,
}

impl std::str::FromStr for ScaleRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "max" => Ok(ScaleRule::Max),
            "mse" => Ok(ScaleRule::Mse),
            "search" => Ok(ScaleRule::Search),
            _ => Err(format!("{s:?}: expected max, mse or search")),
        }
    }
}

/// Values of a site [`mse_clip`] looks at, at most (evenly strided).
const MSE_SAMPLES: usize = 1 << 18;

/// The clip point in `(0, max]` (a percent of `max`, 25..=100) whose symmetric quantization to
/// `±qmax` steps has the least squared error over `|x|` values `samples`.
pub fn mse_clip(samples: &[f32], max: f32, qmax: f32) -> f32 {
    let stride = (samples.len() / MSE_SAMPLES).max(1);
    let xs: Vec<f64> = samples.iter().step_by(stride).map(|&x| x as f64).collect();
    let mut best = (f64::MAX, max);
    for pct in (25..=100).rev() {
        let c = (max * pct as f32 / 100.0) as f64;
        let s = c / qmax as f64;
        let e: f64 = xs
            .iter()
            .map(|&x| {
                let d = if x >= c { x - c } else { x - (x / s).round() * s };
                d * d
            })
            .sum();
        if e < best.0 {
            best = (e, c as f32);
        }
    }
    best.1
}

/// The `i8` sites, in model order.
pub fn clipped_sites(r: &Ranges) -> Vec<Site> {
    let mut v: Vec<Site> = r.max.keys().copied().filter(|&s| site_qmax(s) == 127.0).collect();
    v.sort();
    v
}

/// `r` with every `i8` site clipped at its [`mse_clip`] point.
pub fn mse_ranges(r: &Ranges) -> Ranges {
    let mut out = Ranges { max: r.max.clone(), samples: HashMap::new(), grams: r.grams.clone() };
    for site in clipped_sites(r) {
        if let (Some(&m), Some(s)) = (r.max.get(&site), r.samples.get(&site)) {
            out.max.insert(site, mse_clip(s, m, site_qmax(site)));
        }
    }
    out
}

/// What the int8 model loses against float on the tuning inputs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Loss {
    /// Σ over outputs of KL(float ‖ int8) of the softmax (classification and token outputs), or
    /// of the squared error relative to the float outputs' mean square (regression).
    pub kl: f64,
    /// Outputs whose argmax differs from float's.
    pub flips: usize,
    pub outputs: usize,
}

impl Loss {
    /// What the search minimises: the share of outputs whose argmax flipped, plus the mean KL
    /// (nats) that breaks ties between equal flip counts. (On de-en's held-out training
    /// sentences KL alone did no better than the MSE points; with the flips, 4 sentences more
    /// were identical to float, within noise.)
    pub fn score(&self) -> f64 {
        let n = self.outputs.max(1) as f64;
        (self.flips as f64 + self.kl) / n
    }
}

/// One tuning input, with what the int8 model is fed.
enum Case {
    /// Encoder-decoder: source ids and the float model's greedy output (teacher-forced).
    Pair(Vec<TokenId>, Vec<TokenId>),
    /// Decoder-only: a text's ids, bos first and eos last (teacher-forced).
    Seq(Vec<TokenId>),
    /// Encoder-only: token ids or a feature window.
    Tokens(Vec<TokenId>),
    Window(Vec<f32>),
}

/// The float model's output at one position: log-softmax (or raw values for regression) and
/// argmax.
struct Reference {
    values: Vec<f64>,
    argmax: usize,
}

impl Reference {
    fn new(v: &[f32], regression: bool) -> Reference {
        let it = v.iter().map(|&x| x as f64);
        Reference { argmax: argmax(it.clone()), values: if regression { it.collect() } else { log_softmax(it) } }
    }

    /// An int8 output `q` (dequantized) against this one: KL(float ‖ int8) of the softmax, or
    /// (regression) the squared error relative to the float outputs' sum of squares.
    fn loss(&self, q: &[f64], regression: bool) -> f64 {
        if regression {
            let ms = self.values.iter().map(|x| x * x).sum::<f64>().max(1e-30);
            q.iter().zip(&self.values).map(|(a, b)| (a - b) * (a - b)).sum::<f64>() / ms
        } else {
            log_softmax(q.iter().copied()).iter().zip(&self.values).map(|(lq, lp)| lp.exp() * (lp - lq)).sum()
        }
    }
}

/// Collects the float model's logits.
#[derive(Default)]
struct Logits(Vec<Vec<f32>>);

impl Observer for Logits {
    fn observe(&mut self, site: Site, data: Data<'_>) {
        if let (Site::Logits, Data::F32(v)) = (site, data) {
            self.0.push(v.to_vec());
        }
    }
}

fn argmax(v: impl Iterator<Item = f64>) -> usize {
    v.enumerate().fold((0, f64::MIN), |b, (i, x)| if x > b.1 { (i, x) } else { b }).0
}

fn log_softmax(v: impl Iterator<Item = f64> + Clone) -> Vec<f64> {
    let m = v.clone().fold(f64::MIN, f64::max);
    let lse = m + v.clone().map(|x| (x - m).exp()).sum::<f64>().ln();
    v.map(|x| x - lse).collect()
}

/// Measures the int8 model's loss for given ranges on fixed tuning inputs.
pub struct Tuner<'a> {
    fm: &'a FloatModel<'a>,
    vocab: Option<&'a VocabTables>,
    features: Option<&'a FeatureScales>,
    weights: WeightRule,
    cases: Vec<Case>,
    reference: Vec<Reference>,
    regression: bool,
}

impl<'a> Tuner<'a> {
    /// Tuning inputs: the first `n` of `data`, with the float model's outputs on them; the
    /// weights are quantized by `weights`.
    pub fn new(fm: &'a FloatModel<'a>, tok: Option<&Tokenizer<'_>>, vocab: Option<&'a VocabTables>, features: Option<&'a FeatureScales>, weights: WeightRule, data: &CalibData, n: usize) -> Result<Tuner<'a>> {
        let c = fm.config;
        let mut fl = Float::new(fm)?;
        let mut cases = Vec::new();
        let mut raw: Vec<Vec<f32>> = Vec::new();
        let need_tok = || tok.ok_or_else(|| anyhow!("a tokenizer is needed for text"));
        match data {
            CalibData::Pairs(p) => {
                for s in p.src.iter().take(n) {
                    let src = source_ids(need_tok()?, s, c.max_len)?;
                    let out = fl.greedy(&src)?;
                    let mut obs = Logits::default();
                    let mut st = fl.state()?;
                    fm.encode(&src, &mut st, &mut NoObserver)?;
                    let mut last = c.bos;
                    for (pos, &t) in out.iter().enumerate() {
                        fm.decode_step(last, pos, &mut st, &mut obs)?;
                        last = t;
                    }
                    raw.extend(obs.0);
                    cases.push(Case::Pair(src, out));
                }
            }
            CalibData::Texts(texts) => {
                for t in texts.iter().take(n) {
                    let mut st = fl.state()?;
                    if c.kind == ModelKind::DecoderOnly {
                        let ids = text_ids(need_tok()?, t, c.max_len, true)?;
                        if ids.len() < 3 {
                            continue;
                        }
                        let mut obs = Logits::default();
                        for (pos, &id) in ids.iter().enumerate().take(ids.len() - 1) {
                            fm.decode_step(id, pos, &mut st, &mut obs)?;
                        }
                        // the int8 side starts from a one-token prompt: its first logits follow ids[1]
                        raw.extend(obs.0.into_iter().skip(1));
                        cases.push(Case::Seq(ids));
                    } else {
                        let ids = text_ids(need_tok()?, t, c.max_len, false)?;
                        raw.push(fm.classify(FSource::Tokens(&ids), &mut st, &mut NoObserver)?.to_vec());
                        cases.push(Case::Tokens(ids));
                    }
                }
            }
            CalibData::Windows(ws) => {
                for w in ws.iter().take(n) {
                    raw.push(fl.classify(FSource::Features(w))?);
                    cases.push(Case::Window(w.clone()));
                }
            }
        }
        let regression = c.kind == ModelKind::EncoderOnly && c.head == HeadKind::Regression;
        let reference = raw.iter().map(|v| Reference::new(v, regression)).collect();
        Ok(Tuner { fm, vocab, features, weights, cases, reference, regression })
    }

    /// Quantize with `ranges` and measure the int8 model against the float outputs.
    pub fn loss(&self, ranges: &Ranges) -> Result<Loss> {
        let q = quantize(self.fm, ranges, self.weights, self.vocab, self.features)?;
        self.loss_of(&q)
    }

    /// Measure quantized model `q` against the float outputs.
    pub fn loss_of(&self, q: &Quantized) -> Result<Loss> {
        let c = self.fm.config;
        let blob = AlignedBuf::from_bytes(&q.blob(&c)?);
        let model = Model::parse(blob.bytes()).map_err(|e| anyhow!("the tuned blob does not parse: {e}"))?;
        let sl = q.scales.get(Site::Logits)?;
        let mut outs: Vec<Vec<i32>> = Vec::with_capacity(self.reference.len());
        match c.kind {
            ModelKind::EncoderDecoder => {
                let mut i8s = Int8::new(&model, 1);
                for case in &self.cases {
                    let Case::Pair(src, out) = case else { bail!("internal: tuning case") };
                    let mut t = i8s.session()?;
                    t.encode(src)?;
                    let mut last = c.bos;
                    for &tok in out {
                        outs.push(t.force_observed(last, &mut NoObserver)?.to_vec());
                        last = tok;
                    }
                }
            }
            ModelKind::DecoderOnly => {
                let mut lm = Lm::new(&model, 1);
                for case in &self.cases {
                    let Case::Seq(ids) = case else { bail!("internal: tuning case") };
                    let mut g = lm.session()?;
                    g.prompt(&ids[..1])?;
                    for &t in &ids[1..ids.len() - 1] {
                        outs.push(g.force_observed(t, &mut NoObserver)?.to_vec());
                    }
                }
            }
            ModelKind::EncoderOnly => {
                let mut clf = Clf::new(&model);
                for case in &self.cases {
                    let o = match case {
                        Case::Tokens(ids) => clf.session()?.run_observed(Some(ids), None, &mut NoObserver)?.to_vec(),
                        Case::Window(w) => {
                            let frames = quantize_window(&model, w);
                            clf.session()?.run_observed(None, Some(&frames), &mut NoObserver)?.to_vec()
                        }
                        _ => bail!("internal: tuning case"),
                    };
                    outs.push(o);
                }
            }
        }
        if outs.len() != self.reference.len() {
            bail!("internal: {} int8 outputs for {} float outputs", outs.len(), self.reference.len());
        }
        let mut loss = Loss { outputs: outs.len(), ..Loss::default() };
        for (q, r) in outs.iter().zip(&self.reference) {
            let q: Vec<f64> = q.iter().map(|&x| x as f64 * sl).collect();
            loss.flips += (argmax(q.iter().copied()) != r.argmax) as usize;
            loss.kl += r.loss(&q, self.regression);
        }
        Ok(loss)
    }

    /// From `start` (the [`mse_ranges`]), each `i8` site in model order tries the clip points
    /// [`FRACTIONS`] of its max |x| in `full`, the others held, and keeps the one of least
    /// [`Loss::score`] (its start point unless another is strictly better): one pass, `7 × sites`
    /// evaluations. Returns the ranges, and the loss before and after.
    pub fn search(&self, full: &Ranges, start: &Ranges) -> Result<(Ranges, Loss, Loss)> {
        let mut cur = start.clone();
        let first = self.loss(&cur)?;
        let mut best = first;
        let sites = clipped_sites(full);
        let pb = progress_bar(sites.len(), "clip search");
        for site in sites {
            let max = full.max.get(&site).copied().unwrap_or(0.0);
            let mut now = cur.max.get(&site).copied().unwrap_or(max);
            for f in FRACTIONS {
                let c = max * f;
                if (c - now).abs() <= 1e-3 * max {
                    continue;
                }
                cur.max.insert(site, c);
                let l = self.loss(&cur)?;
                if l.score() < best.score() {
                    (best, now) = (l, c);
                } else {
                    cur.max.insert(site, now);
                }
            }
            pb.inc(1);
        }
        pb.finish();
        Ok((cur, first, best))
    }
}

/// Clip fractions of max |x| the search tries at each site.
pub const FRACTIONS: [f32; 7] = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4];


#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantize::mse_row_clip;

    /// Squared error of quantizing `xs` (|x| values) with clip `c` to `qmax` steps.
    fn err(xs: &[f32], c: f32, qmax: f32) -> f64 {
        let s = c as f64 / qmax as f64;
        xs.iter().map(|&x| (x as f64 - ((x as f64 / s).round().min(qmax as f64)) * s).powi(2)).sum()
    }

    #[test]
    fn mse_clip_cuts_a_long_tail_and_keeps_a_flat_range() {
        // exponentially distributed |x| (100,000 quantiles, max 12.2): the best 8-bit clip is
        // at 80% of the max (checked in numpy), with 25% less error than the max
        let xs: Vec<f32> = (0..100_000).map(|i| -((i as f64 + 0.5) / 100_000.0).ln() as f32).collect();
        let max = xs.iter().fold(0f32, |m, &x| m.max(x));
        let c = mse_clip(&xs, max, 127.0);
        assert!((0.78 * max..=0.82 * max).contains(&c), "clip {c} of {max}");
        assert!(err(&xs, c, 127.0) < 0.8 * err(&xs, max, 127.0));
        // values all at the max are best not clipped, nor is a uniform range
        assert_eq!(mse_clip(&[1.0; 100], 1.0, 127.0), 1.0);
        let u: Vec<f32> = (0..=1000).map(|i| i as f32 / 1000.0).collect();
        assert!(mse_clip(&u, 1.0, 127.0) >= 0.98);
        // with 32767 steps the tail is worth keeping
        assert!(mse_clip(&xs, max, 32767.0) > 0.95 * max);
    }

    #[test]
    fn a_weight_rows_clip_never_costs_more_than_its_max() {
        for seed in 0..20u32 {
            let row: Vec<f32> = (0..128u32).map(|i| ((i.wrapping_mul(2654435761) ^ seed.wrapping_mul(40503)) % 2001) as f32 / 1000.0 - 1.0).collect();
            let max = row.iter().fold(0f32, |m, x| m.max(x.abs())) as f64;
            let c = mse_row_clip(&row, max);
            assert!((0.5 * max..=max).contains(&c));
            let abs: Vec<f32> = row.iter().map(|x| x.abs()).collect();
            assert!(err(&abs, c as f32, 127.0) <= err(&abs, max as f32, 127.0) + 1e-12);
        }
        assert_eq!(mse_row_clip(&[0.5, -0.5, 0.5], 0.5), 0.5);
    }

    #[test]
    fn the_loss_is_kl_or_relative_squared_error_and_the_score_adds_flips() {
        let ls = log_softmax([0.0, 2f64.ln()].into_iter());
        assert!((ls[0] - (1.0f64 / 3.0).ln()).abs() < 1e-12 && (ls[1] - (2.0f64 / 3.0).ln()).abs() < 1e-12);
        // float softmax (1/3, 2/3), int8 (1/2, 1/2): KL = 1/3 ln(2/3) + 2/3 ln(4/3)
        let r = Reference::new(&[0.0, 2f32.ln()], false);
        assert_eq!(r.argmax, 1);
        let kl = (1.0f64 / 3.0) * (2.0f64 / 3.0).ln() + (2.0f64 / 3.0) * (4.0f64 / 3.0).ln();
        assert!((r.loss(&[5.0, 5.0], false) - kl).abs() < 1e-6, "{}", r.loss(&[5.0, 5.0], false));
        assert!(r.loss(&[1.0, 1.0 + 2f64.ln()], false).abs() < 1e-6);
        // regression: Σ (q − f)² / Σ f²
        let r = Reference::new(&[3.0, -4.0], true);
        assert_eq!(r.argmax, 0);
        assert!((r.loss(&[3.0, -2.0], true) - 4.0 / 25.0).abs() < 1e-12);
        assert!((r.loss(&[1.0, -4.0], true) - 4.0 / 25.0).abs() < 1e-12);
        assert_eq!(argmax([1.0, 3.0, 3.0, 2.0].into_iter()), 1);
        assert_eq!(Loss { kl: 0.5, flips: 3, outputs: 10 }.score(), 0.35);
        assert_eq!(Loss::default().score(), 0.0);
    }

    #[test]
    fn rules_parse() {
        assert_eq!("max".parse::<ScaleRule>(), Ok(ScaleRule::Max));
        assert_eq!("mse".parse::<ScaleRule>(), Ok(ScaleRule::Mse));
        assert_eq!("search".parse::<ScaleRule>(), Ok(ScaleRule::Search));
        assert!("clip".parse::<ScaleRule>().is_err());
        assert_eq!(ScaleRule::default(), ScaleRule::Max);
        assert_eq!("mse".parse::<WeightRule>(), Ok(WeightRule::Mse));
        assert_eq!(WeightRule::default(), WeightRule::Max);
    }
}
