//! `picoformer convert`: export → checked f32 → calibrated int8 blob + vectors + report.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use picoformer::observe::{Data, NoObserver, Observer, Site};
use picoformer::reference::FloatModel;
use picoformer::tokenizer::Tokenizer;
use picoformer::vectors::Fnv1a;
use picoformer::{Model, TokenId, Translator};
use safetensors::SafeTensors;

use picoformer::blob;
use safetensors::tensor::TensorView;
use safetensors::Dtype;

use crate::export::{floats, ints, Export};
use crate::host::{detok, pieces, read_lines, source_ids, Aligned, Float, Int8};
use crate::quantize::{write_blob, Builder, Ranges, Scales};
use crate::report::{self, ReportInput, Sizes};

pub struct ConvertOpts {
    pub export: PathBuf,
    pub out: PathBuf,
    pub calib_src: PathBuf,
    pub calib_tgt: PathBuf,
    pub calib_count: usize,
    pub test_src: Option<PathBuf>,
    pub test_ref: Option<PathBuf>,
    pub vectors: usize,
    pub layer_sentences: usize,
}

pub fn bar(n: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(n as u64);
    pb.set_style(ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {elapsed}").unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> "));
    pb.set_message(what.to_owned());
    pb
}

/// Check the f32 forward pass against PyTorch's `reference.safetensors`.
pub fn check_reference(fm: &FloatModel<'_>, dir: &Path) -> Result<f32> {
    let path = dir.join("reference.safetensors");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes).with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let mut fl = Float::new(fm)?;
    let mut worst = 0f32;
    let mut i = 0;
    while st.tensor(&format!("src_ids.{i}")).is_ok() {
        let src: Vec<TokenId> = ints(&st, &format!("src_ids.{i}"), &path)?.iter().map(|&v| v as TokenId).collect();
        let (memory, _) = floats(&st, &format!("memory.{i}"), &path)?;
        let greedy: Vec<TokenId> = ints(&st, &format!("greedy.{i}"), &path)?.iter().map(|&v| v as TokenId).collect();
        let (logits, shape) = floats(&st, &format!("logits.{i}"), &path)?;
        let mut state = fl.state()?;
        fm.encode(&src, &mut state, &mut NoObserver)?;
        let diff = |a: &[f32], b: &[f32]| a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        let dm = diff(fm.memory(&state), &memory);
        let v = fm.config.vocab;
        let mut dl = 0f32;
        let mut last = fm.config.bos;
        for t in 0..shape.first().copied().unwrap_or(0) {
            fm.decode_step(last, t, &mut state, &mut NoObserver)?;
            dl = dl.max(diff(state.logits(), &logits[t * v..(t + 1) * v]));
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
    println!("f32 forward matches PyTorch on {i} reference sentences: max |Δ| {worst:.2e} (memory and logits), greedy ids identical");
    Ok(worst)
}

/// Run the f32 model over `n` sentence pairs (teacher-forced) and record every site's range.
pub fn calibrate(fm: &FloatModel<'_>, tok: &Tokenizer<'_>, src: &[String], tgt: &[String]) -> Result<Ranges> {
    let c = fm.config;
    let mut ranges = Ranges::default();
    let mut fl = Float::new(fm)?;
    let pb = bar(src.len(), "calibrate");
    for (s, t) in src.iter().zip(tgt) {
        let ids = source_ids(tok, s, c.max_len)?;
        let mut tgt_ids = pieces(tok, t)?;
        tgt_ids.truncate(c.max_len - 1);
        let mut st = fl.state()?;
        fm.encode(&ids, &mut st, &mut ranges)?;
        let mut last = c.bos;
        for (pos, &next) in tgt_ids.iter().chain(std::iter::once(&c.eos)).enumerate().take(c.max_len - 1) {
            fm.decode_step(last, pos, &mut st, &mut ranges)?;
            last = next;
        }
        pb.inc(1);
    }
    pb.finish();
    Ok(ranges)
}

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

/// Raw int8 values per site, for test vectors.
#[derive(Default)]
pub struct Raw {
    pub data: Vec<(Site, Vec<i32>, u8)>,
}

impl Observer for Raw {
    fn observe(&mut self, site: Site, data: Data<'_>) {
        let (v, bits): (Vec<i32>, u8) = match data {
            Data::I8(x) => (x.iter().map(|&q| q as i32).collect(), 8),
            Data::I16(x) => (x.iter().map(|&q| q as i32).collect(), 16),
            Data::I32(x) => (x.to_vec(), 32),
            _ => return,
        };
        match self.data.iter_mut().find(|(s, _, _)| *s == site) {
            Some((_, d, _)) => d.extend(v),
            None => self.data.push((site, v, bits)),
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

/// Teacher-force both models on the float greedy output of each sentence and compare sites.
pub fn layer_errors(model: &Model<'_>, fm: &FloatModel<'_>, scales: &Scales, srcs: &[Vec<TokenId>]) -> Result<Vec<SiteError>> {
    let mut acc: HashMap<Site, (f64, f64, f64, f64, usize)> = HashMap::new();
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
            let e = acc.entry(*site).or_default();
            for (&a, &b) in f.iter().zip(q) {
                let (a, b) = (a as f64, b as f64);
                e.0 += a * a;
                e.1 += (a - b) * (a - b);
                e.2 += a * b;
                e.3 += b * b;
                e.4 += 1;
            }
        }
    }
    let mut out: Vec<SiteError> = acc
        .into_iter()
        .map(|(site, (ss, ee, ab, bb, n))| SiteError {
            site,
            sqnr_db: 10.0 * (ss / ee.max(1e-30)).log10(),
            cosine: ab / (ss.sqrt() * bb.sqrt()).max(1e-30),
            values: n,
        })
        .collect();
    out.sort_by_key(|e| e.site);
    Ok(out)
}

/// Agreement and BLEU of int8 against float over a test set.
pub struct Agreement {
    pub sentences: usize,
    pub identical: usize,
    pub prefix_tokens: usize,
    pub float_tokens: usize,
    pub bleu_int8: crate::bleu::Bleu,
    pub bleu_float: crate::bleu::Bleu,
    pub int8_hyps: Vec<String>,
    pub float_hyps: Vec<String>,
    pub seconds_int8: f64,
    pub seconds_float: f64,
}

/// Translate `src` with both models (greedy) and score against `refs`.
pub fn agreement(model: &Model<'_>, fm: &FloatModel<'_>, tok: &Tokenizer<'_>, src: &[String], refs: &[String]) -> Result<Agreement> {
    let c = *model.config();
    let ids: Vec<Vec<TokenId>> = src.iter().map(|s| source_ids(tok, s, c.max_len)).collect::<Result<_>>()?;
    let pb = bar(ids.len(), "int8");
    let t0 = Instant::now();
    let mut q = Int8::new(model, 1);
    let mut qout = Vec::new();
    for s in &ids {
        qout.push(q.translate_ids(s, 1)?);
        pb.inc(1);
    }
    pb.finish();
    let seconds_int8 = t0.elapsed().as_secs_f64();
    let pb = bar(ids.len(), "float");
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
        bleu_int8: crate::bleu::corpus_bleu(&int8_hyps, refs),
        bleu_float: crate::bleu::corpus_bleu(&float_hyps, refs),
        int8_hyps,
        float_hyps,
        seconds_int8,
        seconds_float,
    })
}

/// A case of the test vectors: ids, greedy output, every step's logits digest, and raw sites.
pub struct Case {
    pub text: String,
    pub src: Vec<TokenId>,
    pub out: Vec<TokenId>,
    pub logits_digest: u32,
    pub first_logits: Vec<i32>,
    pub float_first_logits: Vec<f32>,
    pub sites: Raw,
}

/// Run the int8 model (the integer simulation the firmware must match) on `texts`.
pub fn vector_cases(model: &Model<'_>, fm: &FloatModel<'_>, texts: &[String]) -> Result<Vec<Case>> {
    let c = *model.config();
    let tok = model.tokenizer();
    let mut q = Int8::new(model, 1);
    let mut fl = Float::new(fm)?;
    let mut cases = Vec::new();
    for text in texts {
        let src = source_ids(tok, text, c.max_len)?;
        let mut sites = Raw::default();
        let mut digest = Fnv1a::default();
        let mut first_logits = Vec::new();
        let mut out = Vec::new();
        {
            let mut sess = q.session()?;
            sess.encode_observed(&src, &mut sites)?;
            while let Some(t) = sess.greedy_step(&mut sites)? {
                digest.i32s(sess.logits());
                if first_logits.is_empty() {
                    first_logits = sess.logits().to_vec();
                }
                out.push(t);
            }
        }
        let mut st = fl.state()?;
        fm.encode(&src, &mut st, &mut NoObserver)?;
        fm.decode_step(c.bos, 0, &mut st, &mut NoObserver)?;
        let float_first_logits = st.logits().to_vec();
        cases.push(Case { text: text.clone(), src, out, logits_digest: digest.0, first_logits, float_first_logits, sites });
    }
    Ok(cases)
}

pub fn read_pair(src: &Path, tgt: &Path, n: usize) -> Result<(Vec<String>, Vec<String>)> {
    let mut s = read_lines(src)?;
    let mut t = read_lines(tgt)?;
    if s.len() != t.len() {
        bail!("{} has {} lines but {} has {}", src.display(), s.len(), tgt.display(), t.len());
    }
    s.truncate(n);
    t.truncate(n);
    Ok((s, t))
}

/// What a conversion produced.
pub struct Converted {
    pub blob: Vec<u8>,
    pub scales: Scales,
    pub reference_diff: f32,
}

/// Load, check, calibrate and quantize: the blob bytes, without writing anything.
pub fn build(export: &Path, calib_src: &Path, calib_tgt: &Path, calib_count: usize) -> Result<(Export, Converted, usize, usize, usize)> {
    let ex = Export::load(export)?;
    let fm = ex.float_model();
    let c = ex.blob_config;
    let reference_diff = check_reference(&fm, export)?;
    let tables = ex.spm.tables()?;
    let host_tok = Tokenizer::new(ex.spm.vocab(&tables)).map_err(|e| anyhow!("{}: {e}", export.join("tokenizer.model").display()))?;
    let (cs, ct) = read_pair(calib_src, calib_tgt, calib_count)?;
    let ranges = calibrate(&fm, &host_tok, &cs, &ct)?;
    let mut scales = Scales::from_ranges(&ranges, &c);
    scales.fit_logits(&fm)?;
    let tensors = Builder::new(&fm, &scales).build(&tables)?;
    let vocab_bytes: usize = tensors.iter().filter(|t| t.spec.tag >> 24 == blob::tag::TOK).map(|t| t.data.len()).sum();
    let weight_bytes: usize = tensors.iter().filter(|t| t.spec.tag >> 24 != blob::tag::TOK).map(|t| t.data.len()).sum();
    let blob = write_blob(&c, &tensors)?;
    Ok((ex, Converted { blob, scales, reference_diff }, weight_bytes, vocab_bytes, cs.len()))
}

/// `picoformer convert`: the blob, its vectors and its report, written beside `o.out`.
pub fn run(o: ConvertOpts) -> Result<Converted> {
    let t0 = Instant::now();
    let (ex, converted, weight_bytes, vocab_bytes, calib_sentences) = build(&o.export, &o.calib_src, &o.calib_tgt, o.calib_count)?;
    let fm = ex.float_model();
    let c = ex.blob_config;
    let scales = &converted.scales;
    let bytes = &converted.blob;
    let config_line = format!(
        "d_model {}, {} heads, {} encoder + {} decoder layers, FFN {} ({}), {}, vocabulary {}, max_len {}, {} embeddings.",
        c.d_model,
        c.nhead,
        c.n_enc,
        c.n_dec,
        c.d_ff,
        ex.config.activation,
        if c.norm_first() { "pre-norm" } else { "post-norm" },
        c.vocab,
        c.max_len,
        if c.tied() { "tied" } else { "untied" }
    );
    println!("{}: {config_line}", o.export.display());
    std::fs::write(&o.out, bytes).with_context(|| format!("writing {}", o.out.display()))?;
    let blob = Aligned::from_bytes(bytes);
    let model = Model::parse(blob.bytes()).map_err(|e| anyhow!("the blob just written does not parse: {e}"))?;
    let beam = 4;
    let sizes = Sizes {
        blob: bytes.len(),
        weights: weight_bytes,
        vocab: vocab_bytes,
        arena_greedy: Translator::arena_bytes(&model, 1),
        arena_beam: Translator::arena_bytes(&model, beam),
        beam,
    };
    println!("wrote {} ({} bytes); arena {} bytes greedy, {} bytes beam {beam}", o.out.display(), bytes.len(), sizes.arena_greedy, sizes.arena_beam);

    // test vectors, per-site errors and agreement on the test set
    let stem = o.out.with_extension("");
    let (test_src, test_ref) = match (&o.test_src, &o.test_ref) {
        (Some(s), Some(r)) => (read_lines(s)?, read_lines(r)?),
        _ => read_pair(&o.calib_src, &o.calib_tgt, o.calib_count)?,
    };
    let texts: Vec<String> = test_src.iter().take(o.vectors).cloned().collect();
    let cases = vector_cases(&model, &fm, &texts)?;
    write_vectors(&stem, &cases)?;
    let ids: Vec<Vec<u16>> = test_src
        .iter()
        .take(o.layer_sentences)
        .map(|s| source_ids(model.tokenizer(), s, c.max_len))
        .collect::<Result<_>>()?;
    let errors = layer_errors(&model, &fm, scales, &ids)?;
    let agreement = match (&o.test_src, &o.test_ref) {
        (Some(_), Some(_)) => Some(agreement(&model, &fm, model.tokenizer(), &test_src, &test_ref)?),
        _ => None,
    };
    if let Some(a) = &agreement {
        println!(
            "test set: int8 BLEU {:.2}, float BLEU {:.2}, identical {}/{} ({:.1}%)",
            a.bleu_int8.score,
            a.bleu_float.score,
            a.identical,
            a.sentences,
            100.0 * a.identical as f64 / a.sentences as f64
        );
        std::fs::write(stem.with_extension("int8.en"), a.int8_hyps.join("\n") + "\n")?;
    }
    let svg_path = stem.with_extension("sqnr.svg");
    std::fs::write(&svg_path, report::svg(&errors))?;
    let input = ReportInput {
        model_name: o.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        config_line,
        reference_diff: converted.reference_diff,
        calib_sentences,
        errors: &errors,
        layer_sentences: ids.len(),
        agreement: agreement.as_ref(),
        sizes,
        seconds: t0.elapsed().as_secs_f64(),
    };
    let svg_name = svg_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let md_path = stem.with_extension("report.md");
    std::fs::write(&md_path, report::markdown(&input, &svg_name))?;
    println!("wrote {} and {} in {:.1} s", md_path.display(), svg_path.display(), t0.elapsed().as_secs_f64());
    Ok(converted)
}

/// `<stem>.vectors.bin` (compact, for firmware) and `<stem>.vectors.safetensors` (full).
fn write_vectors(stem: &Path, cases: &[Case]) -> Result<()> {
    let compact: Vec<(&str, &[u16], &[u16], u32)> = cases.iter().map(|c| (c.text.as_str(), c.src.as_slice(), c.out.as_slice(), c.logits_digest)).collect();
    std::fs::write(stem.with_extension("vectors.bin"), picoformer::vectors::write(&compact))?;

    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let le16 = |v: &[u16]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let le32 = |v: &[i32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    for (i, c) in cases.iter().enumerate() {
        owned.push((format!("case.{i}.src"), Dtype::U16, vec![c.src.len()], le16(&c.src)));
        owned.push((format!("case.{i}.greedy"), Dtype::U16, vec![c.out.len()], le16(&c.out)));
        owned.push((format!("case.{i}.logits_digest"), Dtype::U32, vec![1], c.logits_digest.to_le_bytes().to_vec()));
        owned.push((format!("case.{i}.logits0"), Dtype::I32, vec![c.first_logits.len()], le32(&c.first_logits)));
        owned.push((format!("case.{i}.float_logits0"), Dtype::F32, vec![c.float_first_logits.len()], c.float_first_logits.iter().flat_map(|x| x.to_le_bytes()).collect()));
        for (site, data, bits) in &c.sites.data {
            let mut d = picoformer::vectors::Fnv1a::default();
            d.i32s(data);
            owned.push((format!("case.{i}.digest.{site}"), Dtype::U32, vec![1], d.0.to_le_bytes().to_vec()));
            if i == 0 {
                let (dtype, bytes) = match bits {
                    8 => (Dtype::I8, data.iter().map(|&v| v as i8 as u8).collect()),
                    16 => (Dtype::I16, data.iter().flat_map(|&v| (v as i16).to_le_bytes()).collect()),
                    _ => (Dtype::I32, le32(data)),
                };
                owned.push((format!("case.{i}.site.{site}"), dtype, vec![data.len()], bytes));
            }
        }
    }
    let views: Vec<(String, TensorView<'_>)> = owned
        .iter()
        .map(|(n, dt, shape, data)| Ok((n.clone(), TensorView::new(*dt, shape.clone(), data).map_err(|e| anyhow!("{n}: {e}"))?)))
        .collect::<Result<_>>()?;
    let path = stem.with_extension("vectors.safetensors");
    safetensors::serialize_to_file(views, None, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

