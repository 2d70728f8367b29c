//! `picoformer`: convert a PyTorch export to an int8 blob, translate with it, evaluate it.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use clap::{Parser, Subcommand};
use picoformer::blob;
use picoformer::tokenizer::{DecodeState, Tokenizer};
use picoformer::{Model, Translator};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

use picoformer_tools::convert::{self, ConvertOpts};
use picoformer_tools::export::Export;
use picoformer_tools::host::{read_lines, source_ids, Aligned, Int8};
use picoformer_tools::quantize::{write_blob, Builder, Scales};
use picoformer_tools::report::{self, ReportInput, Sizes};

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
        #[arg(long, default_value_t = 1)]
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

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Convert { export, out, calib_src, calib_tgt, calib_count, test_src, test_ref, vectors, layer_sentences } => {
            let parent = export.parent().unwrap_or(Path::new(".")).to_path_buf();
            let default = |name: &str| parent.join(name);
            let optional = |p: Option<PathBuf>, name: &str| p.or_else(|| Some(default(name)).filter(|p| p.exists()));
            run_convert(ConvertOpts {
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
        Cmd::Translate { model, beam, sentences } => translate(&model, beam, &sentences),
        Cmd::Eval { model, export, src, reference, hyps } => {
            let export = export.unwrap_or_else(|| model.parent().unwrap_or(Path::new(".")).join("export"));
            eval(&model, &export, &src, &reference, hyps.as_deref())
        }
    }
}

fn run_convert(o: ConvertOpts) -> Result<()> {
    let t0 = Instant::now();
    let ex = Export::load(&o.export)?;
    let fm = ex.float_model();
    let c = ex.blob_config;
    println!(
        "{}: d_model {} heads {} layers {}+{} ff {} {} {} vocab {} max_len {}{}",
        o.export.display(),
        c.d_model,
        c.nhead,
        c.n_enc,
        c.n_dec,
        c.d_ff,
        ex.config.activation,
        if c.norm_first() { "pre-norm" } else { "post-norm" },
        c.vocab,
        c.max_len,
        if c.tied() { " tied" } else { " untied" }
    );
    let ref_diff = convert::check_reference(&fm, &o.export)?;

    let tables = ex.spm.tables()?;
    let host_tok = Tokenizer::new(ex.spm.vocab(&tables)).map_err(|e| anyhow!("{}: {e}", o.export.join("tokenizer.model").display()))?;
    let (cs, ct) = convert::read_pair(&o.calib_src, &o.calib_tgt, o.calib_count)?;
    let ranges = convert::calibrate(&fm, &host_tok, &cs, &ct)?;
    let scales = Scales::from_ranges(&ranges, &c);
    let tensors = Builder::new(&fm, &scales).build(&tables)?;
    let vocab_bytes: usize = tensors.iter().filter(|t| t.spec.tag >> 24 == blob::tag::TOK).map(|t| t.data.len()).sum();
    let weight_bytes: usize = tensors.iter().filter(|t| t.spec.tag >> 24 != blob::tag::TOK).map(|t| t.data.len()).sum();
    let bytes = write_blob(&c, &tensors)?;
    std::fs::write(&o.out, &bytes).with_context(|| format!("writing {}", o.out.display()))?;
    let blob = Aligned::from_bytes(&bytes);
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
        _ => (cs.clone(), ct.clone()),
    };
    let texts: Vec<String> = test_src.iter().take(o.vectors).cloned().collect();
    let cases = convert::vector_cases(&model, &fm, &texts)?;
    write_vectors(&stem, &cases)?;
    let ids: Vec<Vec<u16>> = test_src
        .iter()
        .take(o.layer_sentences)
        .map(|s| source_ids(model.tokenizer(), s, c.max_len, c.eos))
        .collect::<Result<_>>()?;
    let errors = convert::layer_errors(&model, &fm, &scales, &ids)?;
    let agreement = match (&o.test_src, &o.test_ref) {
        (Some(_), Some(_)) => Some(convert::agreement(&model, &fm, model.tokenizer(), &test_src, &test_ref)?),
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
        config_line: format!(
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
        ),
        reference_diff: ref_diff,
        calib_sentences: cs.len(),
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
    Ok(())
}

/// `<stem>.vectors.bin` (compact, for firmware) and `<stem>.vectors.safetensors` (full).
fn write_vectors(stem: &Path, cases: &[convert::Case]) -> Result<()> {
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

fn translate(model_path: &Path, beam: usize, sentences: &[String]) -> Result<()> {
    let blob = Aligned::read(model_path)?;
    let model = Model::parse(blob.bytes()).map_err(|e| anyhow!("{}: {e}", model_path.display()))?;
    let mut int8 = Int8::new(&model, beam.max(1));
    let tok = model.tokenizer();
    let c = model.config;
    let mut one = |text: &str| -> Result<()> {
        let src = source_ids(tok, text, c.max_len, c.eos)?;
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let mut sink = String::new();
        let mut state = DecodeState::default();
        if beam <= 1 {
            // stream: print each piece as it comes
            let mut sess = int8.session()?;
            sess.encode(&src).map_err(|e| anyhow!("{e}"))?;
            while let Some(t) = sess.next_token().map_err(|e| anyhow!("{e}"))? {
                sink.clear();
                tok.decode_piece(t, &mut state, &mut sink).map_err(|e| anyhow!("{e}"))?;
                write!(out, "{sink}")?;
                out.flush()?;
            }
        } else {
            let ids = int8.translate_ids(&src, beam)?;
            for &t in &ids {
                tok.decode_piece(t, &mut state, &mut sink).map_err(|e| anyhow!("{e}"))?;
            }
            write!(out, "{sink}")?;
        }
        writeln!(out)?;
        Ok(())
    };
    if sentences.is_empty() {
        for line in std::io::stdin().lock().lines() {
            one(&line?)?;
        }
    } else {
        for s in sentences {
            one(s)?;
        }
    }
    Ok(())
}

fn eval(model_path: &Path, export: &Path, src: &Path, reference: &Path, hyps: Option<&Path>) -> Result<()> {
    let blob = Aligned::read(model_path)?;
    let model = Model::parse(blob.bytes()).map_err(|e| anyhow!("{}: {e}", model_path.display()))?;
    let ex = Export::load(export)?;
    let fm = ex.float_model();
    let (s, r) = convert::read_pair(src, reference, usize::MAX)?;
    let a = convert::agreement(&model, &fm, model.tokenizer(), &s, &r)?;
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
    if let Some(h) = hyps {
        std::fs::write(h, a.int8_hyps.join("\n") + "\n")?;
    }
    Ok(())
}
