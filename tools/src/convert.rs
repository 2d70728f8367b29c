//! `picoformer convert`, in stages: load the export → check its f32 forward pass against
//! PyTorch → calibrate → quantize → write the blob → test vectors → report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use picoformer::blob::Config;
use picoformer::tokenizer::Tokenizer;
use picoformer::{Model, TokenId, Translator};

use crate::calibrate::calibrate;
use crate::check::check_reference;
use crate::eval::{agreement, layer_errors};
use crate::export::Export;
use crate::host::{read_lines, source_ids, AlignedBuf, SentencePairs};
use crate::quantize::{quantize, Quantized};
use crate::report::{self, ReportInput, Sizes};
use crate::vectors;

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

/// The beam width whose arena the report gives beside greedy's.
const REPORT_BEAM: usize = 4;

/// `picoformer convert`: the blob, and beside it its test vectors and its report.
pub fn run(o: &ConvertOpts) -> Result<()> {
    let t0 = Instant::now();

    // load
    let ex = Export::load(&o.export)?;
    let fm = ex.float_model();
    let vocab = ex.spm.tables()?;
    let tok = Tokenizer::new(ex.spm.vocab(&vocab)).map_err(|e| anyhow!("{}: {e}", o.export.join("tokenizer.model").display()))?;

    // f32 check
    let check = check_reference(&fm, &o.export)?;
    println!("f32 forward matches PyTorch on {} reference sentences: max |Δ| {:.2e} (memory and logits), greedy ids identical", check.sentences, check.max_diff);

    // calibrate
    let calib = SentencePairs::read(&o.calib_src, &o.calib_tgt, o.calib_count)?;
    let ranges = calibrate(&fm, &tok, &calib)?;
    let calib_sentences = calib.src.len();

    // quantize
    let quantized = quantize(&fm, &ranges, &vocab)?;

    // write
    let config_line = config_line(&ex);
    println!("{}: {config_line}", o.export.display());
    let written = Written::write(&o.out, &ex.blob_config, &quantized)?;
    let model = written.model()?;
    let sizes = &written.sizes;
    println!("wrote {} ({} bytes); arena {} bytes greedy, {} bytes beam {}", o.out.display(), sizes.blob, sizes.arena_greedy, sizes.arena_beam, sizes.beam);

    // vectors, from the test set (the calibration pairs when there is none)
    let stem = o.out.with_extension("");
    let test = match (&o.test_src, &o.test_ref) {
        (Some(s), Some(r)) => SentencePairs { src: read_lines(s)?, tgt: read_lines(r)? },
        _ => calib,
    };
    let cases = vectors::cases(&model, &fm, &test.src[..o.vectors.min(test.src.len())])?;
    vectors::write(&stem, &cases)?;

    // report: per-site error, agreement on the test set
    let ids: Vec<Vec<TokenId>> = test.src.iter().take(o.layer_sentences).map(|s| source_ids(model.tokenizer(), s, model.config().max_len)).collect::<Result<_>>()?;
    let errors = layer_errors(&model, &fm, &quantized.scales, &ids)?;
    let agreement = match (&o.test_src, &o.test_ref) {
        (Some(_), Some(_)) => Some(agreement(&model, &fm, model.tokenizer(), &test.src, &test.tgt)?),
        _ => None,
    };
    if let Some(a) = &agreement {
        println!("test set: int8 BLEU {:.2}, float BLEU {:.2}, identical {}/{} ({:.1}%)", a.bleu_int8.score, a.bleu_float.score, a.identical, a.sentences, 100.0 * a.identical as f64 / a.sentences as f64);
        let hyps = stem.with_extension("int8.en");
        std::fs::write(&hyps, a.int8_hyps.join("\n") + "\n").with_context(|| format!("writing {}", hyps.display()))?;
    }
    let report = ReportInput {
        model_name: o.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        config_line,
        reference_diff: check.max_diff,
        calib_sentences,
        errors: &errors,
        layer_sentences: ids.len(),
        agreement: agreement.as_ref(),
        sizes: written.sizes,
        seconds: t0.elapsed().as_secs_f64(),
    };
    let files = report::write(&stem, &report)?;
    println!("wrote {} and {} in {:.1} s", files.markdown.display(), files.svg.display(), t0.elapsed().as_secs_f64());
    Ok(())
}

/// One line for the console and the report: the model's shape.
fn config_line(ex: &Export) -> String {
    let c = &ex.blob_config;
    format!(
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
        let sizes = Sizes {
            blob: bytes.len(),
            weights: q.weight_bytes(),
            vocab: q.vocab_bytes(),
            arena_greedy: Translator::arena_bytes(&model, 1),
            arena_beam: Translator::arena_bytes(&model, REPORT_BEAM),
            beam: REPORT_BEAM,
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
