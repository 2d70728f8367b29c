//! The export directory (DESIGN §2): config.json, model.safetensors, tokenizer.model and
//! reference.safetensors, loaded and checked with messages that name the file and the field.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use picoformer::blob::{self, Config};
use picoformer::reference::{FAttention, FDecoderLayer, FEncoderLayer, FLayerNorm, FLinear, FloatModel};
use picoformer::tokenizer::ModelKind;
use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

use crate::implied::{self, ShapeFields};
use crate::spm::SpmModel;

/// `config.json`, as PyTorch wrote it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
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
}

/// A loaded export: owned f32 tensors by PyTorch name.
pub struct Export {
    pub dir: PathBuf,
    pub config: ExportConfig,
    pub blob_config: Config,
    pub tensors: HashMap<String, Vec<f32>>,
    pub spm: SpmModel,
    zeros: Vec<f32>,
}

impl Export {
    pub fn load(dir: &Path) -> Result<Export> {
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).with_context(|| format!("reading {}", cfg_path.display()))?;
        let config: ExportConfig =
            serde_json::from_str(&text).with_context(|| format!("{}: not a valid export config", cfg_path.display()))?;
        let c = &config;
        let field = |name: &str, msg: String| anyhow!("{}: field `{name}`: {msg}", cfg_path.display());
        let gelu = match c.activation.as_str() {
            "relu" => false,
            "gelu" => true,
            other => return Err(field("activation", format!("unknown activation {other:?} (expected \"relu\" or \"gelu\")"))),
        };
        if c.positional != "sinusoidal" {
            return Err(field("positional", format!("unsupported {:?} (expected \"sinusoidal\")", c.positional)));
        }
        #[allow(clippy::neg_cmp_op_on_partial_ord)] // also rejects NaN
        if !(c.layer_norm_eps > 0.0) {
            return Err(field("layer_norm_eps", "must be positive".into()));
        }
        let spm_path = dir.join("tokenizer.model");
        let spm = SpmModel::load(&spm_path)?;
        if spm.kind != ModelKind::Unigram {
            bail!("{}: a BPE tokenizer cannot be written to the blob yet (it has no field for the model kind and byte_ids)", spm_path.display());
        }
        if spm.normalizer_name != "identity" {
            eprintln!(
                "warning: {}: normalizer {:?}; the device tokenizer applies identity normalization, so ids can differ on text that normalization would change",
                spm_path.display(),
                spm.normalizer_name
            );
        }
        if spm.pieces.len() != c.vocab_size {
            return Err(field("vocab_size", format!("{} but {} has {} pieces", c.vocab_size, spm_path.display(), spm.pieces.len())));
        }
        for (name, cfg_id, spm_id) in [("pad_id", c.pad_id, spm.pad), ("unk_id", c.unk_id, spm.unk), ("bos_id", c.bos_id, spm.bos), ("eos_id", c.eos_id, spm.eos)] {
            if cfg_id != spm_id {
                return Err(field(name, format!("{cfg_id} but {} says {spm_id}", spm_path.display())));
            }
        }
        let mut flags = 0;
        if c.norm_first {
            flags |= blob::FLAG_NORM_FIRST;
        }
        if gelu {
            flags |= blob::FLAG_GELU;
        }
        if c.tie_embeddings {
            flags |= blob::FLAG_TIED;
        }
        if spm.add_dummy_prefix {
            flags |= blob::FLAG_ADD_DUMMY_PREFIX;
        }
        if spm.remove_extra_whitespaces {
            flags |= blob::FLAG_REMOVE_EXTRA_WS;
        }
        let blob_config = Config {
            d_model: c.d_model,
            nhead: c.nhead,
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
        };

        let st_path = dir.join("model.safetensors");
        let bytes = std::fs::read(&st_path).with_context(|| format!("reading {}", st_path.display()))?;
        let st = SafeTensors::deserialize(&bytes).with_context(|| format!("{}: not a safetensors file", st_path.display()))?;
        // the fields the shapes determine first, so a wrong one is named, not what it breaks
        let fields = ShapeFields {
            d_model: c.d_model,
            dim_feedforward: c.dim_feedforward,
            vocab_size: c.vocab_size,
            num_encoder_layers: c.num_encoder_layers,
            num_decoder_layers: c.num_decoder_layers,
            tie_embeddings: c.tie_embeddings,
        };
        implied::check(&fields, &st, &cfg_path, &st_path)?;
        blob_config.validate().map_err(|e| anyhow!("{}: {e}", cfg_path.display()))?;
        let tensors = load_f32(&st, &st_path)?;
        let zeros = vec![0.0; c.vocab_size];
        let export = Export { dir: dir.to_path_buf(), config, blob_config, tensors, spm, zeros };
        export.check_names(&st_path)?;
        Ok(export)
    }

    /// Every tensor the config calls for, with its shape.
    fn expected(&self) -> Vec<(String, Vec<usize>)> {
        let c = &self.config;
        let (d, f, v) = (c.d_model, c.dim_feedforward, c.vocab_size);
        let mut e = Vec::new();
        let mut attn = |p: &str| {
            e.push((format!("{p}.in_proj_weight"), vec![3 * d, d]));
            e.push((format!("{p}.in_proj_bias"), vec![3 * d]));
            e.push((format!("{p}.out_proj.weight"), vec![d, d]));
            e.push((format!("{p}.out_proj.bias"), vec![d]));
        };
        for l in 0..c.num_encoder_layers {
            attn(&format!("transformer.encoder.layers.{l}.self_attn"));
        }
        for l in 0..c.num_decoder_layers {
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
        for l in 0..c.num_encoder_layers {
            rest(format!("transformer.encoder.layers.{l}"), 2);
        }
        for l in 0..c.num_decoder_layers {
            rest(format!("transformer.decoder.layers.{l}"), 3);
        }
        for p in ["transformer.encoder.norm", "transformer.decoder.norm"] {
            e.push((format!("{p}.weight"), vec![d]));
            e.push((format!("{p}.bias"), vec![d]));
        }
        if c.tie_embeddings {
            e.push(("embedding.weight".into(), vec![v, d]));
        } else {
            e.push(("src_embedding.weight".into(), vec![v, d]));
            e.push(("tgt_embedding.weight".into(), vec![v, d]));
            e.push(("generator.weight".into(), vec![v, d]));
            e.push(("generator.bias".into(), vec![v]));
        }
        e
    }

    fn check_names(&self, path: &Path) -> Result<()> {
        let expected = self.expected();
        for (name, shape) in &expected {
            let Some(t) = self.tensors.get(name) else {
                bail!("{}: missing tensor `{name}` (config.json calls for it)", path.display());
            };
            let n: usize = shape.iter().product();
            if t.len() != n {
                bail!("{}: tensor `{name}` has {} elements, config.json implies shape {shape:?}", path.display(), t.len());
            }
        }
        let known: std::collections::HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
        let mut extra: Vec<&String> = self.tensors.keys().filter(|k| !known.contains(k.as_str())).collect();
        extra.sort();
        if let Some(name) = extra.first() {
            bail!(
                "{}: unexpected tensor `{name}` ({} unexpected in all): the config disagrees with the weights (layer counts, tie_embeddings?)",
                path.display(),
                extra.len()
            );
        }
        Ok(())
    }

    fn t(&self, name: &str) -> &[f32] {
        self.tensors.get(name).map(|v| v.as_slice()).unwrap_or(&[])
    }

    fn linear(&self, w: &str, b: &str, rows: std::ops::Range<usize>, k: usize) -> FLinear<'_> {
        FLinear { w: &self.t(w)[rows.start * k..rows.end * k], b: &self.t(b)[rows], k }
    }

    fn attention(&self, p: &str) -> FAttention<'_> {
        let d = self.config.d_model;
        let (w, b) = (format!("{p}.in_proj_weight"), format!("{p}.in_proj_bias"));
        FAttention {
            q: self.linear(&w, &b, 0..d, d),
            k: self.linear(&w, &b, d..2 * d, d),
            v: self.linear(&w, &b, 2 * d..3 * d, d),
            o: self.linear(&format!("{p}.out_proj.weight"), &format!("{p}.out_proj.bias"), 0..d, d),
        }
    }

    fn norm(&self, p: &str) -> FLayerNorm<'_> {
        FLayerNorm { g: self.t(&format!("{p}.weight")), b: self.t(&format!("{p}.bias")), eps: self.config.layer_norm_eps as f32 }
    }

    /// Views of the float model for the reference forward pass.
    pub fn float_model(&self) -> FloatModel<'_> {
        let c = &self.config;
        let (d, f) = (c.d_model, c.dim_feedforward);
        let mut m = FloatModel { config: self.blob_config, scale_embedding: c.scale_embedding, ..Default::default() };
        if c.tie_embeddings {
            m.src_emb = self.t("embedding.weight");
            m.tgt_emb = m.src_emb;
            m.generator = FLinear { w: m.src_emb, b: &self.zeros, k: d };
        } else {
            m.src_emb = self.t("src_embedding.weight");
            m.tgt_emb = self.t("tgt_embedding.weight");
            m.generator = FLinear { w: self.t("generator.weight"), b: self.t("generator.bias"), k: d };
        }
        for l in 0..c.num_encoder_layers {
            let p = format!("transformer.encoder.layers.{l}");
            m.enc[l] = FEncoderLayer {
                sa: self.attention(&format!("{p}.self_attn")),
                ln1: self.norm(&format!("{p}.norm1")),
                ff1: self.linear(&format!("{p}.linear1.weight"), &format!("{p}.linear1.bias"), 0..f, d),
                ff2: self.linear(&format!("{p}.linear2.weight"), &format!("{p}.linear2.bias"), 0..d, f),
                ln2: self.norm(&format!("{p}.norm2")),
            };
        }
        for l in 0..c.num_decoder_layers {
            let p = format!("transformer.decoder.layers.{l}");
            m.dec[l] = FDecoderLayer {
                sa: self.attention(&format!("{p}.self_attn")),
                ln1: self.norm(&format!("{p}.norm1")),
                ca: self.attention(&format!("{p}.multihead_attn")),
                ln2: self.norm(&format!("{p}.norm2")),
                ff1: self.linear(&format!("{p}.linear1.weight"), &format!("{p}.linear1.bias"), 0..f, d),
                ff2: self.linear(&format!("{p}.linear2.weight"), &format!("{p}.linear2.bias"), 0..d, f),
                ln3: self.norm(&format!("{p}.norm3")),
            };
        }
        m.enc_norm = self.norm("transformer.encoder.norm");
        m.dec_norm = self.norm("transformer.decoder.norm");
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
