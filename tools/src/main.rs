//! `picoformer`: convert a PyTorch export to an int8 blob, translate with it, evaluate it.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Parser, Subcommand};

use picoformer_tools::convert::{self, ConvertOpts};
use picoformer_tools::eval::{self, EvalOpts};
use picoformer_tools::translate;

#[derive(Parser)]
#[command(name = "picoformer", version, about = "int8 Transformer runtime for microcontrollers: host tools")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Convert an export directory (config.json, model.safetensors, tokenizer.model,
    /// reference.safetensors) into a calibrated int8 blob, test vectors and a report.
    Convert {
        /// The export directory.
        export: PathBuf,
        /// The blob to write; the report and vectors go beside it.
        #[arg(long)]
        out: PathBuf,
        /// Calibration source sentences [default: <export>/../calib.de].
        #[arg(long)]
        calib_src: Option<PathBuf>,
        /// Calibration target sentences [default: <export>/../calib.en].
        #[arg(long)]
        calib_tgt: Option<PathBuf>,
        /// How many calibration sentence pairs to use.
        #[arg(long, default_value_t = 300)]
        calib_count: usize,
        /// Test sources for the report's BLEU and agreement [default: <export>/../test2016.de if present].
        #[arg(long)]
        test_src: Option<PathBuf>,
        /// Test references [default: <export>/../test2016.en if present].
        #[arg(long)]
        test_ref: Option<PathBuf>,
        /// Test sentences that become test vectors.
        #[arg(long, default_value_t = 8)]
        vectors: usize,
        /// Test sentences for the per-site error table.
        #[arg(long, default_value_t = 100)]
        layer_sentences: usize,
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
    /// BLEU of the int8 model on a test set, and its agreement with the float model.
    Eval {
        #[arg(long, default_value = "models/de-en/de-en.pico")]
        model: PathBuf,
        /// The float export to compare with [default: <model dir>/export].
        #[arg(long)]
        export: Option<PathBuf>,
        #[arg(long)]
        src: PathBuf,
        #[arg(long("ref"))]
        reference: PathBuf,
        /// Write the int8 hypotheses here.
        #[arg(long)]
        hyps: Option<PathBuf>,
    },
}

/// `PICOFORMER_X86_LEVEL=portable|sse4.1|avx|avx2` caps the SIMD level of the int8 kernels
/// (for comparing them; every level gives the same output). Unset: the best the CPU has.
#[cfg(target_arch = "x86_64")]
fn cap_simd_level() -> Result<()> {
    use picoformer::kernels::x86_features::{set_cap, Level};
    if let Ok(name) = std::env::var("PICOFORMER_X86_LEVEL") {
        let level = Level::from_name(&name).ok_or_else(|| anyhow::anyhow!("PICOFORMER_X86_LEVEL={name}: not one of portable, sse4.1, avx, avx2"))?;
        set_cap(Some(level));
    }
    Ok(())
}

#[cfg(not(target_arch = "x86_64"))]
fn cap_simd_level() -> Result<()> {
    Ok(())
}

fn main() -> Result<()> {
    cap_simd_level()?;
    match Cli::parse().cmd {
        Cmd::Convert { export, out, calib_src, calib_tgt, calib_count, test_src, test_ref, vectors, layer_sentences } => {
            let parent = export.parent().unwrap_or(Path::new(".")).to_path_buf();
            let default = |name: &str| parent.join(name);
            let optional = |p: Option<PathBuf>, name: &str| p.or_else(|| Some(default(name)).filter(|p| p.exists()));
            convert::run(&ConvertOpts {
                calib_src: calib_src.unwrap_or_else(|| default("calib.de")),
                calib_tgt: calib_tgt.unwrap_or_else(|| default("calib.en")),
                test_src: optional(test_src, "test2016.de"),
                test_ref: optional(test_ref, "test2016.en"),
                export,
                out,
                calib_count,
                vectors,
                layer_sentences,
            })
        }
        Cmd::Translate { model, beam, sentences } => translate::run(&model, beam, &sentences),
        Cmd::Eval { model, export, src, reference, hyps } => {
            let export = export.unwrap_or_else(|| model.parent().unwrap_or(Path::new(".")).join("export"));
            eval::run(&EvalOpts { model, export, src, reference, hyps })
        }
    }
}
