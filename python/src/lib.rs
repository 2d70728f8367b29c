//! `picoformer._native`: the converter and the int8 runtime in process, for the `picoformer`
//! Python package (python/picoformer/__init__.py wraps it). Every call goes through the same
//! functions as the CLI (`picoformer-tools`), so the results are the CLI's, bit for bit.
//! Errors are `picoformer.Error` with the message the CLI prints after `error: `, and `kind`,
//! the runtime's typed error (`"TokenOutOfRange"`, …) when one caused it.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use ouroboros::self_referencing;
use picoformer::align::AlignedBuf;
use picoformer::blob::{InputKind, ModelKind};
use picoformer::tokenizer::DecodeState;
use picoformer::{Classifier, Generator, Model, Sampler, TokenId, Translator};
use picoformer_tools::calibrate::text_ids;
use picoformer_tools::convert::{self, ConvertOpts};
use picoformer_tools::eval::Quality;
use picoformer_tools::generate::{self, require_kind, GenerateOpts};
use picoformer_tools::host::{detok, pieces, quantize_window, read_aligned, source_ids, Clf, Int8, Lm};
use picoformer_tools::translate::{self, Lines};
use pyo3::create_exception;
use pyo3::prelude::*;
use pyo3::types::PyDict;

create_exception!(picoformer, Error, pyo3::exceptions::PyException, "An error of the picoformer converter or runtime; `kind` names the runtime's typed error, if one caused it.");

/// `e` as a `picoformer.Error`, its message the CLI's.
fn py_err(e: anyhow::Error) -> PyErr {
    let kind = e.chain().find_map(|c| c.downcast_ref::<picoformer::Error>()).map(|k| {
        let name = format!("{k:?}");
        name.split(|ch: char| !ch.is_alphanumeric()).next().unwrap_or_default().to_owned()
    });
    let err = Error::new_err(format!("{e:#}"));
    Python::with_gil(|py| {
        let _ = err.value(py).setattr("kind", kind);
    });
    err
}

trait Py<T> {
    fn py(self) -> PyResult<T>;
}

impl<T, E: Into<anyhow::Error>> Py<T> for std::result::Result<T, E> {
    fn py(self) -> PyResult<T> {
        self.map_err(|e| py_err(e.into()))
    }
}

/// A blob and the model parsed from it.
#[self_referencing]
struct Loaded {
    blob: AlignedBuf,
    #[borrows(blob)]
    #[covariant]
    model: Model<'this>,
}

/// An int8 model, loaded from a `.pico` blob.
#[pyclass(name = "Model", module = "picoformer", frozen, subclass)]
struct PyModel {
    loaded: Arc<Loaded>,
    path: PathBuf,
}

impl PyModel {
    fn model(&self) -> &Model<'_> {
        self.loaded.borrow_model()
    }

    fn require(&self, want: ModelKind, command: &str) -> PyResult<()> {
        require_kind(self.model(), &self.path, want, command).py()
    }
}

fn generate_opts(max_new: usize, sample: bool, seed: u64, temperature: f64, top_k: usize, top_p: f64, beam: usize) -> Result<GenerateOpts> {
    let beam = translate::beam_width(&beam.to_string()).map_err(|e| anyhow!("beam={beam}: {e}"))?;
    let sampling = sample.then(|| generate::sampling(temperature, top_k, top_p)).transpose()?;
    Ok(GenerateOpts { max_new, sampling, seed, beam })
}

#[pymethods]
impl PyModel {
    #[new]
    fn new(path: PathBuf) -> PyResult<Self> {
        let blob = read_aligned(&path).py()?;
        let loaded = LoadedTryBuilder { blob, model_builder: |b: &AlignedBuf| Model::parse(b.bytes()) }.try_build().map_err(|e| anyhow::Error::new(e).context(path.display().to_string())).py()?;
        Ok(PyModel { loaded: Arc::new(loaded), path })
    }

    /// `"encoder-decoder"`, `"decoder-only"` or `"encoder-only"`.
    #[getter]
    fn kind(&self) -> &'static str {
        convert::kind_name(self.model().config())
    }

    /// The blob's shape: widths, layers, vocabulary, control ids.
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = self.model().config();
        let d = PyDict::new(py);
        d.set_item("kind", convert::kind_name(c))?;
        d.set_item("input", if c.input == InputKind::Features { "features" } else { "tokens" })?;
        for (k, v) in [("d_model", c.d_model), ("nhead", c.nhead), ("n_kv_heads", c.n_kv_heads), ("n_enc", c.n_enc), ("n_dec", c.n_dec), ("d_ff", c.d_ff), ("vocab", c.vocab), ("max_len", c.max_len), ("n_features", c.n_features), ("n_outputs", c.n_outputs)] {
            d.set_item(k, v)?;
        }
        for (k, v) in [("pad", c.pad), ("unk", c.unk), ("bos", c.bos), ("eos", c.eos)] {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// The arena the model runs in, in bytes, for beam width `beam` (1: greedy).
    #[pyo3(signature = (beam = 1))]
    fn arena_bytes(&self, beam: usize) -> usize {
        let m = self.model();
        match m.config().kind {
            ModelKind::EncoderDecoder => Translator::arena_bytes(m, beam),
            ModelKind::DecoderOnly => Generator::arena_bytes(m, beam),
            ModelKind::EncoderOnly => Classifier::arena_bytes(m),
        }
    }

    /// The pieces of `text` (no bos, no eos).
    fn tokenize(&self, text: &str) -> PyResult<Vec<TokenId>> {
        pieces(self.model().tokenizer(), text).py()
    }

    /// The text of `ids` (control ids print nothing).
    fn detokenize(&self, ids: Vec<TokenId>) -> PyResult<String> {
        detok(self.model().tokenizer(), &ids).py()
    }

    /// A translator's source ids for `text`: pieces cut at `max_len - 1`, then eos.
    fn source_ids(&self, text: &str) -> PyResult<Vec<TokenId>> {
        let m = self.model();
        source_ids(m.tokenizer(), text, m.config().max_len).py()
    }

    /// A language model's or token classifier's input ids for `text`: bos, then the pieces
    /// (as the converter's test vectors have them).
    fn prompt_ids(&self, text: &str) -> PyResult<Vec<TokenId>> {
        let m = self.model();
        let max = if m.config().kind == ModelKind::DecoderOnly { m.config().max_len - 1 } else { m.config().max_len };
        text_ids(m.tokenizer(), text, max, false).py()
    }

    /// `picoformer translate`'s line for `text`.
    #[pyo3(signature = (text, beam = 1))]
    fn translate(&self, py: Python<'_>, text: &str, beam: usize) -> PyResult<String> {
        self.require(ModelKind::EncoderDecoder, "translate")?;
        let beam = translate::beam_width(&beam.to_string()).map_err(|e| anyhow!("beam={beam}: {e}")).py()?;
        let out = py.allow_threads(|| -> Result<Vec<u8>> {
            let mut out = Vec::new();
            Lines::new(self.model(), beam).translate("sentence", 1, text, &mut out)?;
            Ok(out)
        });
        String::from_utf8(out.py()?).py()
    }

    /// Greedy (beam 1) or beam-search output ids for source `ids`, eos included when produced.
    #[pyo3(signature = (ids, beam = 1))]
    fn translate_ids(&self, py: Python<'_>, ids: Vec<TokenId>, beam: usize) -> PyResult<Vec<TokenId>> {
        self.require(ModelKind::EncoderDecoder, "translate")?;
        py.allow_threads(|| Int8::new(self.model(), beam.max(1)).translate_ids(&ids, beam)).py()
    }

    /// `picoformer generate`'s continuation of `prompt` (the line after the prompt).
    #[pyo3(signature = (prompt, max_new = 20, sample = false, seed = 1, temperature = 1.0, top_k = 0, top_p = 1.0, beam = 1))]
    #[allow(clippy::too_many_arguments)]
    fn generate(&self, py: Python<'_>, prompt: &str, max_new: usize, sample: bool, seed: u64, temperature: f64, top_k: usize, top_p: f64, beam: usize) -> PyResult<String> {
        self.require(ModelKind::DecoderOnly, "generate")?;
        let o = generate_opts(max_new, sample, seed, temperature, top_k, top_p, beam).py()?;
        let out = py.allow_threads(|| -> Result<Vec<u8>> {
            let mut out = Vec::new();
            generate::generate_one(self.model(), &mut Lm::new(self.model(), o.beam), &o, 1, prompt, &mut out)?;
            Ok(out)
        });
        let line = String::from_utf8(out.py()?).py()?;
        Ok(line.strip_prefix(prompt).unwrap_or(&line).to_owned())
    }

    /// The greedy continuation of prompt `ids` (bos first), at most `max_new` tokens, eos
    /// included when produced.
    #[pyo3(signature = (ids, max_new = 20))]
    fn generate_ids(&self, py: Python<'_>, ids: Vec<TokenId>, max_new: usize) -> PyResult<Vec<TokenId>> {
        self.require(ModelKind::DecoderOnly, "generate")?;
        py.allow_threads(|| Lm::new(self.model(), 1).generate(&ids, max_new)).py()
    }

    /// Translate (encoder-decoder, greedy) or continue (decoder-only) `text`, one decoded
    /// piece at a time: the pieces join to `translate(text)` or `generate(text, ...)`.
    #[pyo3(signature = (text, max_new = 20, sample = false, seed = 1, temperature = 1.0, top_k = 0, top_p = 1.0))]
    #[allow(clippy::too_many_arguments)]
    fn stream(&self, text: &str, max_new: usize, sample: bool, seed: u64, temperature: f64, top_k: usize, top_p: f64) -> PyResult<Stream> {
        let m = self.model();
        let c = *m.config();
        let (ids, state, sampler, arena) = match c.kind {
            ModelKind::EncoderDecoder => {
                let empty = pieces(m.tokenizer(), text).py()?.is_empty();
                let ids = if empty { Vec::new() } else { source_ids(m.tokenizer(), text, c.max_len).py()? };
                (ids, DecodeState::default(), None, Translator::arena_bytes(m, 1))
            }
            ModelKind::DecoderOnly => {
                let o = generate_opts(max_new, sample, seed, temperature, top_k, top_p, 1).py()?;
                let ids = generate::prompt_ids(m, 1, text).py()?;
                let state = picoformer_tools::host::primed(m.tokenizer(), &ids).py()?;
                (ids, state, o.sampling.map(|s| Sampler::new(s, o.seed)), Generator::arena_bytes(m, 1))
            }
            ModelKind::EncoderOnly => return Err(py_err(anyhow!("{}: `stream` needs a translator or a language model, and this is an encoder-only classifier: use `classify`", self.path.display()))),
        };
        let done = ids.is_empty();
        let cell = StreamCellTryBuilder {
            loaded: self.loaded.clone(),
            arena: AlignedBuf::zeroed(arena),
            sess_builder: |l: &Arc<Loaded>, arena: &mut AlignedBuf| -> Result<Sess<'_>> {
                let m = l.borrow_model();
                if done {
                    return Ok(Sess::Done);
                }
                Ok(match m.config().kind {
                    ModelKind::EncoderDecoder => {
                        let mut t = Translator::new(m, arena.bytes_mut(), 1)?;
                        t.encode(&ids)?;
                        Sess::Translate(t)
                    }
                    _ => {
                        let mut g = Generator::new(m, arena.bytes_mut(), 1)?;
                        g.prompt(&ids)?;
                        Sess::Generate { g, sampler, left: max_new }
                    }
                })
            },
        }
        .try_build()
        .py()?;
        Ok(Stream { cell, state, finished: false })
    }

    /// A feature window quantized to the model's int16 input (`(frames · n_features)` values,
    /// frame after frame).
    fn quantize_features(&self, window: Vec<f32>) -> Vec<i16> {
        quantize_window(self.model(), &window)
    }

    /// The head's raw int32 outputs for a feature window (flat, frame after frame) or a text.
    #[pyo3(signature = (window = None, text = None))]
    fn outputs_raw(&self, py: Python<'_>, window: Option<Vec<f32>>, text: Option<&str>) -> PyResult<Vec<i32>> {
        self.require(ModelKind::EncoderOnly, "classify")?;
        let m = self.model();
        let c = *m.config();
        py.allow_threads(|| -> Result<Vec<i32>> {
            let mut clf = Clf::new(m);
            let mut k = clf.session()?;
            Ok(match (c.input, window, text) {
                (InputKind::Features, Some(w), None) => {
                    if w.is_empty() || !w.len().is_multiple_of(c.n_features) {
                        bail!("{} values are not whole frames of {}", w.len(), c.n_features);
                    }
                    k.classify_features(&quantize_window(m, &w))?.to_vec()
                }
                (InputKind::Tokens, None, Some(t)) => k.classify_tokens(&text_ids(m.tokenizer(), t, c.max_len, false)?)?.to_vec(),
                (InputKind::Features, ..) => bail!("this classifier reads feature windows (frames of {} values), not text", c.n_features),
                _ => bail!("this classifier reads text, not feature windows"),
            })
        })
        .py()
    }

    /// One output step in real units (`outputs_raw · output_unit`).
    #[getter]
    fn output_unit(&self) -> f64 {
        self.model().output_scale().to_real()
    }

    fn __repr__(&self) -> String {
        format!("picoformer.Model({:?}: {})", self.path.display().to_string(), convert::kind_name(self.model().config()))
    }
}

/// A streaming session's state.
#[allow(clippy::large_enum_variant)] // one per stream, inside a Python object on the heap
enum Sess<'a> {
    Translate(Translator<'a, 'a>),
    Generate { g: Generator<'a, 'a>, sampler: Option<Sampler>, left: usize },
    Done,
}

#[self_referencing]
struct StreamCell {
    loaded: Arc<Loaded>,
    arena: AlignedBuf,
    #[borrows(loaded, mut arena)]
    #[not_covariant]
    sess: Sess<'this>,
}

/// The pieces of one translation or continuation, decoded as they come.
#[pyclass(module = "picoformer", unsendable)]
struct Stream {
    cell: StreamCell,
    state: DecodeState,
    finished: bool,
}

#[pymethods]
impl Stream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self) -> PyResult<Option<String>> {
        loop {
            if self.finished {
                return Ok(None);
            }
            let state = &mut self.state;
            let step = self.cell.with_mut(|f| -> Result<Option<String>> {
                let tok = f.loaded.borrow_model().tokenizer();
                let next = match f.sess {
                    Sess::Translate(t) => t.next_token()?,
                    Sess::Generate { g, sampler, left } => {
                        if *left == 0 {
                            None
                        } else {
                            *left -= 1;
                            match sampler {
                                Some(s) => g.sample_next(s)?,
                                None => g.next_token()?,
                            }
                        }
                    }
                    Sess::Done => None,
                };
                let mut s = String::new();
                match next {
                    Some(t) => tok.decode_piece(t, state, &mut s)?,
                    None => {
                        // a translation's unfinished UTF-8 ends as U+FFFD, as the CLI prints it
                        if matches!(f.sess, Sess::Translate(_)) {
                            state.finish(&mut s)?;
                        }
                        *f.sess = Sess::Done;
                        return Ok(if s.is_empty() { None } else { Some(s) });
                    }
                }
                Ok(Some(s))
            });
            match step.py()? {
                Some(s) if s.is_empty() => continue,
                Some(s) => {
                    if self.cell.with_sess(|s| matches!(s, Sess::Done)) {
                        self.finished = true;
                    }
                    return Ok(Some(s));
                }
                None => {
                    self.finished = true;
                    return Ok(None);
                }
            }
        }
    }
}

/// `picoformer convert`: the blob, its test vectors and its report; returns the report's figures.
#[pyfunction(name = "convert")]
#[pyo3(signature = (export, out, calib = None, calib_src = None, calib_tgt = None, calib_count = 300, test = None, test_src = None, test_ref = None, labels = None, prompts = None, vectors = 8, layer_sentences = 100, flash_budget = None))]
#[allow(clippy::too_many_arguments)]
fn convert_py<'py>(
    py: Python<'py>,
    export: PathBuf,
    out: PathBuf,
    calib: Option<PathBuf>,
    calib_src: Option<PathBuf>,
    calib_tgt: Option<PathBuf>,
    calib_count: usize,
    test: Option<PathBuf>,
    test_src: Option<PathBuf>,
    test_ref: Option<PathBuf>,
    labels: Option<PathBuf>,
    prompts: Option<PathBuf>,
    vectors: usize,
    layer_sentences: usize,
    flash_budget: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    // `calib` is what the model calibrates on: a translator's sources, or texts, or windows
    let calib_src = calib_src.or_else(|| calib.clone());
    let o = ConvertOpts { export, out: out.clone(), calib_src, calib_tgt, calib, calib_count, test_src, test_ref, test, labels, prompts, vectors, layer_sentences, scales: picoformer_tools::clip::ScaleRule::default(), tune_count: 100, weights: picoformer_tools::quantize::WeightRule::default(), flash_budget, budget_sweep: Vec::new(), sensitivity_inputs: 32 };
    let s = py.allow_threads(|| convert::run(&o)).py()?;
    let d = PyDict::new(py);
    let stem = out.with_extension("");
    d.set_item("blob", &out)?;
    d.set_item("report", &s.report.markdown)?;
    d.set_item("sqnr_svg", &s.report.svg)?;
    d.set_item("vectors", stem.with_extension("vectors.bin"))?;
    d.set_item("vectors_safetensors", stem.with_extension("vectors.safetensors"))?;
    d.set_item("config", &s.config_line)?;
    d.set_item("reference_max_diff", s.reference_diff)?;
    d.set_item("calibration", &s.calibration)?;
    let z = &s.sizes;
    d.set_item("blob_bytes", z.blob)?;
    d.set_item("weight_bytes", z.weights)?;
    d.set_item("vocab_bytes", z.vocab)?;
    d.set_item("arena_bytes", z.arena_greedy)?;
    if z.beam > 0 {
        d.set_item("beam", z.beam)?;
        d.set_item("arena_bytes_beam", z.arena_beam)?;
    }
    d.set_item("seconds", s.seconds)?;
    match &s.quality {
        Some(Quality::Translation(a)) => {
            d.set_item("test_sentences", a.sentences)?;
            d.set_item("bleu_int8", a.bleu_int8.score)?;
            d.set_item("bleu_float", a.bleu_float.score)?;
            d.set_item("identical", a.identical)?;
        }
        Some(Quality::Language(q)) => {
            d.set_item("test_texts", q.texts)?;
            d.set_item("perplexity_int8", q.ppl_int8)?;
            d.set_item("perplexity_float", q.ppl_float)?;
            d.set_item("prompts", q.prompts)?;
            d.set_item("identical", q.identical)?;
        }
        Some(Quality::Classification(q, labels)) => {
            d.set_item("test_windows", q.windows)?;
            d.set_item("labels", *labels)?;
            d.set_item("correct_int8", q.correct_int8)?;
            d.set_item("correct_float", q.correct_float)?;
            d.set_item("agree", q.agree)?;
        }
        None => {}
    }
    Ok(d)
}

/// The class of a classifier's outputs: the runtime's argmax (the first largest).
#[pyfunction]
fn argmax(outputs: Vec<i32>) -> usize {
    picoformer::argmax(&outputs)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("Error", m.py().get_type::<Error>())?;
    m.add_class::<PyModel>()?;
    m.add_class::<Stream>()?;
    m.add_function(wrap_pyfunction!(convert_py, m)?)?;
    m.add_function(wrap_pyfunction!(argmax, m)?)?;
    Ok(())
}
