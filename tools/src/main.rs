//! `picoformer`: convert an export to an int8 blob; translate, generate or classify with it;
//! evaluate it against its float model.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use picoformer_tools::clip::ScaleRule;
use picoformer_tools::quantize::WeightRule;
use picoformer_tools::convert::{self, ConvertOpts};
use picoformer_tools::eval::{self, EvalOpts};
use picoformer_tools::generate::{self, GenerateOpts};
use picoformer_tools::{classify, translate};

#[derive(Parser)]
#[command(name = "picoformer", version, about = "int8 Transformer runtime for microcontrollers: host tools")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Convert an export directory (config.json, model.safetensors, tokenizer.model,
    /// reference.safetensors), or a Hugging Face save_pretrained directory of a llama, mistral or
    /// marian model (docs/import.md), into a calibrated int8 blob, test vectors and a report.
    Convert {
        /// The export directory.
        export: PathBuf,
        /// The blob to write; the report and vectors go beside it.
        #[arg(long)]
        out: PathBuf,
        /// Translators: calibration source sentences [default: <export>/../calib.de].
        #[arg(long)]
        calib_src: Option<PathBuf>,
        /// Translators: calibration target sentences [default: <export>/../calib.en].
        #[arg(long)]
        calib_tgt: Option<PathBuf>,
        /// Language models and classifiers: calibration texts (one per line) or a CSV of feature
        /// windows [default: <export>/../calib.en, train.csv or calib.txt by kind]. Translators:
        /// source sentences alone, whose targets are the float model's greedy translations.
        #[arg(long)]
        calib: Option<PathBuf>,
        /// How many calibration inputs to use.
        #[arg(long, default_value_t = 300)]
        calib_count: usize,
        /// Translators: test sources [default: <export>/../test2016.de if present].
        #[arg(long)]
        test_src: Option<PathBuf>,
        /// Translators: test references [default: <export>/../test2016.en if present].
        #[arg(long)]
        test_ref: Option<PathBuf>,
        /// Language models and classifiers: the test set [default: <export>/../test2016.en,
        /// test.csv or test.txt by kind, if present].
        #[arg(long)]
        test: Option<PathBuf>,
        /// Classifiers: the test set's class indices [default: <export>/../test.labels].
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Language models: prompts for the greedy agreement and the vectors
        /// [default: <export>/../prompts.txt].
        #[arg(long)]
        prompts: Option<PathBuf>,
        /// Test inputs that become test vectors.
        #[arg(long, default_value_t = 8)]
        vectors: usize,
        /// Test inputs for the per-site error table.
        #[arg(long, default_value_t = 100)]
        layer_sentences: usize,
        /// How activation scales are chosen: `max` (each site's calibrated max |x|), `mse` (the
        /// int8 sites clipped where their quantization error is least) or `search` (from `mse`,
        /// each int8 site's clip point chosen by the int8 model's loss against float).
        #[arg(long, default_value = "max")]
        scales: ScaleRule,
        /// Calibration inputs the clip search measures the loss on.
        #[arg(long, default_value_t = 100)]
        tune_count: usize,
        /// How weight rows are scaled: `max` (max |w| is ±127), `mse` (clipped where the
        /// row's quantization error is least) or `gptq` (`max`'s scales, each value rounded so
        /// the linear's output on the calibration inputs stays closest, GPTQ).
        #[arg(long, default_value = "max")]
        weights: WeightRule,
        /// Fit the blob into this many bytes: the weight matrices whose int4 costs the least
        /// logit error per byte saved become int4 (without it every weight stays int8).
        #[arg(long)]
        flash_budget: Option<usize>,
        /// Also convert at each of these budgets (comma-separated bytes) and plot flash against
        /// identical-to-float share in the report.
        #[arg(long, value_delimiter = ',')]
        budget_sweep: Vec<usize>,
        /// Calibration inputs each tensor's int4 sensitivity is measured on.
        #[arg(long, default_value_t = 32)]
        sensitivity_inputs: usize,
    },
    /// Translate sentences with the int8 runtime (stdin, one per line, when none are given).
    Translate {
        #[arg(long, default_value = "models/de-en/de-en.pico")]
        model: PathBuf,
        /// Beam width (1 = greedy, streamed).
        #[arg(long, default_value_t = 1, value_parser = translate::beam_width)]
        beam: usize,
        sentences: Vec<String>,
    },
    /// Continue prompts with a language model, streaming the tokens (stdin, one prompt per
    /// line, when none are given).
    Generate {
        #[arg(long, default_value = "models/captions-lm/captions-lm.pico")]
        model: PathBuf,
        /// New tokens at most.
        #[arg(long, default_value_t = 20)]
        max_new: usize,
        /// Sample instead of the greedy choice.
        #[arg(long)]
        sample: bool,
        /// The sampler's seed (the same seed gives the same tokens on every target).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Sampling temperature.
        #[arg(long, default_value_t = 1.0)]
        temperature: f64,
        /// Keep the k most likely tokens (0: all).
        #[arg(long, default_value_t = 0)]
        top_k: usize,
        /// Keep the most likely tokens up to this share of the probability.
        #[arg(long, default_value_t = 1.0)]
        top_p: f64,
        /// Beam search of this width instead (1: off).
        #[arg(long, default_value_t = 1, value_parser = translate::beam_width)]
        beam: usize,
        prompts: Vec<String>,
    },
    /// Classify feature windows (CSV) or texts with an encoder-only model.
    Classify {
        #[arg(long)]
        model: PathBuf,
        /// The windows [default: stdin].
        input: Option<PathBuf>,
        /// The export whose `labels` (or Hugging Face directory whose `id2label`) name the
        /// classes [default: <model dir>/export].
        #[arg(long)]
        export: Option<PathBuf>,
    },
    /// The int8 model against its float model on a test set: BLEU (translators), perplexity
    /// (language models) or accuracy (classifiers), and their agreement.
    Eval {
        #[arg(long, default_value = "models/de-en/de-en.pico")]
        model: PathBuf,
        /// The float export to compare with [default: <model dir>/export].
        #[arg(long)]
        export: Option<PathBuf>,
        /// Translators: the sources.
        #[arg(long)]
        src: Option<PathBuf>,
        /// Translators: the references.
        #[arg(long("ref"))]
        reference: Option<PathBuf>,
        /// Language models and classifiers: texts or a CSV of windows.
        #[arg(long)]
        test: Option<PathBuf>,
        /// Classifiers: one class index per window.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Language models: prompts for the greedy agreement.
        #[arg(long)]
        prompts: Option<PathBuf>,
        /// Translators: write the int8 hypotheses here.
        #[arg(long)]
        hyps: Option<PathBuf>,
        /// Translators: sentences the int8 model decodes together, 1 to 64 (the same output;
        /// one many-row product per step).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        batch: u16,
    },
}

/// `PICOFORMER_X86_LEVEL=portable|sse4.1|avx|avx2|avx512vnni` caps the SIMD level of the int8 kernels
/// (for comparing them; every level gives the same output). Unset: the best the CPU has.
#[cfg(target_arch = "x86_64")]
fn cap_simd_level() -> Result<()> {
    use picoformer::kernels::x86_features::{set_cap, Level};
    if let Ok(name) = std::env::var("PICOFORMER_X86_LEVEL") {
        let level = Level::from_name(&name).ok_or_else(|| anyhow::anyhow!("PICOFORMER_X86_LEVEL={name}: not one of portable, sse4.1, avx, avx2, avx512vnni"))?;
        set_cap(Some(level));
    }
    Ok(())
}

#[cfg(not(target_arch = "x86_64"))]
fn cap_simd_level() -> Result<()> {
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        // a reader that stopped early (`| head`) is not an error
        Err(e) if e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let beside = |model: &Path| model.parent().unwrap_or(Path::new(".")).join("export");
    cap_simd_level()?;
    match Cli::parse().cmd {
        Cmd::Convert { export, out, calib_src, calib_tgt, calib, calib_count, test_src, test_ref, test, labels, prompts, vectors, layer_sentences, scales, tune_count, weights, flash_budget, budget_sweep, sensitivity_inputs } => {
            convert::run(&ConvertOpts { export, out, calib_src, calib_tgt, calib, calib_count, test_src, test_ref, test, labels, prompts, vectors, layer_sentences, scales, tune_count, weights, flash_budget, budget_sweep, sensitivity_inputs }).map(drop)
        }
        Cmd::Translate { model, beam, sentences } => translate::run(&model, beam, &sentences),
        Cmd::Generate { model, max_new, sample, seed, temperature, top_k, top_p, beam, prompts } => {
            let sampling = sample.then(|| generate::sampling(temperature, top_k, top_p)).transpose()?;
            generate::run(&model, &GenerateOpts { max_new, sampling, seed, beam }, &prompts)
        }
        Cmd::Classify { model, input, export } => {
            let export = export.unwrap_or_else(|| beside(&model));
            let labels = std::fs::read_to_string(export.join("config.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| {
                    // an export's `labels`, or a Hugging Face config's `id2label` in id order
                    let hf = || {
                        let m = v.get("id2label")?.as_object()?;
                        (0..m.len()).map(|i| m.get(&i.to_string())?.as_str().map(str::to_owned)).collect::<Option<Vec<String>>>()
                    };
                    v.get("labels").and_then(|l| serde_json::from_value::<Vec<String>>(l.clone()).ok()).or_else(hf)
                })
                .unwrap_or_default();
            classify::run(&model, input.as_deref(), &labels)
        }
        Cmd::Eval { model, export, src, reference, test, labels, prompts, hyps, batch } => {
            let export = export.unwrap_or_else(|| beside(&model));
            eval::run(&EvalOpts { model, export, src, reference, test, labels, prompts, hyps, batch: batch.into() })
        }
    }
}
