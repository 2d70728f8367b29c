//! The int8 model against the float model (DESIGN §5.3): per-site error, agreement of greedy
//! output and BLEU on a test set. `convert` reports them; `picoformer eval` prints them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use picoformer::blob::ModelKind;
use picoformer::observe::{Data, NoObserver, Observer, Site};
use picoformer::reference::{FSource, FloatModel};
use picoformer::tokenizer::Tokenizer;
use picoformer::{Model, TokenId};

use crate::bleu::{corpus_bleu, Bleu};
use crate::export::Export;
use crate::calibrate::{text_ids, Window};
use crate::host::{read_aligned, detok, detok_after, primed, progress_bar, quantize_window, source_ids, translate_batch, Clf, Float, Int8, Lm, SentencePairs};
use crate::vectors::{Inputs, MAX_NEW};
use crate::quantize::Scales;

/// Collects int8 values dequantized, or f32 values, per site, in order.
#[derive(Default)]
pub struct Collect<'s> {
    pub scales: Option<&'s Scales>,
    pub data: HashMap<Site, Vec<f32>>,
}

impl Observer for Collect<'_> {
    fn observe(&mut self, site: Site, data: Data<'_>) {
        let s = self.scales.and_then(|sc| sc.s.get(&site).copied()).unwrap_or(1.0) as f32;
        let v = self.data.entry(site).or_default();
        match data {
            Data::I8(x) => v.extend(x.iter().map(|&q| q as f32 * s)),
            Data::I16(x) => v.extend(x.iter().map(|&q| q as f32 * s)),
            Data::I32(x) => v.extend(x.iter().map(|&q| q as f32 * s)),
            Data::F32(x) => v.extend_from_slice(x),
            _ => {}
        }
    }
}

/// Per-site error of int8 against f32.
#[derive(Debug, Clone)]
pub struct SiteError {
    pub site: Site,
    pub sqnr_db: f64,
    pub cosine: f64,
    pub values: usize,
}

/// Running sums of one site's float values `a` and int8 values `b`.
#[derive(Default)]
struct ErrorSums {
    aa: f64,
    ee: f64,
    ab: f64,
    bb: f64,
    n: usize,
}

impl ErrorSums {
    fn add(&mut self, f: &[f32], q: &[f32]) {
        for (&a, &b) in f.iter().zip(q) {
            let (a, b) = (a as f64, b as f64);
            self.aa += a * a;
            self.ee += (a - b) * (a - b);
            self.ab += a * b;
            self.bb += b * b;
            self.n += 1;
        }
    }

    fn error(&self, site: Site) -> SiteError {
        SiteError {
            site,
            sqnr_db: 10.0 * (self.aa / self.ee.max(1e-30)).log10(),
            cosine: self.ab / (self.aa.sqrt() * self.bb.sqrt()).max(1e-30),
            values: self.n,
        }
    }
}

/// Teacher-force both models on the float model's own output for each input (the greedy
/// translation or continuation), or classify it, and compare every site.
pub fn layer_errors(model: &Model<'_>, fm: &FloatModel<'_>, scales: &Scales, inputs: Inputs<'_>) -> Result<Vec<SiteError>> {
    let mut acc: HashMap<Site, ErrorSums> = HashMap::new();
    let mut fl = Float::new(fm)?;
    let c = *model.config();
    let mut compare = |fobs: Collect<'_>, qobs: Collect<'_>| {
        for (site, f) in &fobs.data {
            let Some(q) = qobs.data.get(site) else { continue };
            acc.entry(*site).or_default().add(f, q);
        }
    };
    match (c.kind, inputs) {
        (ModelKind::EncoderDecoder, Inputs::Texts(texts)) => {
            let mut i8s = Int8::new(model, 1);
            for text in texts {
                let src = source_ids(model.tokenizer(), text, c.max_len)?;
                let out = fl.greedy(&src)?;
                let mut fobs = Collect::default();
                let mut st = fl.state()?;
                fm.encode(&src, &mut st, &mut fobs)?;
                let mut last = c.bos;
                for (pos, &t) in out.iter().enumerate() {
                    fm.decode_step(last, pos, &mut st, &mut fobs)?;
                    last = t;
                }
                let mut qobs = Collect { scales: Some(scales), data: HashMap::new() };
                let mut sess = i8s.session()?;
                sess.encode_observed(&src, &mut qobs)?;
                let mut last = c.bos;
                for &t in &out {
                    sess.force_observed(last, &mut qobs)?;
                    last = t;
                }
                compare(fobs, qobs);
            }
        }
        (ModelKind::DecoderOnly, Inputs::Texts(texts)) => {
            let mut lm = Lm::new(model, 1);
            for text in texts {
                let prompt = text_ids(model.tokenizer(), text, c.max_len - 1, false)?;
                let cont = fl.generate(&prompt, MAX_NEW)?;
                // every position of prompt + continuation but the last, one at a time
                let seq: Vec<TokenId> = prompt.iter().chain(&cont).copied().take(c.max_len).collect();
                let fed = &seq[..seq.len() - 1];
                let mut fobs = Collect::default();
                let mut st = fl.state()?;
                for (pos, &t) in fed.iter().enumerate() {
                    fm.decode_step(t, pos, &mut st, &mut fobs)?;
                }
                let mut qobs = Collect { scales: Some(scales), data: HashMap::new() };
                let mut g = lm.session()?;
                g.prompt_observed(&fed[..1], &mut qobs)?;
                for &t in &fed[1..] {
                    g.force_observed(t, &mut qobs)?;
                }
                compare(fobs, qobs);
            }
        }
        (ModelKind::EncoderOnly, inputs) => {
            let mut clf = Clf::new(model);
            let run = |src: FSource<'_>, ids: Option<&[u16]>, frames: Option<&[i16]>, fl: &mut Float<'_>, clf: &mut Clf<'_>| -> Result<(Collect<'static>, Collect<'_>)> {
                let mut fobs = Collect::default();
                let mut st = fl.state()?;
                fm.classify(src, &mut st, &mut fobs)?;
                let mut qobs = Collect { scales: Some(scales), data: HashMap::new() };
                clf.session()?.run_observed(ids, frames, &mut qobs)?;
                Ok((fobs, qobs))
            };
            match inputs {
                Inputs::Texts(texts) => {
                    for text in texts {
                        let ids = text_ids(model.tokenizer(), text, c.max_len, false)?;
                        let (f, q) = run(FSource::Tokens(&ids), Some(&ids), None, &mut fl, &mut clf)?;
                        compare(f, q);
                    }
                }
                Inputs::Windows(ws) => {
                    for w in ws {
                        let frames = quantize_window(model, w);
                        let (f, q) = run(FSource::Features(w), None, Some(&frames), &mut fl, &mut clf)?;
                        compare(f, q);
                    }
                }
            }
        }
        _ => anyhow::bail!("inputs of the wrong kind for this model"),
    }
    let mut out: Vec<SiteError> = acc.iter().map(|(&site, sums)| sums.error(site)).collect();
    out.sort_by_key(|e| e.site);
    Ok(out)
}

/// A language model's quality against its float model on a test set.
pub struct LmQuality {
    /// Per-token perplexity (every predicted token, eos included, bos first) of both models.
    pub ppl_float: f64,
    pub ppl_int8: f64,
    pub tokens: usize,
    pub texts: usize,
    /// Greedy continuations of the prompts identical to float's.
    pub prompts: usize,
    pub identical: usize,
    pub int8_continuations: Vec<String>,
    pub seconds_int8: f64,
}

/// `ln p(t)` of token `t` under logits `l` in units of `scale`.
fn log_prob(l: impl Iterator<Item = f64> + Clone, t: usize) -> f64 {
    let m = l.clone().fold(f64::MIN, f64::max);
    let lse = m + l.clone().map(|x| (x - m).exp()).sum::<f64>().ln();
    l.clone().nth(t).unwrap_or(m) - lse
}

/// Perplexity of both models on `texts` (teacher-forced), and greedy agreement on `prompts`.
pub fn lm_quality(model: &Model<'_>, fm: &FloatModel<'_>, texts: &[String], prompts: &[String]) -> Result<LmQuality> {
    let c = *model.config();
    let tok = model.tokenizer();
    // the real value of one logit unit
    let s_logit = model.output_scale().to_real() / (std::f64::consts::LOG2_E * 1024.0);
    let mut fl = Float::new(fm)?;
    let mut lm = Lm::new(model, 1);
    let (mut nll_f, mut nll_q, mut tokens) = (0f64, 0f64, 0usize);
    let pb = progress_bar(texts.len() + prompts.len(), "perplexity");
    let t0 = Instant::now();
    for text in texts {
        let ids = text_ids(tok, text, c.max_len, true)?;
        let mut st = fl.state()?;
        let mut g = lm.session()?;
        g.prompt(&ids[..1])?;
        for (pos, w) in ids.windows(2).enumerate() {
            fm.decode_step(w[0], pos, &mut st, &mut NoObserver)?;
            let t = w[1] as usize;
            nll_f -= log_prob(st.logits().iter().map(|&x| x as f64), t);
            if pos > 0 {
                g.force_observed(w[0], &mut NoObserver)?;
            }
            nll_q -= log_prob(g.logits().iter().map(|&x| x as f64 * s_logit), t);
            tokens += 1;
        }
        pb.inc(1);
    }
    let mut identical = 0;
    let mut int8_continuations = Vec::new();
    for p in prompts {
        let ids = text_ids(tok, p, c.max_len - 1, false)?;
        let q = lm.generate(&ids, MAX_NEW)?;
        let f = fl.generate(&ids, MAX_NEW)?;
        identical += (q == f) as usize;
        int8_continuations.push(format!("{p}{}", detok_after(tok, &mut primed(tok, &ids)?, &q)?));
        pb.inc(1);
    }
    pb.finish();
    let n = tokens.max(1) as f64;
    Ok(LmQuality {
        ppl_float: (nll_f / n).exp(),
        ppl_int8: (nll_q / n).exp(),
        tokens,
        texts: texts.len(),
        prompts: prompts.len(),
        identical,
        int8_continuations,
        seconds_int8: t0.elapsed().as_secs_f64(),
    })
}

/// A classifier's quality against its float model on a labelled test set.
pub struct ClfQuality {
    pub windows: usize,
    pub correct_float: usize,
    pub correct_int8: usize,
    /// Windows where int8 predicts the float model's class.
    pub agree: usize,
    /// Regression: mean |Δ| of int8's outputs against float's, in real units.
    pub mean_abs_diff: f64,
    pub int8_predictions: Vec<usize>,
}

/// Classify every window (or text) with both models.
pub fn clf_quality(model: &Model<'_>, fm: &FloatModel<'_>, inputs: Inputs<'_>, labels: &[usize]) -> Result<ClfQuality> {
    let c = *model.config();
    let unit = model.output_scale().to_real();
    let mut fl = Float::new(fm)?;
    let mut clf = Clf::new(model);
    let mut q = ClfQuality { windows: 0, correct_float: 0, correct_int8: 0, agree: 0, mean_abs_diff: 0.0, int8_predictions: Vec::new() };
    let items: Vec<(Vec<u16>, Window)> = match inputs {
        Inputs::Texts(t) => t.iter().map(|t| Ok((text_ids(model.tokenizer(), t, c.max_len, false)?, Vec::new()))).collect::<Result<_>>()?,
        Inputs::Windows(w) => w.iter().map(|w| (Vec::new(), w.clone())).collect(),
    };
    let pb = progress_bar(items.len(), "classify");
    for (i, (ids, w)) in items.iter().enumerate() {
        let f = if ids.is_empty() { fl.classify(FSource::Features(w))? } else { fl.classify(FSource::Tokens(ids))? };
        let frames = quantize_window(model, w);
        let out = {
            let mut k = clf.session()?;
            if ids.is_empty() { k.classify_features(&frames)?.to_vec() } else { k.classify_tokens(ids)?.to_vec() }
        };
        let fc = f.iter().enumerate().fold(0, |b, (j, &v)| if v > f[b] { j } else { b });
        let qc = picoformer::argmax(&out);
        q.windows += 1;
        q.agree += (fc == qc) as usize;
        if let Some(&l) = labels.get(i) {
            q.correct_float += (fc == l) as usize;
            q.correct_int8 += (qc == l) as usize;
        }
        q.mean_abs_diff += f.iter().zip(&out).map(|(&a, &b)| (a as f64 - b as f64 * unit).abs()).sum::<f64>() / f.len().max(1) as f64;
        q.int8_predictions.push(qc);
        pb.inc(1);
    }
    pb.finish();
    q.mean_abs_diff /= q.windows.max(1) as f64;
    Ok(q)
}

/// Agreement and BLEU of int8 against float over a test set.
pub struct Agreement {
    pub sentences: usize,
    pub identical: usize,
    pub prefix_tokens: usize,
    pub float_tokens: usize,
    pub bleu_int8: Bleu,
    pub bleu_float: Bleu,
    pub int8_hyps: Vec<String>,
    pub float_hyps: Vec<String>,
    pub seconds_int8: f64,
    pub seconds_float: f64,
    /// The int8 pass's time on the CPU (Linux; `None` elsewhere): on a shared machine the
    /// wall time also counts the other jobs' turns.
    pub cpu_seconds_int8: Option<f64>,
}

/// This thread's time on the CPU so far, from `/proc/thread-self/schedstat` (Linux: its first
/// field, nanoseconds).
fn thread_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(s.split_whitespace().next()?.parse::<u64>().ok()? as f64 * 1e-9)
}

/// Sentences the converter's report decodes together (the same output as one at a time).
pub const REPORT_BATCH: usize = 32;

/// Translate `src` with both models (greedy) and score against `refs`; the int8 model one
/// sentence at a time (`batch` 1, [`picoformer::Translator`]) or `batch` together
/// ([`picoformer::Batch`], the same ids).
pub fn agreement(model: &Model<'_>, fm: &FloatModel<'_>, tok: &Tokenizer<'_>, src: &[String], refs: &[String], batch: usize) -> Result<Agreement> {
    let c = *model.config();
    let ids: Vec<Vec<TokenId>> = src.iter().map(|s| source_ids(tok, s, c.max_len)).collect::<Result<_>>()?;
    let pb = progress_bar(ids.len(), "int8");
    let (t0, c0) = (Instant::now(), thread_cpu_seconds());
    let qout = if batch <= 1 {
        let mut q = Int8::new(model, 1);
        let mut qout = Vec::new();
        for s in &ids {
            qout.push(q.translate_ids(s, 1)?);
            pb.inc(1);
        }
        qout
    } else {
        translate_batch(model, &ids, batch, |n| pb.set_position(n as u64))?
    };
    pb.finish();
    let seconds_int8 = t0.elapsed().as_secs_f64();
    let cpu_seconds_int8 = c0.zip(thread_cpu_seconds()).map(|(a, b)| b - a);
    let pb = progress_bar(ids.len(), "float");
    let t0 = Instant::now();
    let mut fl = Float::new(fm)?;
    let mut fout = Vec::new();
    for s in &ids {
        fout.push(fl.greedy(s)?);
        pb.inc(1);
    }
    pb.finish();
    let seconds_float = t0.elapsed().as_secs_f64();
    let mut identical = 0;
    let mut prefix_tokens = 0;
    let mut float_tokens = 0;
    for (a, b) in qout.iter().zip(&fout) {
        identical += (a == b) as usize;
        prefix_tokens += a.iter().zip(b).take_while(|(x, y)| x == y).count();
        float_tokens += b.len();
    }
    let int8_hyps: Vec<String> = qout.iter().map(|o| detok(tok, o)).collect::<Result<_>>()?;
    let float_hyps: Vec<String> = fout.iter().map(|o| detok(tok, o)).collect::<Result<_>>()?;
    Ok(Agreement {
        sentences: ids.len(),
        identical,
        prefix_tokens,
        float_tokens,
        bleu_int8: corpus_bleu(&int8_hyps, refs),
        bleu_float: corpus_bleu(&float_hyps, refs),
        int8_hyps,
        float_hyps,
        seconds_int8,
        seconds_float,
        cpu_seconds_int8,
    })
}

/// How the int8 model compares with the float model on a test set, by kind.
pub enum Quality {
    Translation(Agreement),
    Language(LmQuality),
    /// With the number of labelled windows.
    Classification(ClfQuality, usize),
}

/// What `picoformer eval` compares.
pub struct EvalOpts {
    /// The int8 blob.
    pub model: PathBuf,
    /// The float export it was converted from.
    pub export: PathBuf,
    /// Translator: sources and references.
    pub src: Option<PathBuf>,
    pub reference: Option<PathBuf>,
    /// Language models and classifiers: texts, or a CSV of windows.
    pub test: Option<PathBuf>,
    /// Classifiers: one class index per window.
    pub labels: Option<PathBuf>,
    /// Language models: prompts for the greedy agreement.
    pub prompts: Option<PathBuf>,
    /// Translator: where to write the int8 hypotheses, if anywhere.
    pub hyps: Option<PathBuf>,
    /// Translator: sentences the int8 model decodes together (1: one at a time).
    pub batch: usize,
}

/// `picoformer eval`: the metric of the model's kind (BLEU, perplexity or accuracy) for both
/// models, their agreement and their speed, on stdout.
pub fn run(o: &EvalOpts) -> Result<()> {
    let blob = read_aligned(&o.model)?;
    let model = Model::parse(blob.bytes()).map_err(|e| anyhow!("{}: {e}", o.model.display()))?;
    let ex = Export::load(&o.export)?;
    let fm = ex.float_model();
    let c = *model.config();
    // a flag's file, or the file of that name beside the model (as `convert` finds them)
    let dir = o.model.parent().unwrap_or(std::path::Path::new("."));
    let beside = |p: &Option<PathBuf>, name: &str| p.clone().or_else(|| Some(dir.join(name)).filter(|p| p.exists()));
    let need = |p: &Option<PathBuf>, flag: &str, name: &str| {
        beside(p, name).ok_or_else(|| anyhow!("the {} model's eval needs {flag} (or {} beside the model)", crate::convert::kind_name(&c), dir.join(name).display()))
    };
    match c.kind {
        ModelKind::EncoderDecoder => {
            let test = SentencePairs::read(&need(&o.src, "--src", "test2016.de")?, &need(&o.reference, "--ref", "test2016.en")?, usize::MAX)?;
            let a = agreement(&model, &fm, model.tokenizer(), &test.src, &test.tgt, o.batch)?;
            println!("int8:  {}", a.bleu_int8);
            println!("float: {}", a.bleu_float);
            println!(
                "identical greedy output: {}/{} ({:.1}%); tokens before the first difference: {:.1}%",
                a.identical,
                a.sentences,
                100.0 * a.identical as f64 / a.sentences as f64,
                100.0 * a.prefix_tokens as f64 / a.float_tokens.max(1) as f64
            );
            let cpu = a.cpu_seconds_int8.map(|c| format!("; on the CPU {c:.2} s, {:.1} sentences/s", a.sentences as f64 / c)).unwrap_or_default();
            let batch = if o.batch > 1 { format!(", batch {}", o.batch) } else { String::new() };
            println!("host, one thread{batch}: int8 {:.2} s ({:.1} sentences/s{cpu}), float {:.2} s ({:.1} sentences/s)", a.seconds_int8, a.sentences as f64 / a.seconds_int8, a.seconds_float, a.sentences as f64 / a.seconds_float);
            if let Some(h) = &o.hyps {
                std::fs::write(h, a.int8_hyps.join("\n") + "\n").with_context(|| format!("writing {}", h.display()))?;
            }
        }
        ModelKind::DecoderOnly => {
            let texts = crate::host::read_lines(&need(&o.test, "--test", "test2016.en")?)?;
            let prompts = match beside(&o.prompts, "prompts.txt") {
                Some(p) => crate::host::read_lines(&p)?,
                None => Vec::new(),
            };
            let q = lm_quality(&model, &fm, &texts, &prompts)?;
            println!("per-token perplexity over {} texts ({} tokens): int8 {:.3}, float {:.3} ({:+.2}%)", q.texts, q.tokens, q.ppl_int8, q.ppl_float, 100.0 * (q.ppl_int8 / q.ppl_float - 1.0));
            if q.prompts > 0 {
                println!("greedy continuations identical to float: {}/{} ({:.1}%)", q.identical, q.prompts, 100.0 * q.identical as f64 / q.prompts as f64);
            }
        }
        ModelKind::EncoderOnly => {
            let path = need(&o.test, "--test", if c.input == picoformer::blob::InputKind::Features { "test.csv" } else { "test.txt" })?;
            let windows;
            let texts;
            let inputs = if c.input == picoformer::blob::InputKind::Features {
                windows = crate::host::read_windows(&path, c.n_features)?;
                Inputs::Windows(&windows)
            } else {
                texts = crate::host::read_lines(&path)?;
                Inputs::Texts(&texts)
            };
            let labels = match beside(&o.labels, "test.labels") {
                Some(p) => crate::host::read_labels(&p)?,
                None => Vec::new(),
            };
            let q = clf_quality(&model, &fm, inputs, &labels)?;
            if !labels.is_empty() {
                println!("accuracy over {} windows: int8 {:.2}% ({}/{}), float {:.2}% ({}/{})", labels.len(), 100.0 * q.correct_int8 as f64 / labels.len() as f64, q.correct_int8, labels.len(), 100.0 * q.correct_float as f64 / labels.len() as f64, q.correct_float, labels.len());
            }
            println!("int8 predicts float's class on {}/{} ({:.2}%); mean |Δ| of the outputs {:.4}", q.agree, q.windows, 100.0 * q.agree as f64 / q.windows.max(1) as f64, q.mean_abs_diff);
        }
    }
    Ok(())
}
