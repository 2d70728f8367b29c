//! The int8 model against the float model (DESIGN §5.3): per-site error, agreement of greedy
//! output and BLEU on a test set. `convert` reports them; `picoformer eval` prints them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use picoformer::observe::{Data, Observer, Site};
use picoformer::reference::FloatModel;
use picoformer::tokenizer::Tokenizer;
use picoformer::{Model, TokenId};

use crate::bleu::{corpus_bleu, Bleu};
use crate::export::Export;
use crate::host::{detok, progress_bar, read_aligned, source_ids, Float, Int8, SentencePairs};
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

/// Teacher-force both models on the float greedy output of each sentence and compare sites.
pub fn layer_errors(model: &Model<'_>, fm: &FloatModel<'_>, scales: &Scales, srcs: &[Vec<TokenId>]) -> Result<Vec<SiteError>> {
    let mut acc: HashMap<Site, ErrorSums> = HashMap::new();
    let mut i8s = Int8::new(model, 1);
    let mut fl = Float::new(fm)?;
    let c = *model.config();
    for src in srcs {
        let out = fl.greedy(src)?;
        let mut fobs = Collect::default();
        let mut st = fl.state()?;
        fm.encode(src, &mut st, &mut fobs)?;
        let mut last = c.bos;
        for (pos, &t) in out.iter().enumerate() {
            fm.decode_step(last, pos, &mut st, &mut fobs)?;
            last = t;
        }
        let mut qobs = Collect { scales: Some(scales), data: HashMap::new() };
        let mut sess = i8s.session()?;
        sess.encode_observed(src, &mut qobs)?;
        let mut last = c.bos;
        for &t in &out {
            sess.force_observed(last, &mut qobs)?;
            last = t;
        }
        for (site, f) in &fobs.data {
            let Some(q) = qobs.data.get(site) else { continue };
            acc.entry(*site).or_default().add(f, q);
        }
    }
    let mut out: Vec<SiteError> = acc.iter().map(|(&site, sums)| sums.error(site)).collect();
    out.sort_by_key(|e| e.site);
    Ok(out)
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
}

/// Translate `src` with both models (greedy) and score against `refs`.
pub fn agreement(model: &Model<'_>, fm: &FloatModel<'_>, tok: &Tokenizer<'_>, src: &[String], refs: &[String]) -> Result<Agreement> {
    let c = *model.config();
    let ids: Vec<Vec<TokenId>> = src.iter().map(|s| source_ids(tok, s, c.max_len)).collect::<Result<_>>()?;
    let pb = progress_bar(ids.len(), "int8");
    let t0 = Instant::now();
    let mut q = Int8::new(model, 1);
    let mut qout = Vec::new();
    for s in &ids {
        qout.push(q.translate_ids(s, 1)?);
        pb.inc(1);
    }
    pb.finish();
    let seconds_int8 = t0.elapsed().as_secs_f64();
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
    })
}

/// What `picoformer eval` compares.
pub struct EvalOpts {
    /// The int8 blob.
    pub model: PathBuf,
    /// The float export it was converted from.
    pub export: PathBuf,
    pub src: PathBuf,
    pub reference: PathBuf,
    /// Where to write the int8 hypotheses, if anywhere.
    pub hyps: Option<PathBuf>,
}

/// `picoformer eval`: BLEU of both models, their agreement and their speed, on stdout.
pub fn run(o: &EvalOpts) -> Result<()> {
    let blob = read_aligned(&o.model)?;
    let model = Model::parse(blob.bytes()).map_err(|e| anyhow!("{}: {e}", o.model.display()))?;
    let ex = Export::load(&o.export)?;
    let fm = ex.float_model();
    let test = SentencePairs::read(&o.src, &o.reference, usize::MAX)?;
    let a = agreement(&model, &fm, model.tokenizer(), &test.src, &test.tgt)?;
    println!("int8:  {}", a.bleu_int8);
    println!("float: {}", a.bleu_float);
    println!(
        "identical greedy output: {}/{} ({:.1}%); tokens before the first difference: {:.1}%",
        a.identical,
        a.sentences,
        100.0 * a.identical as f64 / a.sentences as f64,
        100.0 * a.prefix_tokens as f64 / a.float_tokens.max(1) as f64
    );
    println!("host, one thread: int8 {:.2} s ({:.1} sentences/s), float {:.2} s ({:.1} sentences/s)", a.seconds_int8, a.sentences as f64 / a.seconds_int8, a.seconds_float, a.sentences as f64 / a.seconds_float);
    if let Some(h) = &o.hyps {
        std::fs::write(h, a.int8_hyps.join("\n") + "\n").with_context(|| format!("writing {}", h.display()))?;
    }
    Ok(())
}
