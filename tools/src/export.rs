//! The export directory (docs/export-format.md): `config.json`, `model.safetensors`,
//! `tokenizer.model` (token models) and `reference.safetensors` (optional), loaded and checked
//! with messages that name the file and the field. Two layouts map onto one [`FloatModel`]:
//! PyTorch's `nn.Transformer` names (the encoder-decoder, §1), and the generic layer names of
//! the encoder-only and decoder-only kinds (§2).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use picoformer::blob::{self, ActKind, Config, HeadKind, InputKind, ModelKind, NormKind, Pooling, PosKind, TokenizerKind};
use picoformer::reference::{FAttention, FFeedForward, FLayer, FLinear, FNorm, FSublayer, FloatModel};
use picoformer::tokenizer::ModelKind as SpmKind;
use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

use crate::implied::{self, ShapeFields};
use crate::import;
use crate::spm::SpmModel;

/// Where the tokenizer comes from: `tokenizer.model` of an export, or an importer's.
enum Tok {
    File(PathBuf),
    Given(SpmModel, PathBuf),
}

/// `config.json` of the `nn.Transformer` layout (§1).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerConfig {
    pub d_model: usize,
    pub nhead: usize,
    pub num_encoder_layers: usize,
    pub num_decoder_layers: usize,
    pub dim_feedforward: usize,
    pub activation: String,
    pub norm_first: bool,
    pub layer_norm_eps: f64,
    pub vocab_size: usize,
    pub max_len: usize,
    pub pad_id: u16,
    pub unk_id: u16,
    pub bos_id: u16,
    pub eos_id: u16,
    pub tie_embeddings: bool,
    pub scale_embedding: bool,
    pub positional: String,
    /// A norm after each stack (`transformer.encoder.norm`, `transformer.decoder.norm`);
    /// absent: `true`.
    pub final_norm: Option<bool>,
}

/// `config.json` of the generic layout (§2); absent fields take the document's defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericConfig {
    pub model_type: String,
    pub d_model: usize,
    pub nhead: usize,
    pub num_kv_heads: Option<usize>,
    pub num_layers: usize,
    pub dim_feedforward: usize,
    pub norm: Option<String>,
    pub norm_eps: Option<f64>,
    pub norm_first: Option<bool>,
    pub final_norm: Option<bool>,
    pub activation: String,
    pub bias: Option<bool>,
    pub positional: String,
    pub rope_theta: Option<f64>,
    pub max_len: usize,
    pub input: Option<String>,
    pub n_features: Option<usize>,
    pub vocab_size: Option<usize>,
    pub pad_id: Option<u16>,
    pub unk_id: Option<u16>,
    pub bos_id: Option<u16>,
    pub eos_id: Option<u16>,
    pub scale_embedding: Option<bool>,
    pub tie_embeddings: Option<bool>,
    pub pooling: Option<String>,
    pub head: Option<String>,
    pub n_outputs: Option<usize>,
    pub labels: Option<Vec<String>>,
    /// Encoder-only: a norm (`embed_norm.*`) over the input rows before the first layer.
    pub embed_norm: Option<bool>,
    /// Encoder-only: `tanh(pooler(pooled))` before the head (`pooler.*`, `(d, d)`).
    pub pooler: Option<bool>,
}

/// A tensor name and its shape.
type Named = (String, Vec<usize>);

/// Which names the weights use.
#[derive(Debug, Clone)]
pub enum ExportLayout {
    Transformer(TransformerConfig),
    Generic(Box<GenericConfig>),
}

/// A loaded export: owned f32 tensors by name, and the config the blob will carry.
pub struct Export {
    pub dir: PathBuf,
    pub layout: ExportLayout,
    pub blob_config: Config,
    pub tensors: HashMap<String, Vec<f32>>,
    /// Token models.
    pub spm: Option<SpmModel>,
    pub scale_embedding: bool,
    pub rope_theta: f64,
    pub norm_eps: f64,
    /// The activation as `config.json` names it.
    pub activation: String,
    /// Class names (encoder-only classification), if given.
    pub labels: Vec<String>,
    zeros: Vec<f32>,
}

/// One `config.json` field's error.
fn field_err(cfg_path: &Path, name: &str, msg: String) -> anyhow::Error {
    anyhow!("{}: field `{name}`: {msg}", cfg_path.display())
}

/// Parse one enum-like string field.
fn pick<T: Copy>(cfg_path: &Path, name: &str, value: &str, options: &[(&str, T)]) -> Result<T> {
    match options.iter().find(|(k, _)| *k == value) {
        Some(&(_, v)) => Ok(v),
        None => {
            let names: Vec<String> = options.iter().map(|(k, _)| format!("{k:?}")).collect();
            Err(field_err(cfg_path, name, format!("unsupported {value:?} (supported: {})", names.join(", "))))
        }
    }
}

impl Export {
    /// Load an export directory, or a Hugging Face `save_pretrained` directory (its
    /// `model_type` is a family of [`import::FAMILIES`]).
    pub fn load(dir: &Path) -> Result<Export> {
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).with_context(|| format!("reading {}", cfg_path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{}: not JSON", cfg_path.display()))?;
        if import::is_hf(&value) {
            let imp = import::import(dir, &value)?;
            let tok = Tok::Given(imp.spm, imp.spm_path);
            let mut ex = match imp.layout {
                import::Layout::Transformer(c) => Self::transformer(dir, &c, &cfg_path, None, tok)?,
                import::Layout::Generic(c) => Self::generic(dir, &c, &cfg_path, tok)?,
            };
            ex.tensors = imp.tensors;
            ex.check_names(&imp.weights_path)?;
            ex.blob_config.validate().map_err(|e| anyhow!("{}: {e}", cfg_path.display()))?;
            return Ok(ex);
        }
        let layout = if value.get("model_type").is_some() {
            ExportLayout::Generic(Box::new(serde_json::from_value(value).with_context(|| format!("{}: not a valid export config", cfg_path.display()))?))
        } else {
            ExportLayout::Transformer(serde_json::from_value(value).with_context(|| format!("{}: not a valid export config", cfg_path.display()))?)
        };
        let st_path = dir.join("model.safetensors");
        let bytes = std::fs::read(&st_path).with_context(|| format!("reading {}", st_path.display()))?;
        let st = SafeTensors::deserialize(&bytes).with_context(|| format!("{}: not a safetensors file", st_path.display()))?;
        let mut ex = match &layout {
            ExportLayout::Transformer(c) => Self::transformer(dir, c, &cfg_path, Some((&st, &st_path)), Tok::File(dir.join("tokenizer.model")))?,
            ExportLayout::Generic(c) => Self::generic(dir, c, &cfg_path, Tok::File(dir.join("tokenizer.model")))?,
        };
        ex.tensors = load_f32(&st, &st_path)?;
        ex.check_names(&st_path)?;
        ex.blob_config.validate().map_err(|e| anyhow!("{}: {e}", cfg_path.display()))?;
        Ok(ex)
    }

    fn empty(dir: &Path, layout: ExportLayout, blob_config: Config, spm: Option<SpmModel>) -> Export {
        let c = &blob_config;
        let zeros = vec![0.0; [c.vocab, c.d_ff, c.d_model, c.n_outputs].into_iter().max().unwrap_or(0)];
        Export {
            dir: dir.to_path_buf(),
            layout,
            blob_config,
            tensors: HashMap::new(),
            spm,
            scale_embedding: false,
            rope_theta: 10000.0,
            norm_eps: 1e-5,
            activation: String::new(),
            labels: Vec::new(),
            zeros,
        }
    }

    /// The tokenizer, checked against the config's vocabulary and control ids; the tokenizer's
    /// part of the blob's flags.
    fn tokenizer(tok: Tok, cfg_path: &Path, vocab: usize, ids: [(&str, Option<u16>); 4]) -> Result<(SpmModel, u32, TokenizerKind)> {
        let (spm, spm_path) = match tok {
            Tok::File(p) => (SpmModel::load(&p)?, p),
            Tok::Given(s, p) => (s, p),
        };
        if spm.normalizer_name != "identity" && spm.wordpiece.is_none() {
            eprintln!(
                "warning: {}: normalizer {:?}; the device tokenizer applies identity normalization, so ids can differ on text that normalization would change",
                spm_path.display(),
                spm.normalizer_name
            );
        }
        if spm.pieces.len() != vocab {
            return Err(field_err(cfg_path, "vocab_size", format!("{vocab} but {} has {} pieces", spm_path.display(), spm.pieces.len())));
        }
        let spm_ids = [spm.pad, spm.unk, spm.bos, spm.eos];
        for ((name, cfg_id), spm_id) in ids.into_iter().zip(spm_ids) {
            if let Some(id) = cfg_id.filter(|&id| id != spm_id) {
                return Err(field_err(cfg_path, name, format!("{id} but {} says {spm_id}", spm_path.display())));
            }
        }
        let mut flags = 0;
        if spm.add_dummy_prefix {
            flags |= blob::FLAG_ADD_DUMMY_PREFIX;
        }
        if spm.remove_extra_whitespaces {
            flags |= blob::FLAG_REMOVE_EXTRA_WS;
        }
        let kind = match spm.kind {
            SpmKind::Bpe => TokenizerKind::Bpe,
            SpmKind::WordPiece => TokenizerKind::WordPiece,
            _ => TokenizerKind::Unigram,
        };
        if let Some(w) = &spm.wordpiece {
            if w.lower_case {
                flags |= blob::FLAG_LOWER_CASE;
            }
            if w.strip_accents {
                flags |= blob::FLAG_STRIP_ACCENTS;
            }
        }
        if spm.byte_fallback {
            flags |= blob::FLAG_BYTE_FALLBACK;
        }
        Ok((spm, flags, kind))
    }

    /// `st`: the weights file, whose shapes say which config field is wrong (exports only).
    fn transformer(dir: &Path, c: &TransformerConfig, cfg_path: &Path, st: Option<(&SafeTensors<'_>, &Path)>, tok: Tok) -> Result<Export> {
        let act = pick(cfg_path, "activation", &c.activation, &[("relu", ActKind::Relu), ("gelu", ActKind::Gelu), ("silu", ActKind::Silu)])?;
        let positions = pick(cfg_path, "positional", &c.positional, &[("sinusoidal", PosKind::Sinusoidal), ("learned", PosKind::Learned)])?;
        #[allow(clippy::neg_cmp_op_on_partial_ord)] // also rejects NaN
        if !(c.layer_norm_eps > 0.0) {
            return Err(field_err(cfg_path, "layer_norm_eps", "must be positive".into()));
        }
        let (spm, tok_flags, tokenizer) = Self::tokenizer(tok, cfg_path, c.vocab_size, [("pad_id", Some(c.pad_id)), ("unk_id", Some(c.unk_id)), ("bos_id", Some(c.bos_id)), ("eos_id", Some(c.eos_id))])?;
        let mut flags = tok_flags;
        if c.final_norm.unwrap_or(true) {
            flags |= blob::FLAG_FINAL_NORM;
        }
        if c.norm_first {
            flags |= blob::FLAG_NORM_FIRST;
        }
        if c.tie_embeddings {
            flags |= blob::FLAG_TIED;
        }
        let blob_config = Config {
            kind: ModelKind::EncoderDecoder,
            act,
            positions,
            tokenizer,
            d_model: c.d_model,
            nhead: c.nhead,
            n_kv_heads: c.nhead,
            n_enc: c.num_encoder_layers,
            n_dec: c.num_decoder_layers,
            d_ff: c.dim_feedforward,
            vocab: c.vocab_size,
            max_len: c.max_len,
            pad: c.pad_id,
            unk: c.unk_id,
            bos: c.bos_id,
            eos: c.eos_id,
            flags,
            ..Config::default()
        };
        // the fields the shapes determine first, so a wrong one is named, not what it breaks
        let fields = ShapeFields {
            d_model: c.d_model,
            dim_feedforward: c.dim_feedforward,
            vocab_size: c.vocab_size,
            num_encoder_layers: c.num_encoder_layers,
            num_decoder_layers: c.num_decoder_layers,
            tie_embeddings: c.tie_embeddings,
        };
        if let Some((st, st_path)) = st {
            implied::check(&fields, st, cfg_path, st_path)?;
        }
        // before any size from the config is allocated
        blob_config.validate().map_err(|e| anyhow!("{}: {e}", cfg_path.display()))?;
        let mut ex = Self::empty(dir, ExportLayout::Transformer(c.clone()), blob_config, Some(spm));
        ex.scale_embedding = c.scale_embedding;
        ex.norm_eps = c.layer_norm_eps;
        ex.activation = c.activation.clone();
        Ok(ex)
    }

    fn generic(dir: &Path, c: &GenericConfig, cfg_path: &Path, tok: Tok) -> Result<Export> {
        let kind = pick(cfg_path, "model_type", &c.model_type, &[("encoder-only", ModelKind::EncoderOnly), ("decoder-only", ModelKind::DecoderOnly)])?;
        let norm = pick(cfg_path, "norm", c.norm.as_deref().unwrap_or("layernorm"), &[("layernorm", NormKind::LayerNorm), ("rmsnorm", NormKind::RmsNorm)])?;
        let act = pick(cfg_path, "activation", &c.activation, &[("relu", ActKind::Relu), ("gelu", ActKind::Gelu), ("gelu_tanh", ActKind::GeluTanh), ("silu", ActKind::Silu), ("swiglu", ActKind::SwiGlu)])?;
        let positions = pick(cfg_path, "positional", &c.positional, &[("sinusoidal", PosKind::Sinusoidal), ("learned", PosKind::Learned), ("rope", PosKind::Rope), ("none", PosKind::None)])?;
        let input = pick(cfg_path, "input", c.input.as_deref().unwrap_or("tokens"), &[("tokens", InputKind::Tokens), ("features", InputKind::Features)])?;
        let pooling = pick(cfg_path, "pooling", c.pooling.as_deref().unwrap_or("mean"), &[("first", Pooling::First), ("mean", Pooling::Mean)])?;
        let head = pick(cfg_path, "head", c.head.as_deref().unwrap_or("classification"), &[("classification", HeadKind::Classification), ("regression", HeadKind::Regression)])?;
        let eps = c.norm_eps.unwrap_or(1e-5);
        #[allow(clippy::neg_cmp_op_on_partial_ord)] // also rejects NaN
        if !(eps > 0.0) {
            return Err(field_err(cfg_path, "norm_eps", "must be positive".into()));
        }
        let mut flags = 0;
        if c.norm_first.unwrap_or(true) {
            flags |= blob::FLAG_NORM_FIRST;
        }
        if c.final_norm.unwrap_or(true) {
            flags |= blob::FLAG_FINAL_NORM;
        }
        if c.tie_embeddings.unwrap_or(false) {
            flags |= blob::FLAG_TIED;
        }
        if c.embed_norm.unwrap_or(false) {
            flags |= blob::FLAG_EMBED_NORM;
        }
        if c.pooler.unwrap_or(false) {
            flags |= blob::FLAG_POOLER;
        }
        let need = |name: &str, v: Option<usize>| v.ok_or_else(|| field_err(cfg_path, name, "missing".into()));
        let (spm, vocab, tokenizer) = if input == InputKind::Tokens {
            let vocab = need("vocab_size", c.vocab_size)?;
            let (spm, f, t) = Self::tokenizer(tok, cfg_path, vocab, [("pad_id", c.pad_id), ("unk_id", c.unk_id), ("bos_id", c.bos_id), ("eos_id", c.eos_id)])?;
            flags |= f;
            (Some(spm), vocab, t)
        } else {
            (None, 0, TokenizerKind::None)
        };
        let ids = spm.as_ref().map_or([0; 4], |s| [s.pad, s.unk, s.bos, s.eos]);
        let (n_enc, n_dec) = if kind == ModelKind::EncoderOnly { (c.num_layers, 0) } else { (0, c.num_layers) };
        let blob_config = Config {
            kind,
            input,
            norm,
            act,
            positions,
            pooling,
            head,
            tokenizer,
            d_model: c.d_model,
            nhead: c.nhead,
            n_kv_heads: c.num_kv_heads.unwrap_or(c.nhead),
            n_enc,
            n_dec,
            d_ff: c.dim_feedforward,
            vocab,
            max_len: c.max_len,
            n_features: if input == InputKind::Features { need("n_features", c.n_features)? } else { 0 },
            n_outputs: if kind == ModelKind::EncoderOnly { need("n_outputs", c.n_outputs)? } else { 0 },
            pad: ids[0],
            unk: ids[1],
            bos: ids[2],
            eos: ids[3],
            flags,
        };
        blob_config.validate().map_err(|e| anyhow!("{}: {e}", cfg_path.display()))?;
        let mut ex = Self::empty(dir, ExportLayout::Generic(Box::new(c.clone())), blob_config, spm);
        ex.scale_embedding = c.scale_embedding.unwrap_or(false);
        ex.rope_theta = c.rope_theta.unwrap_or(10000.0);
        ex.norm_eps = eps;
        ex.activation = c.activation.clone();
        ex.labels = c.labels.clone().unwrap_or_default();
        Ok(ex)
    }

    /// Every tensor the config calls for, with its shape; and the ones it allows.
    fn expected(&self) -> (Vec<Named>, Vec<Named>) {
        let c = &self.blob_config;
        let (d, f, v) = (c.d_model, c.d_ff, c.vocab);
        let mut e: Vec<(String, Vec<usize>)> = Vec::new();
        let mut optional = Vec::new();
        match &self.layout {
            ExportLayout::Transformer(t) => {
                let mut attn = |p: &str| {
                    e.push((format!("{p}.in_proj_weight"), vec![3 * d, d]));
                    e.push((format!("{p}.in_proj_bias"), vec![3 * d]));
                    e.push((format!("{p}.out_proj.weight"), vec![d, d]));
                    e.push((format!("{p}.out_proj.bias"), vec![d]));
                };
                for l in 0..c.n_enc {
                    attn(&format!("transformer.encoder.layers.{l}.self_attn"));
                }
                for l in 0..c.n_dec {
                    attn(&format!("transformer.decoder.layers.{l}.self_attn"));
                    attn(&format!("transformer.decoder.layers.{l}.multihead_attn"));
                }
                let mut rest = |p: String, norms: usize| {
                    e.push((format!("{p}.linear1.weight"), vec![f, d]));
                    e.push((format!("{p}.linear1.bias"), vec![f]));
                    e.push((format!("{p}.linear2.weight"), vec![d, f]));
                    e.push((format!("{p}.linear2.bias"), vec![d]));
                    for n in 1..=norms {
                        e.push((format!("{p}.norm{n}.weight"), vec![d]));
                        e.push((format!("{p}.norm{n}.bias"), vec![d]));
                    }
                };
                for l in 0..c.n_enc {
                    rest(format!("transformer.encoder.layers.{l}"), 2);
                }
                for l in 0..c.n_dec {
                    rest(format!("transformer.decoder.layers.{l}"), 3);
                }
                if c.final_norm() {
                    for p in ["transformer.encoder.norm", "transformer.decoder.norm"] {
                        e.push((format!("{p}.weight"), vec![d]));
                        e.push((format!("{p}.bias"), vec![d]));
                    }
                }
                if c.positions == PosKind::Learned {
                    e.push(("pos.weight".into(), vec![c.max_len, d]));
                }
                if t.tie_embeddings {
                    e.push(("embedding.weight".into(), vec![v, d]));
                    optional.push(("generator.bias".into(), vec![v]));
                } else {
                    e.push(("src_embedding.weight".into(), vec![v, d]));
                    e.push(("tgt_embedding.weight".into(), vec![v, d]));
                    e.push(("generator.weight".into(), vec![v, d]));
                    e.push(("generator.bias".into(), vec![v]));
                }
            }
            ExportLayout::Generic(g) => {
                let bias = g.bias.unwrap_or(true);
                let kw = c.kv_width();
                let lin = |e: &mut Vec<(String, Vec<usize>)>, name: String, n: usize, k: usize, b: bool| {
                    if b {
                        e.push((format!("{name}.bias"), vec![n]));
                    }
                    e.push((format!("{name}.weight"), vec![n, k]));
                };
                let norm = |e: &mut Vec<(String, Vec<usize>)>, name: String| {
                    e.push((format!("{name}.weight"), vec![d]));
                    if c.norm == NormKind::LayerNorm && bias {
                        e.push((format!("{name}.bias"), vec![d]));
                    }
                };
                match c.input {
                    InputKind::Tokens => e.push(("embed.weight".into(), vec![v, d])),
                    InputKind::Features => lin(&mut e, "input_proj".into(), d, c.n_features, true),
                }
                if c.positions == PosKind::Learned {
                    e.push(("pos.weight".into(), vec![c.max_len, d]));
                }
                if c.embed_norm() {
                    norm(&mut e, "embed_norm".into());
                }
                for l in 0..g.num_layers {
                    let p = format!("layers.{l}");
                    norm(&mut e, format!("{p}.attn_norm"));
                    lin(&mut e, format!("{p}.attn.q"), d, d, bias);
                    lin(&mut e, format!("{p}.attn.k"), kw, d, bias);
                    lin(&mut e, format!("{p}.attn.v"), kw, d, bias);
                    lin(&mut e, format!("{p}.attn.o"), d, d, bias);
                    norm(&mut e, format!("{p}.ffn_norm"));
                    if c.act == ActKind::SwiGlu {
                        lin(&mut e, format!("{p}.ffn.gate"), f, d, bias);
                    }
                    lin(&mut e, format!("{p}.ffn.up"), f, d, bias);
                    lin(&mut e, format!("{p}.ffn.down"), d, f, bias);
                }
                if c.final_norm() {
                    norm(&mut e, "norm".into());
                }
                match c.kind {
                    ModelKind::EncoderOnly => {
                        if c.pooler() {
                            lin(&mut e, "pooler".into(), d, d, true);
                        }
                        lin(&mut e, "head".into(), c.n_outputs, d, true)
                    }
                    _ => {
                        if !c.tied() {
                            e.push(("lm_head.weight".into(), vec![v, d]));
                        }
                        optional.push(("lm_head.bias".into(), vec![v]));
                    }
                }
            }
        }
        (e, optional)
    }

    fn check_names(&self, path: &Path) -> Result<()> {
        let (expected, optional) = self.expected();
        for (name, shape) in expected.iter().chain(optional.iter().filter(|(n, _)| self.tensors.contains_key(n))) {
            let Some(t) = self.tensors.get(name) else {
                bail!("{}: missing tensor `{name}` (config.json calls for it)", path.display());
            };
            let n: usize = shape.iter().product();
            if t.len() != n {
                bail!("{}: tensor `{name}` has {} elements, config.json implies shape {shape:?}", path.display(), t.len());
            }
        }
        let known: HashSet<&str> = expected.iter().chain(&optional).map(|(n, _)| n.as_str()).collect();
        let mut extra: Vec<&String> = self.tensors.keys().filter(|k| !known.contains(k.as_str())).collect();
        extra.sort();
        if let Some(name) = extra.first() {
            bail!(
                "{}: unexpected tensor `{name}` ({} unexpected in all): the config disagrees with the weights (layer counts, tie_embeddings, bias, activation?)",
                path.display(),
                extra.len()
            );
        }
        Ok(())
    }

    fn t(&self, name: &str) -> &[f32] {
        self.tensors.get(name).map(|v| v.as_slice()).unwrap_or(&[])
    }

    /// Rows `rows` of the linear `w`/`b` (`b` absent: zeros).
    fn linear(&self, w: &str, b: &str, rows: std::ops::Range<usize>, k: usize) -> FLinear<'_> {
        let bias = match self.tensors.get(b) {
            Some(b) => &b[rows.clone()],
            None => &self.zeros[..rows.len()],
        };
        FLinear { w: &self.t(w)[rows.start * k..rows.end * k], b: bias, k }
    }

    /// The generic layout's linear `name` (`name.weight`, `name.bias` if present).
    fn named(&self, name: &str, n: usize, k: usize) -> FLinear<'_> {
        self.linear(&format!("{name}.weight"), &format!("{name}.bias"), 0..n, k)
    }

    fn norm(&self, p: &str) -> FNorm<'_> {
        let d = self.blob_config.d_model;
        let b = self.tensors.get(&format!("{p}.bias")).map_or(&self.zeros[..d], |b| b.as_slice());
        FNorm { g: self.t(&format!("{p}.weight")), b, eps: self.norm_eps as f32, rms: self.blob_config.norm == NormKind::RmsNorm }
    }

    /// PyTorch's `nn.MultiheadAttention` (`in_proj` holds Q, K, V as rows).
    fn mha(&self, p: &str) -> FAttention<'_> {
        let d = self.blob_config.d_model;
        let (w, b) = (format!("{p}.in_proj_weight"), format!("{p}.in_proj_bias"));
        FAttention {
            q: self.linear(&w, &b, 0..d, d),
            k: self.linear(&w, &b, d..2 * d, d),
            v: self.linear(&w, &b, 2 * d..3 * d, d),
            o: self.linear(&format!("{p}.out_proj.weight"), &format!("{p}.out_proj.bias"), 0..d, d),
        }
    }

    /// Views of the float model for the reference forward pass.
    pub fn float_model(&self) -> FloatModel<'_> {
        let c = &self.blob_config;
        let (d, f, kw) = (c.d_model, c.d_ff, c.kv_width());
        let mut m = FloatModel { config: *c, scale_embedding: self.scale_embedding, rope_theta: self.rope_theta, ..Default::default() };
        match &self.layout {
            ExportLayout::Transformer(t) => {
                if t.tie_embeddings {
                    m.source = self.t("embedding.weight");
                    m.target = m.source;
                    let b = self.tensors.get("generator.bias").map_or(&self.zeros[..c.vocab], |b| b.as_slice());
                    m.output = FLinear { w: m.source, b, k: d };
                } else {
                    m.source = self.t("src_embedding.weight");
                    m.target = self.t("tgt_embedding.weight");
                    m.output = FLinear { w: self.t("generator.weight"), b: self.t("generator.bias"), k: d };
                }
                let ffn = |p: &str| FFeedForward {
                    up: self.linear(&format!("{p}.linear1.weight"), &format!("{p}.linear1.bias"), 0..f, d),
                    gate: FLinear::default(),
                    down: self.linear(&format!("{p}.linear2.weight"), &format!("{p}.linear2.bias"), 0..d, f),
                };
                for l in 0..c.n_enc {
                    let p = format!("transformer.encoder.layers.{l}");
                    m.layers[l] = FLayer {
                        attn: FSublayer { norm: self.norm(&format!("{p}.norm1")), op: self.mha(&format!("{p}.self_attn")) },
                        cross: FSublayer::default(),
                        ffn: FSublayer { norm: self.norm(&format!("{p}.norm2")), op: ffn(&p) },
                    };
                }
                for l in 0..c.n_dec {
                    let p = format!("transformer.decoder.layers.{l}");
                    m.layers[c.n_enc + l] = FLayer {
                        attn: FSublayer { norm: self.norm(&format!("{p}.norm1")), op: self.mha(&format!("{p}.self_attn")) },
                        cross: FSublayer { norm: self.norm(&format!("{p}.norm2")), op: self.mha(&format!("{p}.multihead_attn")) },
                        ffn: FSublayer { norm: self.norm(&format!("{p}.norm3")), op: ffn(&p) },
                    };
                }
                m.positions = self.t("pos.weight");
                m.enc_norm = c.final_norm().then(|| self.norm("transformer.encoder.norm"));
                m.dec_norm = c.final_norm().then(|| self.norm("transformer.decoder.norm"));
            }
            ExportLayout::Generic(g) => {
                let table = self.t("embed.weight");
                match c.input {
                    InputKind::Tokens => m.source = table,
                    InputKind::Features => m.input_proj = self.named("input_proj", d, c.n_features),
                }
                m.target = table;
                m.positions = self.t("pos.weight");
                for l in 0..g.num_layers {
                    let p = format!("layers.{l}");
                    let a = |x: &str, n| self.named(&format!("{p}.attn.{x}"), n, d);
                    m.layers[l] = FLayer {
                        attn: FSublayer { norm: self.norm(&format!("{p}.attn_norm")), op: FAttention { q: a("q", d), k: a("k", kw), v: a("v", kw), o: a("o", d) } },
                        cross: FSublayer::default(),
                        ffn: FSublayer {
                            norm: self.norm(&format!("{p}.ffn_norm")),
                            op: FFeedForward {
                                up: self.named(&format!("{p}.ffn.up"), f, d),
                                gate: if c.act == ActKind::SwiGlu { self.named(&format!("{p}.ffn.gate"), f, d) } else { FLinear::default() },
                                down: self.named(&format!("{p}.ffn.down"), d, f),
                            },
                        },
                    };
                }
                let final_norm = c.final_norm().then(|| self.norm("norm"));
                match c.kind {
                    ModelKind::EncoderOnly => {
                        m.enc_norm = final_norm;
                        m.embed_norm = c.embed_norm().then(|| self.norm("embed_norm"));
                        m.pooler = c.pooler().then(|| self.named("pooler", d, d));
                        m.output = self.named("head", c.n_outputs, d);
                    }
                    _ => {
                        m.dec_norm = final_norm;
                        let w = if c.tied() { table } else { self.t("lm_head.weight") };
                        let b = self.tensors.get("lm_head.bias").map_or(&self.zeros[..c.vocab], |b| b.as_slice());
                        m.output = FLinear { w, b, k: d };
                    }
                }
            }
        }
        m
    }
}

/// Read every tensor of a safetensors file as f32.
pub fn load_f32(st: &SafeTensors<'_>, path: &Path) -> Result<HashMap<String, Vec<f32>>> {
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            bail!("{}: tensor `{name}` is {:?}, expected F32", path.display(), view.dtype());
        }
        let data = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        out.insert(name, data);
    }
    Ok(out)
}

/// Read an integer tensor (I64, I32, U16 …) of a safetensors file as i64.
pub fn ints(st: &SafeTensors<'_>, name: &str, path: &Path) -> Result<Vec<i64>> {
    let view = st.tensor(name).with_context(|| format!("{}: missing tensor `{name}`", path.display()))?;
    let d = view.data();
    Ok(match view.dtype() {
        Dtype::I64 => d.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8]))).collect(),
        Dtype::I32 => d.chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().unwrap_or([0; 4])) as i64).collect(),
        Dtype::U16 => d.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]]) as i64).collect(),
        other => bail!("{}: tensor `{name}` is {other:?}, expected an integer type", path.display()),
    })
}

/// An f32 tensor read from a safetensors file.
pub struct Floats {
    /// Row-major.
    pub data: Vec<f32>,
    pub shape: Vec<usize>,
}

/// Read a float tensor and its shape.
pub fn floats(st: &SafeTensors<'_>, name: &str, path: &Path) -> Result<Floats> {
    let view = st.tensor(name).with_context(|| format!("{}: missing tensor `{name}`", path.display()))?;
    if view.dtype() != Dtype::F32 {
        bail!("{}: tensor `{name}` is {:?}, expected F32", path.display(), view.dtype());
    }
    Ok(Floats { data: view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(), shape: view.shape().to_vec() })
}
