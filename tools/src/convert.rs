//! `picoformer convert`, in stages: load the export → check its f32 forward pass against
//! PyTorch → calibrate → quantize → write the blob → test vectors → report. What each stage
//! reads depends on the model kind: sentence pairs for the translator, texts for a language
//! model, feature windows (or texts) for a classifier.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use picoformer::blob::{Config, InputKind, ModelKind};
use picoformer::tokenizer::Tokenizer;
use picoformer::{Classifier, Generator, Model, Translator};

use crate::calibrate::{calibrate, CalibData, Window};
use crate::clip::{clipped_sites, mse_ranges, ScaleRule, Tuner};
use crate::check::check_reference;
use crate::eval::{agreement, clf_quality, layer_errors, lm_quality, Quality, REPORT_BATCH};
use crate::export::Export;
use crate::host::{detok, read_labels, read_lines, read_windows, source_ids, AlignedBuf, Float, SentencePairs};
use crate::budget::{self, Source, SweepPoint};
use crate::gptq;
use crate::quantize::{quantize_with, Precision, Quantized, WeightRule};
use crate::report::{self, ReportInput, Sizes};
use crate::vectors::{self, Inputs};

/// What `convert` reads and writes. Inputs left `None` default to the files beside the export
/// directory that the project's models keep there (see [`Defaults`]).
#[derive(Default)]
pub struct ConvertOpts {
    pub export: PathBuf,
    pub out: PathBuf,
    /// Translator calibration: source and target sentences.
    pub calib_src: Option<PathBuf>,
    pub calib_tgt: Option<PathBuf>,
    /// Language models and classifiers: texts, one per line, or a CSV of feature windows.
    pub calib: Option<PathBuf>,
    pub calib_count: usize,
    /// Test set: translator sources and references, or texts / windows.
    pub test_src: Option<PathBuf>,
    pub test_ref: Option<PathBuf>,
    pub test: Option<PathBuf>,
    /// Classifiers: one class index per test window.
    pub labels: Option<PathBuf>,
    /// Language models: prompts whose greedy continuations are compared.
    pub prompts: Option<PathBuf>,
    pub vectors: usize,
    pub layer_sentences: usize,
    /// How the activation scales are chosen.
    pub scales: ScaleRule,
    /// Calibration inputs the clip search measures the loss on.
    pub tune_count: usize,
    /// How the weight rows' scales are chosen.
    pub weights: WeightRule,
    /// Fit the blob into this many bytes with int4 weight matrices ([`crate::budget`]).
    pub flash_budget: Option<usize>,
    /// Budgets to convert at as well, for the report's trade-off plot.
    pub budget_sweep: Vec<usize>,
    /// Calibration inputs the int4 sensitivity is measured on.
    pub sensitivity_inputs: usize,
}

/// The files beside an export that `convert` reads when not told otherwise.
pub struct Defaults;

impl Defaults {
    /// `(calibration, test, labels or prompts)` file names for a model kind.
    pub fn names(c: &Config) -> (&'static str, &'static str, &'static str) {
        match (c.kind, c.input) {
            (ModelKind::DecoderOnly, _) => ("calib.en", "test2016.en", "prompts.txt"),
            (ModelKind::EncoderOnly, InputKind::Features) => ("train.csv", "test.csv", "test.labels"),
            (ModelKind::EncoderOnly, InputKind::Tokens) => ("calib.txt", "test.txt", "test.labels"),
            (ModelKind::EncoderDecoder, _) => ("calib.de", "test2016.de", "test2016.en"),
        }
    }
}

/// The beam width whose arena the report gives beside greedy's.
const REPORT_BEAM: usize = 4;

/// What [`run`] measured and wrote: the report's figures.
pub struct Summary {
    pub config_line: String,
    /// Largest |Δ| of the f32 forward pass against the export's reference vectors, if any.
    pub reference_diff: Option<f32>,
    pub calibration: String,
    pub sizes: Sizes,
    pub quality: Option<Quality>,
    pub report: report::ReportFiles,
    pub seconds: f64,
}

/// `picoformer convert`: the blob, and beside it its test vectors and its report.
pub fn run(o: &ConvertOpts) -> Result<Summary> {
    let t0 = Instant::now();

    // load
    let ex = Export::load(&o.export)?;
    let fm = ex.float_model();
    let c = ex.blob_config;
    let vocab = ex.spm.as_ref().map(|s| s.tables()).transpose()?;
    let tok = match (&ex.spm, &vocab) {
        (Some(spm), Some(v)) => Some(Tokenizer::new(spm.vocab(v)).map_err(|e| anyhow!("{}: {e}", o.export.join("tokenizer.model").display()))?),
        _ => None,
    };
    let parent = o.export.parent().unwrap_or(Path::new(".")).to_path_buf();
    let (calib_name, test_name, extra_name) = Defaults::names(&c);
    let beside = |p: &Option<PathBuf>, name: &str| p.clone().unwrap_or_else(|| parent.join(name));
    let present = |p: &Option<PathBuf>, name: &str| p.clone().or_else(|| Some(parent.join(name)).filter(|p| p.exists()));
    let config_line = config_line(&ex);
    println!("{}: {config_line}", o.export.display());

    // f32 check
    let check = check_reference(&fm, &o.export)?;
    match &check {
        Some(r) => println!("f32 forward matches PyTorch on {} reference cases: max |Δ| {:.2e}", r.sentences, r.max_diff),
        None => eprintln!("warning: {}: no reference.safetensors, so the f32 check against PyTorch was skipped", o.export.display()),
    }

    // calibrate
    let calib = match c.kind {
        // source sentences alone: the float model's own translations are the targets
        ModelKind::EncoderDecoder if o.calib.is_some() && o.calib_src.is_none() && o.calib_tgt.is_none() => {
            let Some(tok) = tok.as_ref() else { bail!("internal: a translator without its tokenizer") };
            let src = read_inputs(&c, &beside(&o.calib, calib_name), o.calib_count)?.texts().to_vec();
            let mut fl = Float::new(&fm)?;
            let tgt = src.iter().map(|s| detok(tok, &fl.greedy(&source_ids(tok, s, c.max_len)?)?)).collect::<Result<Vec<_>>>()?;
            println!("calibration targets: the float model's greedy translations of {} sentences", src.len());
            CalibData::Pairs(SentencePairs { src, tgt })
        }
        ModelKind::EncoderDecoder => {
            let (src, tgt) = (beside(&o.calib_src, calib_name), beside(&o.calib_tgt, "calib.en"));
            for (p, what) in [(&src, "source sentences (--calib-src)"), (&tgt, "their translations (--calib-tgt)")] {
                if !p.exists() {
                    bail!("{}: not found (a translator calibrates on parallel text files, one sentence per line: {what})", p.display());
                }
            }
            CalibData::Pairs(SentencePairs::read(&src, &tgt, o.calib_count)?)
        }
        _ => read_inputs(&c, &beside(&o.calib, calib_name), o.calib_count)?,
    };
    let (mut full, features) = calibrate(&fm, tok.as_ref(), &calib)?;
    if o.weights == WeightRule::Gptq {
        let t = Instant::now();
        full.grams = gptq::grams(&fm, tok.as_ref(), &calib)?;
        println!("GPTQ: input Grams of {} weight matrices in {:.1} s", full.grams.len(), t.elapsed().as_secs_f64());
    }

    // clip
    let t_clip = Instant::now();
    let ranges = match o.scales {
        ScaleRule::Max => full.clone(),
        ScaleRule::Mse => mse_ranges(&full),
        ScaleRule::Search => {
            let tuner = Tuner::new(&fm, tok.as_ref(), vocab.as_ref(), features.as_ref(), o.weights, &calib, o.tune_count)?;
            let max_loss = tuner.loss(&full)?;
            let (r, mse_loss, loss) = tuner.search(&full, &mse_ranges(&full))?;
            for (what, l) in [("max |x|", max_loss), ("MSE clip", mse_loss), ("searched", loss)] {
                println!("clip search, {what}: {}/{} outputs flipped, KL {:.3e} nats per output", l.flips, l.outputs, l.kl / l.outputs.max(1) as f64);
            }
            r
        }
    };
    let clips: Vec<report::Clip> = clipped_sites(&full).into_iter().map(|s| report::Clip { site: s, max: full.max[&s], clip: ranges.max[&s] }).collect();
    let clip_seconds = t_clip.elapsed().as_secs_f64();

    // precision: all int8, or the plan that fits the flash budget
    let src = Source { fm: &fm, ranges: &ranges, vocab: vocab.as_ref(), features: features.as_ref() };
    let sens = if o.flash_budget.is_some() || !o.budget_sweep.is_empty() {
        let t = Instant::now();
        let s = budget::sensitivity(&src, head(&calib, o.sensitivity_inputs.max(1)))?;
        println!("int4 sensitivity of {} weight matrices on {} calibration inputs in {:.1} s (all-int8 blob {} bytes, logit SQNR {:.2} dB)", s.tensors.len(), s.inputs, t.elapsed().as_secs_f64(), s.base_blob, s.base_sqnr_db);
        Some(s)
    } else {
        None
    };
    let precision = match (&sens, o.flash_budget) {
        (Some(s), Some(b)) => {
            let (p, predicted) = s.plan(b)?;
            println!("--flash-budget {b}: {} of {} weight matrices int4, blob {predicted} bytes", p.int4.len(), s.tensors.len());
            print!("{}", s.table(&p));
            p
        }
        _ => Precision::default(),
    };

    // quantize
    let quantized = quantize_with(&fm, &ranges, o.weights, vocab.as_ref(), features.as_ref(), &precision)?;

    // write
    let written = Written::write(&o.out, &c, &quantized)?;
    let model = written.model()?;
    let sizes = &written.sizes;
    match sizes.beam {
        0 => println!("wrote {} ({} bytes); arena {} bytes", o.out.display(), sizes.blob, sizes.arena_greedy),
        b => println!("wrote {} ({} bytes); arena {} bytes greedy, {} bytes beam {b}", o.out.display(), sizes.blob, sizes.arena_greedy, sizes.arena_beam),
    }

    // vectors and report, from the test set (the calibration data when there is none)
    let stem = o.out.with_extension("");
    let test = match c.kind {
        ModelKind::EncoderDecoder => match (present(&o.test_src, test_name), present(&o.test_ref, extra_name)) {
            (Some(s), Some(r)) => Some(CalibData::Pairs(SentencePairs { src: read_lines(&s)?, tgt: read_lines(&r)? })),
            _ => None,
        },
        _ => present(&o.test, test_name).map(|p| read_inputs(&c, &p, usize::MAX)).transpose()?,
    };
    let test_or_calib = test.as_ref().unwrap_or(&calib);
    let vector_inputs = match (c.kind, &test_or_calib) {
        // a language model's vectors continue prompts
        (ModelKind::DecoderOnly, _) => match present(&o.prompts, extra_name) {
            Some(p) => CalibData::Texts(read_lines(&p)?),
            None => texts_of(test_or_calib)?,
        },
        _ => clone_inputs(test_or_calib),
    };
    let cases = match &vector_inputs {
        CalibData::Windows(w) => vectors::cases(&model, &fm, Inputs::Windows(&spread(w, o.vectors)))?,
        d => vectors::cases(&model, &fm, head(d, o.vectors))?,
    };
    vectors::write(&stem, &model, &cases)?;
    let errors = layer_errors(&model, &fm, &quantized.scales, head(&vector_inputs, o.layer_sentences))?;
    let quality = match (c.kind, &test) {
        (ModelKind::EncoderDecoder, Some(CalibData::Pairs(t))) => {
            let a = agreement(&model, &fm, model.tokenizer(), &t.src, &t.tgt, REPORT_BATCH)?;
            println!("test set: int8 BLEU {:.2}, float BLEU {:.2}, identical {}/{} ({:.1}%)", a.bleu_int8.score, a.bleu_float.score, a.identical, a.sentences, 100.0 * a.identical as f64 / a.sentences as f64);
            let hyps = stem.with_extension("int8.en");
            std::fs::write(&hyps, a.int8_hyps.join("\n") + "\n").with_context(|| format!("writing {}", hyps.display()))?;
            Some(Quality::Translation(a))
        }
        (ModelKind::DecoderOnly, Some(t)) => {
            let CalibData::Texts(prompts) = &vector_inputs else { bail!("internal: prompts") };
            let texts = texts_of(t)?;
            let q = lm_quality(&model, &fm, texts.texts(), prompts)?;
            println!("test set: perplexity int8 {:.3}, float {:.3}; greedy continuations identical {}/{}", q.ppl_int8, q.ppl_float, q.identical, q.prompts);
            Some(Quality::Language(q))
        }
        (ModelKind::EncoderOnly, Some(t)) => {
            let labels = match present(&o.labels, extra_name) {
                Some(p) => read_labels(&p)?,
                None => Vec::new(),
            };
            let q = clf_quality(&model, &fm, inputs_of(t), &labels)?;
            let what = if c.tokens() { "texts" } else { "windows" };
            match labels.is_empty() {
                true => println!("test set: {} {what}, no labels; int8 equals float on {}", q.windows, q.agree),
                false => println!("test set: {} {what}, accuracy int8 {}/{}, float {}/{}; int8 equals float on {}", q.windows, q.correct_int8, labels.len(), q.correct_float, labels.len(), q.agree),
            }
            Some(Quality::Classification(q, labels.len()))
        }
        _ => None,
    };
    // the trade-off: convert at each budget of the sweep and measure it on the test set
    let mut flash = None;
    if let Some(s) = &sens {
        let mut md = String::new();
        if let Some(b) = o.flash_budget {
            md += &format!("## Flash budget\n\n`--flash-budget {b}`: {} of {} weight matrices int4 (symmetric, one scale per output channel, `-7..=7`), the rest int8. ", precision.int4.len(), s.tensors.len());
            md += &format!("Each tensor's loss is measured alone in int4: the relative noise power it adds to the logits (teacher-forced on the float model's output, {} calibration inputs; all-int8 logit SQNR {:.2} dB, blob {} B); ", s.inputs, s.base_sqnr_db, s.base_blob);
            md += "the plan takes tensors by loss per byte saved until the blob fits.\n\n";
            md += &s.table(&precision);
            md += "\n";
        }
        if !o.budget_sweep.is_empty() {
            let mut points = Vec::new();
            for &b in &o.budget_sweep {
                let (p, _) = s.plan(b)?;
                let q = quantize_with(&fm, &ranges, o.weights, vocab.as_ref(), features.as_ref(), &p)?;
                let bytes = q.blob(&c)?;
                let buf = AlignedBuf::from_bytes(&bytes);
                let m = Model::parse(buf.bytes()).map_err(|e| anyhow!("a sweep blob does not parse: {e}"))?;
                let (identical, bleu) = sweep_quality(&m, &fm, &c, test_or_calib, &vector_inputs, o)?;
                let errs = layer_errors(&m, &fm, &q.scales, head(&calib, o.sensitivity_inputs.max(1)))?;
                let logit_sqnr_db = errs.iter().find(|e| e.site == picoformer::observe::Site::Logits).map_or(f64::NAN, |e| e.sqnr_db);
                println!("sweep: budget {b}: blob {} bytes, {} int4, identical {:.1}%{}", bytes.len(), p.int4.len(), 100.0 * identical, bleu.map_or(String::new(), |b| format!(", BLEU {b:.2}")));
                points.push(SweepPoint { budget: b, blob: bytes.len(), int4_tensors: p.int4.len(), identical, bleu, logit_sqnr_db });
            }
            let svg_path = stem.with_extension("budget.svg");
            std::fs::write(&svg_path, budget::sweep_svg(&points)).with_context(|| format!("writing {}", svg_path.display()))?;
            let name = svg_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            md += &format!("## Flash against accuracy\n\nThe same conversion at each budget of `--budget-sweep` (test set, greedy; logit SQNR on the sensitivity inputs):\n\n![flash vs identical-to-float]({name})\n\n");
            md += &budget::sweep_table(&points);
            md += "\n";
        }
        flash = Some(md);
    }
    let report = ReportInput {
        model_name: o.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        config_line,
        reference_diff: check.map(|r| r.max_diff),
        calibration: format!("{} {}", calib.len(), calib_unit(&c)),
        scales: o.scales,
        weights: o.weights,
        clips: &clips,
        clip_seconds,
        errors: &errors,
        layer_inputs: head_len(&vector_inputs, o.layer_sentences),
        quality: quality.as_ref(),
        sizes: written.sizes,
        seconds: t0.elapsed().as_secs_f64(),
        blob: written.blob.bytes(),
        flash,
    };
    let files = report::write(&stem, &report)?;
    let seconds = t0.elapsed().as_secs_f64();
    println!("wrote {}, {} and {} in {seconds:.1} s", files.markdown.display(), files.svg.display(), files.flash.display());
    let ReportInput { config_line, reference_diff, calibration, sizes, .. } = report;
    Ok(Summary { config_line, reference_diff, calibration, sizes, quality, report: files, seconds })
}

/// A sweep point's quality on the test set: the share of outputs identical to float's, and
/// (translators) BLEU.
fn sweep_quality(m: &Model<'_>, fm: &picoformer::reference::FloatModel<'_>, c: &Config, test: &CalibData, prompts: &CalibData, o: &ConvertOpts) -> Result<(f64, Option<f64>)> {
    Ok(match (c.kind, test) {
        (ModelKind::EncoderDecoder, CalibData::Pairs(t)) => {
            let a = agreement(m, fm, m.tokenizer(), &t.src, &t.tgt, REPORT_BATCH)?;
            (a.identical as f64 / a.sentences.max(1) as f64, Some(a.bleu_int8.score))
        }
        (ModelKind::DecoderOnly, t) => {
            let q = lm_quality(m, fm, texts_of(t)?.texts(), prompts.texts())?;
            (q.identical as f64 / q.prompts.max(1) as f64, None)
        }
        (ModelKind::EncoderOnly, t) => {
            let beside = o.export.parent().map(|p| p.join(Defaults::names(c).2)).filter(|p| p.exists());
            let labels = match o.labels.clone().or(beside) {
                Some(p) => read_labels(&p)?,
                None => Vec::new(),
            };
            let q = clf_quality(m, fm, inputs_of(t), &labels)?;
            (q.agree as f64 / q.windows.max(1) as f64, None)
        }
        _ => bail!("no test inputs for the budget sweep"),
    })
}

/// What one calibration input is called in the report.
fn calib_unit(c: &Config) -> &'static str {
    match (c.kind, c.input) {
        (ModelKind::EncoderDecoder, _) => "sentence pairs (teacher-forced)",
        (ModelKind::DecoderOnly, _) => "texts (teacher-forced)",
        (_, InputKind::Features) => "feature windows",
        _ => "texts",
    }
}

/// Texts (one per line) or feature windows (CSV), at most `count`.
fn read_inputs(c: &Config, path: &Path, count: usize) -> Result<CalibData> {
    if !path.exists() {
        bail!("{}: not found (the {} a {} model reads; give it with --calib or --test)", path.display(), if c.input == InputKind::Features { "CSV of feature windows" } else { "text file" }, kind_name(c));
    }
    Ok(match c.input {
        InputKind::Features => CalibData::Windows(read_windows(path, c.n_features)?.into_iter().take(count).collect()),
        InputKind::Tokens => CalibData::Texts(read_lines(path)?.into_iter().take(count).collect()),
    })
}

/// The kind's name, as `config.json` has it.
pub fn kind_name(c: &Config) -> &'static str {
    match c.kind {
        ModelKind::EncoderDecoder => "encoder-decoder",
        ModelKind::EncoderOnly => "encoder-only",
        ModelKind::DecoderOnly => "decoder-only",
    }
}

fn clone_inputs(d: &CalibData) -> CalibData {
    match d {
        CalibData::Pairs(p) => CalibData::Texts(p.src.clone()),
        CalibData::Texts(t) => CalibData::Texts(t.clone()),
        CalibData::Windows(w) => CalibData::Windows(w.clone()),
    }
}

fn texts_of(d: &CalibData) -> Result<CalibData> {
    match d {
        CalibData::Texts(t) => Ok(CalibData::Texts(t.clone())),
        CalibData::Pairs(p) => Ok(CalibData::Texts(p.src.clone())),
        CalibData::Windows(_) => bail!("a language model reads texts, not feature windows"),
    }
}

impl CalibData {
    /// The texts (empty for windows).
    pub fn texts(&self) -> &[String] {
        match self {
            CalibData::Texts(t) => t,
            CalibData::Pairs(p) => &p.src,
            CalibData::Windows(_) => &[],
        }
    }
}

fn inputs_of(d: &CalibData) -> Inputs<'_> {
    match d {
        CalibData::Windows(w) => Inputs::Windows(w),
        other => Inputs::Texts(other.texts()),
    }
}

/// The first `n` inputs.
/// The first `n` inputs of `d`.
fn head(d: &CalibData, n: usize) -> Inputs<'_> {
    match d {
        CalibData::Windows(w) => Inputs::Windows(&w[..n.min(w.len())]),
        other => {
            let t = other.texts();
            Inputs::Texts(&t[..n.min(t.len())])
        }
    }
}

/// `n` windows spread evenly over `w` (classifier test sets often come grouped by class, so the
/// first few would all be one class).
fn spread(w: &[Window], n: usize) -> Vec<Window> {
    let n = n.min(w.len());
    (0..n).map(|i| w[i * w.len() / n].clone()).collect()
}

fn head_len(d: &CalibData, n: usize) -> usize {
    n.min(d.len())
}

/// One line for the console and the report: the model's shape.
fn config_line(ex: &Export) -> String {
    let c = &ex.blob_config;
    let heads = if c.n_kv_heads == c.nhead { format!("{} heads", c.nhead) } else { format!("{} heads over {} K/V heads", c.nhead, c.n_kv_heads) };
    let layers = match c.kind {
        ModelKind::EncoderDecoder => format!("{} encoder + {} decoder layers", c.n_enc, c.n_dec),
        ModelKind::EncoderOnly => format!("{} encoder layers", c.n_enc),
        ModelKind::DecoderOnly => format!("{} decoder layers", c.n_dec),
    };
    let input = match c.input {
        InputKind::Tokens => format!("vocabulary {}", c.vocab),
        InputKind::Features => format!("{} features per frame", c.n_features),
    };
    let output = match c.kind {
        ModelKind::EncoderOnly => format!(", {:?} pooling, {:?} head of {}", c.pooling, c.head, c.n_outputs),
        _ => format!(", {} embeddings", if c.tied() { "tied" } else { "untied" }),
    };
    format!(
        "{}: d_model {}, {heads}, {layers}, FFN {} ({}), {:?}, {}, {:?} positions, {input}, max_len {}{output}.",
        kind_name(c),
        c.d_model,
        c.d_ff,
        ex.activation,
        c.norm,
        if c.norm_first() { "pre-norm" } else { "post-norm" },
        c.positions,
        c.max_len,
    )
}

/// The blob as written, and what it costs.
pub struct Written {
    pub blob: AlignedBuf,
    pub sizes: Sizes,
}

impl Written {
    /// Serialize `q` into a blob, write it to `path` and parse it back.
    pub fn write(path: &Path, c: &Config, q: &Quantized) -> Result<Written> {
        let bytes = q.blob(c)?;
        std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        let blob = AlignedBuf::from_bytes(&bytes);
        let model = parse_written(&blob)?;
        let arena = |beam: usize| match c.kind {
            ModelKind::EncoderDecoder => Translator::arena_bytes(&model, beam),
            ModelKind::DecoderOnly => Generator::arena_bytes(&model, beam),
            ModelKind::EncoderOnly => Classifier::arena_bytes(&model),
        };
        let sizes = Sizes {
            blob: bytes.len(),
            weights: q.weight_bytes(),
            vocab: q.vocab_bytes(),
            arena_greedy: arena(1),
            arena_beam: arena(REPORT_BEAM),
            beam: if c.kind == ModelKind::EncoderOnly { 0 } else { REPORT_BEAM },
            arena_map: {
                let mut map = Vec::new();
                match c.kind {
                    ModelKind::EncoderDecoder => Translator::arena_map(&model, 1, &mut |r| map.push(r)),
                    ModelKind::DecoderOnly => Generator::arena_map(&model, 1, &mut |r| map.push(r)),
                    ModelKind::EncoderOnly => Classifier::arena_map(&model, &mut |r| map.push(r)),
                }
                map
            },
        };
        Ok(Written { blob, sizes })
    }

    /// The model in the blob.
    pub fn model(&self) -> Result<Model<'_>> {
        parse_written(&self.blob)
    }
}

fn parse_written(blob: &AlignedBuf) -> Result<Model<'_>> {
    Model::parse(blob.bytes()).map_err(|e| anyhow!("the blob just written does not parse: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vectors' windows come from all over the test set, first one first.
    #[test]
    fn spread_takes_evenly_spaced_windows() {
        let w: Vec<Window> = (0..10).map(|i| vec![i as f32]).collect();
        let picked = |n| spread(&w, n).iter().map(|x| x[0] as usize).collect::<Vec<_>>();
        assert_eq!(picked(4), [0, 2, 5, 7]);
        assert_eq!(picked(3), [0, 3, 6]);
        assert_eq!(picked(10), (0..10).collect::<Vec<_>>());
        assert_eq!(picked(25), (0..10).collect::<Vec<_>>());
        assert_eq!(picked(0), Vec::<usize>::new());
    }
}
