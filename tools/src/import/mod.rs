//! Hugging Face `save_pretrained` directories (docs/import.md): each family's importer reads
//! `config.json`, the weights (`model.safetensors`, or shards listed in
//! `model.safetensors.index.json`) and the tokenizer files as the family saves them, and maps
//! them onto an export config of docs/export-format.md with tensors under that layout's names.
//! [`crate::export::Export`] takes it from there, so the f32 check, calibration, quantization
//! and everything after are the converter's own.

mod bert;
mod llama;
mod marian;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use crate::export::{GenericConfig, TransformerConfig};
use crate::spm::SpmModel;

/// The `model_type`s of the export layouts themselves (not Hugging Face families).
pub const EXPORT_KINDS: [&str; 2] = ["encoder-only", "decoder-only"];
/// The Hugging Face families with an importer, with the architecture each maps.
pub const FAMILIES: [(&str, &str); 4] = [("llama", "LlamaForCausalLM"), ("mistral", "MistralForCausalLM"), ("marian", "MarianMTModel"), ("bert", "BertForSequenceClassification")];

/// The export config an importer produced.
pub enum Layout {
    Transformer(TransformerConfig),
    Generic(Box<GenericConfig>),
}

/// A checkpoint mapped onto an export layout.
pub struct Imported {
    pub layout: Layout,
    /// Tensors under the layout's names, f32, row-major.
    pub tensors: HashMap<String, Vec<f32>>,
    /// The file the weights' errors name (`model.safetensors` or the shard index).
    pub weights_path: PathBuf,
    /// The tokenizer, with ids in the model's vocabulary, and the file its errors name.
    pub spm: SpmModel,
    pub spm_path: PathBuf,
}

/// Whether `config` is a Hugging Face one: a `model_type` that is not an export kind.
pub fn is_hf(config: &Value) -> bool {
    config.get("model_type").and_then(Value::as_str).is_some_and(|t| !EXPORT_KINDS.contains(&t))
}

/// Import the Hugging Face directory `dir`, whose `config.json` is `config`.
pub fn import(dir: &Path, config: &Value) -> Result<Imported> {
    let cfg = Cfg { path: dir.join("config.json"), v: config };
    let model_type = cfg.str("model_type")?;
    let Some(&(family, arch)) = FAMILIES.iter().find(|(f, _)| *f == model_type) else {
        let mut names: Vec<String> = EXPORT_KINDS.iter().map(|k| format!("{k:?}")).collect();
        names.extend(FAMILIES.iter().map(|(f, a)| format!("{f:?} ({a})")));
        bail!("{}: field `model_type`: unsupported {model_type:?} (supported: {}, or absent for the nn.Transformer export)", cfg.path.display(), names.join(", "));
    };
    if let Some(archs) = config.get("architectures") {
        let archs: Vec<&str> = archs.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        if !archs.contains(&arch) {
            bail!("{}: field `architectures`: {archs:?}: the {family} importer reads {arch} only", cfg.path.display());
        }
    }
    let weights = Weights::load(dir)?;
    match family {
        "llama" | "mistral" => llama::import(dir, &cfg, weights),
        "bert" => bert::import(dir, &cfg, weights),
        _ => marian::import(dir, &cfg, weights),
    }
}

/// `config.json`, read field by field; errors name the file and the field.
pub(crate) struct Cfg<'a> {
    pub path: PathBuf,
    pub v: &'a Value,
}

impl Cfg<'_> {
    pub fn err(&self, field: &str, msg: impl std::fmt::Display) -> anyhow::Error {
        anyhow!("{}: field `{field}`: {msg}", self.path.display())
    }
    /// The field, `None` when absent or null.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.v.get(field).filter(|v| !v.is_null())
    }
    pub fn str(&self, field: &str) -> Result<&str> {
        self.get(field).ok_or_else(|| self.err(field, "missing"))?.as_str().ok_or_else(|| self.err(field, "not a string"))
    }
    pub fn usize(&self, field: &str) -> Result<usize> {
        self.opt_usize(field)?.ok_or_else(|| self.err(field, "missing"))
    }
    pub fn opt_usize(&self, field: &str) -> Result<Option<usize>> {
        self.get(field).map(|v| v.as_u64().and_then(|n| usize::try_from(n).ok()).ok_or_else(|| self.err(field, format!("{v} is not a non-negative integer")))).transpose()
    }
    /// A token id (below 65536).
    pub fn id(&self, field: &str) -> Result<Option<u16>> {
        self.opt_usize(field)?.map(|n| u16::try_from(n).map_err(|_| self.err(field, format!("{n} is not a 16-bit token id")))).transpose()
    }
    pub fn f64_or(&self, field: &str, default: f64) -> Result<f64> {
        match self.get(field) {
            None => Ok(default),
            Some(v) => v.as_f64().filter(|x| x.is_finite() && *x > 0.0).ok_or_else(|| self.err(field, format!("{v} is not a positive number"))),
        }
    }
    pub fn bool_or(&self, field: &str, default: bool) -> Result<bool> {
        match self.get(field) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| self.err(field, format!("{v} is not a boolean"))),
        }
    }
    /// A size field, `1..=max` (the runtime's bound, `src/blob/mod.rs`).
    pub fn size(&self, field: &str, max: usize) -> Result<usize> {
        let n = self.usize(field)?;
        if n == 0 || n > max {
            return Err(self.err(field, format!("{n} is outside 1..={max}, the runtime's bound")));
        }
        Ok(n)
    }
    /// Require `field` (when present) to be one of `allowed`, naming them otherwise.
    pub fn expect_str(&self, field: &str, allowed: &[&str], default: &str) -> Result<String> {
        let v = match self.get(field) {
            None => default.to_owned(),
            Some(v) => v.as_str().ok_or_else(|| self.err(field, format!("{v} is not a string")))?.to_owned(),
        };
        if !allowed.contains(&v.as_str()) {
            let names: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
            return Err(self.err(field, format!("unsupported {v:?} (supported: {})", names.join(", "))));
        }
        Ok(v)
    }
    /// Require `field` to be absent, null, or `ok`; `what` says what the runtime does instead.
    pub fn expect(&self, field: &str, ok: &Value, what: &str) -> Result<()> {
        match self.get(field) {
            Some(v) if v != ok => Err(self.err(field, format!("{v} is not supported ({what})"))),
            _ => Ok(()),
        }
    }
}

/// The checkpoint's tensors as f32 with their shapes, read from `model.safetensors` or from the
/// shards `model.safetensors.index.json` lists.
pub(crate) struct Weights {
    pub path: PathBuf,
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Weights {
    pub fn load(dir: &Path) -> Result<Weights> {
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let mut tensors = HashMap::new();
        if single.exists() {
            read_file(&single, None, &mut tensors)?;
            return Ok(Weights { path: single, tensors });
        }
        if !index.exists() {
            let hint = if dir.join("pytorch_model.bin").exists() { " (pytorch_model.bin is not read: save with safe_serialization=True)" } else { "" };
            bail!("{}: no model.safetensors or model.safetensors.index.json{hint}", dir.display());
        }
        let text = std::fs::read_to_string(&index).with_context(|| format!("reading {}", index.display()))?;
        let v: Value = serde_json::from_str(&text).with_context(|| format!("{}: not JSON", index.display()))?;
        let map = v.get("weight_map").and_then(Value::as_object).ok_or_else(|| anyhow!("{}: no `weight_map` object", index.display()))?;
        let mut shards: HashMap<&str, Vec<&str>> = HashMap::new();
        for (name, file) in map {
            let file = file.as_str().ok_or_else(|| anyhow!("{}: weight_map `{name}`: not a file name", index.display()))?;
            shards.entry(file).or_default().push(name);
        }
        let mut files: Vec<&&str> = shards.keys().collect();
        files.sort();
        for file in files {
            // a shard is a plain file beside the index
            if file.contains('/') || file.contains('\\') || *file == ".." {
                bail!("{}: shard {file:?} is not a file name in the directory", index.display());
            }
            let path = dir.join(file);
            if !path.exists() {
                bail!("{}: missing shard {} (model.safetensors.index.json lists it for `{}` and {} more tensors)", path.display(), file, shards[file][0], shards[file].len() - 1);
            }
            read_file(&path, Some(&shards[file]), &mut tensors)?;
        }
        Ok(Weights { path: index, tensors })
    }

    /// Remove and return the tensor `name`, naming the file when absent.
    pub fn take(&mut self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        self.tensors.remove(name).ok_or_else(|| anyhow!("{}: missing tensor `{name}`", self.path.display()))
    }
}

/// Read every tensor of one file as f32 (F32, F16 and BF16 are read); `listed`: the names the
/// index puts in this file, each of which must be there.
fn read_file(path: &Path, listed: Option<&[&str]>, out: &mut HashMap<String, (Vec<usize>, Vec<f32>)>) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes).with_context(|| format!("{}: not a safetensors file", path.display()))?;
    for name in listed.unwrap_or(&[]) {
        if st.tensor(name).is_err() {
            bail!("{}: no tensor `{name}`, which model.safetensors.index.json places in it", path.display());
        }
    }
    for (name, view) in st.tensors() {
        let d = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => d.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Dtype::F16 => d.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Dtype::BF16 => d.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            other => bail!("{}: tensor `{name}` is {other:?} (supported: F32, F16, BF16)", path.display()),
        };
        if out.insert(name.clone(), (view.shape().to_vec(), data)).is_some() {
            bail!("{}: tensor `{name}` is in two shards", path.display());
        }
    }
    Ok(())
}

/// `max_position_embeddings`, capped at the runtime's [`picoformer::blob::MAX_LEN`] (the
/// positions the blob holds; the KV cache and the arena grow with it).
pub(crate) fn max_len(cfg: &Cfg<'_>) -> Result<usize> {
    let n = cfg.usize("max_position_embeddings")?;
    let cap = picoformer::blob::MAX_LEN;
    if n > cap {
        eprintln!("warning: {}: max_position_embeddings {n}: the blob keeps the first {cap} positions", cfg.path.display());
    }
    Ok(n.min(cap))
}

/// Check that `name`'s shape is `shape`.
pub(crate) fn shape_is(w: &Weights, name: &str, got: &[usize], shape: &[usize]) -> Result<()> {
    if got != shape {
        bail!("{}: tensor `{name}` has shape {got:?}, config.json implies {shape:?}", w.path.display());
    }
    Ok(())
}
