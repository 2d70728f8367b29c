//! `BertForSequenceClassification` onto the encoder-only layout: word + position embeddings
//! (token type 0 folded into the position table) and the embedding LayerNorm, post-norm blocks
//! with the exact (erf) GELU, no final norm, the first token through the tanh pooler, then the
//! classifier. The tokenizer is `vocab.txt` (WordPiece) with `tokenizer_config.json`'s
//! `do_lower_case` and `strip_accents`; a classifier's input is `[CLS] … [SEP]`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use picoformer::blob;
use serde_json::{json, Value};

use super::{max_len, shape_is, Cfg, Imported, Layout, Weights};
use crate::export::GenericConfig;
use crate::wordpiece::{self, Normalize, Specials};

pub(super) fn import(dir: &Path, cfg: &Cfg<'_>, mut w: Weights) -> Result<Imported> {
    cfg.expect_str("hidden_act", &["gelu"], "gelu")?;
    cfg.expect_str("position_embedding_type", &["absolute"], "absolute")?;
    cfg.expect_str("problem_type", &["single_label_classification"], "single_label_classification")?;
    cfg.expect("is_decoder", &Value::Bool(false), "BERT as an encoder only")?;
    cfg.expect("add_cross_attention", &Value::Bool(false), "no cross-attention")?;
    let d = cfg.size("hidden_size", blob::MAX_D_MODEL)?;
    let nhead = cfg.size("num_attention_heads", d)?;
    if d % nhead != 0 {
        return Err(cfg.err("num_attention_heads", format!("{nhead} does not divide hidden_size {d}")));
    }
    let layers = cfg.size("num_hidden_layers", blob::MAX_LAYERS)?;
    let ff = cfg.size("intermediate_size", blob::MAX_D_FF)?;
    let vocab = cfg.size("vocab_size", blob::MAX_VOCAB)?;
    let eps = cfg.f64_or("layer_norm_eps", 1e-12)?;
    let labels = labels(cfg)?;
    if labels.len() < 2 {
        return Err(cfg.err("num_labels", format!("{}: one output is regression, which the bert importer does not map (supported: 2 or more labels)", labels.len())));
    }
    let full_len = cfg.usize("max_position_embeddings")?;
    let max_len = max_len(cfg)?;
    let (spm, spm_path) = tokenizer(dir, vocab)?;

    let mut t = HashMap::new();
    let take = |w: &mut Weights, name: &str, shape: &[usize]| -> Result<Vec<f32>> {
        let (s, data) = w.take(name)?;
        shape_is(w, name, &s, shape)?;
        Ok(data)
    };
    let e = "bert.embeddings";
    t.insert("embed.weight".to_owned(), take(&mut w, &format!("{e}.word_embeddings.weight"), &[vocab, d])?);
    let mut pos = take(&mut w, &format!("{e}.position_embeddings.weight"), &[full_len, d])?;
    pos.truncate(max_len * d);
    let (ts, types) = w.take(&format!("{e}.token_type_embeddings.weight"))?;
    if ts.len() != 2 || ts[1] != d || ts[0] == 0 {
        bail!("{}: tensor `{e}.token_type_embeddings.weight` has shape {ts:?}, config.json implies [type_vocab_size, {d}]", w.path.display());
    }
    // single sentences: token type 0 everywhere
    for row in pos.chunks_exact_mut(d) {
        row.iter_mut().zip(&types[..d]).for_each(|(p, t)| *p += t);
    }
    t.insert("pos.weight".into(), pos);
    for part in ["weight", "bias"] {
        t.insert(format!("embed_norm.{part}"), take(&mut w, &format!("{e}.LayerNorm.{part}"), &[d])?);
    }
    let lin = |w: &mut Weights, t: &mut HashMap<String, Vec<f32>>, hf: &str, ours: &str, n: usize, k: usize| -> Result<()> {
        t.insert(format!("{ours}.weight"), take(w, &format!("{hf}.weight"), &[n, k])?);
        t.insert(format!("{ours}.bias"), take(w, &format!("{hf}.bias"), &[n])?);
        Ok(())
    };
    for l in 0..layers {
        let (p, q) = (format!("bert.encoder.layer.{l}"), format!("layers.{l}"));
        for (hf, ours) in [("attention.self.query", "attn.q"), ("attention.self.key", "attn.k"), ("attention.self.value", "attn.v"), ("attention.output.dense", "attn.o")] {
            lin(&mut w, &mut t, &format!("{p}.{hf}"), &format!("{q}.{ours}"), d, d)?;
        }
        lin(&mut w, &mut t, &format!("{p}.intermediate.dense"), &format!("{q}.ffn.up"), ff, d)?;
        lin(&mut w, &mut t, &format!("{p}.output.dense"), &format!("{q}.ffn.down"), d, ff)?;
        // post-norm: the generic layout's norm before each sublayer's name is the one after it
        for (hf, ours) in [("attention.output.LayerNorm", "attn_norm"), ("output.LayerNorm", "ffn_norm")] {
            for part in ["weight", "bias"] {
                t.insert(format!("{q}.{ours}.{part}"), take(&mut w, &format!("{p}.{hf}.{part}"), &[d])?);
            }
        }
    }
    lin(&mut w, &mut t, "bert.pooler.dense", "pooler", d, d)?;
    lin(&mut w, &mut t, "classifier", "head", labels.len(), d)?;
    w.tensors.remove("bert.embeddings.position_ids");
    let mut left: Vec<&String> = w.tensors.keys().collect();
    left.sort();
    if let Some(name) = left.first() {
        bail!("{}: unexpected tensor `{name}` ({} unexpected in all): config.json does not call for it (num_hidden_layers? a BertForSequenceClassification checkpoint?)", w.path.display(), left.len());
    }

    let config: GenericConfig = serde_json::from_value(json!({
        "model_type": "encoder-only",
        "d_model": d,
        "nhead": nhead,
        "num_layers": layers,
        "dim_feedforward": ff,
        "norm": "layernorm",
        "norm_eps": eps,
        "norm_first": false,
        "final_norm": false,
        "activation": "gelu",
        "bias": true,
        "positional": "learned",
        "max_len": max_len,
        "input": "tokens",
        "vocab_size": vocab,
        "pad_id": spm.pad,
        "unk_id": spm.unk,
        "bos_id": spm.bos,
        "eos_id": spm.eos,
        "pooling": "first",
        "head": "classification",
        "n_outputs": labels.len(),
        "labels": labels,
        "embed_norm": true,
        "pooler": true,
    }))?;
    Ok(Imported { layout: Layout::Generic(Box::new(config)), tensors: t, weights_path: w.path, spm, spm_path })
}

/// The class names: `id2label` in id order (its size is `num_labels`), else `LABEL_i`.
fn labels(cfg: &Cfg<'_>) -> Result<Vec<String>> {
    let Some(map) = cfg.get("id2label") else {
        let n = cfg.opt_usize("num_labels")?.unwrap_or(2);
        return Ok((0..n).map(|i| format!("LABEL_{i}")).collect());
    };
    let map = map.as_object().ok_or_else(|| cfg.err("id2label", "not an object"))?;
    let mut out = vec![None; map.len()];
    for (k, v) in map {
        let slot = k.parse::<usize>().ok().and_then(|i| out.get_mut(i)).ok_or_else(|| cfg.err("id2label", format!("key {k:?} is not an id below {}", map.len())))?;
        *slot = Some(v.as_str().ok_or_else(|| cfg.err("id2label", format!("{v} is not a string")))?.to_owned());
    }
    if let Some(n) = cfg.opt_usize("num_labels")?.filter(|&n| n != out.len()) {
        return Err(cfg.err("num_labels", format!("{n}, but id2label has {} labels", out.len())));
    }
    Ok(out.into_iter().map(Option::unwrap_or_default).collect())
}

/// `vocab.txt` with `tokenizer_config.json`'s options and special tokens.
fn tokenizer(dir: &Path, vocab: usize) -> Result<(crate::spm::SpmModel, std::path::PathBuf)> {
    let vocab_path = dir.join("vocab.txt");
    if !vocab_path.exists() {
        let hint = if dir.join("tokenizer.json").exists() { ": tokenizer.json (the fast tokenizer) is not read, save the slow one's vocab.txt too" } else { "" };
        bail!("{}: not found (the WordPiece vocabulary a BERT checkpoint carries){hint}", vocab_path.display());
    }
    let tc_path = dir.join("tokenizer_config.json");
    let tc: Value = match tc_path.exists() {
        true => serde_json::from_str(&std::fs::read_to_string(&tc_path).with_context(|| format!("reading {}", tc_path.display()))?).with_context(|| format!("{}: not JSON", tc_path.display()))?,
        false => json!({}),
    };
    let tcfg = Cfg { path: tc_path, v: &tc };
    let lower_case = tcfg.bool_or("do_lower_case", true)?;
    // strip_accents null: as do_lower_case
    let strip_accents = tcfg.bool_or("strip_accents", lower_case)?;
    if strip_accents != lower_case {
        return Err(tcfg.err("strip_accents", format!("{strip_accents} with do_lower_case {lower_case}: the device tokenizer strips accents exactly when it lower-cases (supported: null, or equal to do_lower_case)")));
    }
    tcfg.expect("tokenize_chinese_chars", &Value::Bool(true), "CJK characters are split")?;
    let tok = |field: &str, default: &'static str| -> Result<String> {
        match tcfg.get(field) {
            None => Ok(default.to_owned()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Object(o)) => o.get("content").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| tcfg.err(field, "no `content` string")),
            Some(v) => Err(tcfg.err(field, format!("{v} is not a token"))),
        }
    };
    let (unk, cls, sep, pad) = (tok("unk_token", "[UNK]")?, tok("cls_token", "[CLS]")?, tok("sep_token", "[SEP]")?, tok("pad_token", "[PAD]")?);
    let spm = wordpiece::load(&vocab_path, vocab, &Specials { unk: &unk, cls: &cls, sep: &sep, pad: &pad }, Normalize { lower_case, strip_accents })?;
    Ok((spm, vocab_path))
}
