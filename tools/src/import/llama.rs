//! `LlamaForCausalLM` onto the decoder-only generic layout: RMSNorm, RoPE in Hugging Face's
//! `rotate_half` layout (the runtime's own, so Q and K rows keep their order), SwiGLU,
//! grouped-query attention, tied or untied head; the SentencePiece `tokenizer.model`.
//! `MistralForCausalLM` has the same layout and math but for its sliding window, which is
//! taken when it spans the whole context.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Result};
use picoformer::blob;
use serde_json::{json, Value};

use super::{max_len, shape_is, Cfg, Imported, Layout, Weights};
use crate::export::GenericConfig;
use crate::spm::SpmModel;

pub(super) fn import(dir: &Path, cfg: &Cfg<'_>, mut w: Weights) -> Result<Imported> {
    cfg.expect_str("hidden_act", &["silu"], "silu")?;
    // RoPE: the plain form only (`rope_scaling` in transformers 4, `rope_parameters` in 5)
    cfg.expect("rope_scaling", &Value::Null, "RoPE scaling: only plain RoPE, rope_type \"default\", is supported")?;
    let mut rope_theta = cfg.f64_or("rope_theta", 10000.0)?;
    if let Some(p) = cfg.get("rope_parameters") {
        let sub = Cfg { path: cfg.path.clone(), v: p };
        sub.expect_str("rope_type", &["default"], "default").map_err(|e| cfg.err("rope_parameters", format!("{e:#}")))?;
        rope_theta = sub.f64_or("rope_theta", rope_theta)?;
        if let Some(k) = p.as_object().and_then(|o| o.keys().find(|k| !["rope_type", "rope_theta"].contains(&k.as_str()))) {
            return Err(cfg.err("rope_parameters", format!("`{k}` is not supported (plain RoPE: rope_type and rope_theta only)")));
        }
    }
    let attn_bias = cfg.bool_or("attention_bias", false)?;
    let mlp_bias = cfg.bool_or("mlp_bias", false)?;
    if attn_bias != mlp_bias {
        return Err(cfg.err("mlp_bias", format!("{mlp_bias} with attention_bias {attn_bias}: the runtime has biases on every linear or on none")));
    }
    let d = cfg.size("hidden_size", blob::MAX_D_MODEL)?;
    let nhead = cfg.size("num_attention_heads", d)?;
    let kv = match cfg.get("num_key_value_heads") {
        Some(_) => cfg.size("num_key_value_heads", nhead)?,
        None => nhead,
    };
    if d % nhead != 0 {
        return Err(cfg.err("num_attention_heads", format!("{nhead} does not divide hidden_size {d}")));
    }
    if let Some(hd) = cfg.opt_usize("head_dim")?.filter(|&hd| hd != d / nhead) {
        return Err(cfg.err("head_dim", format!("{hd}: the runtime's head size is hidden_size / num_attention_heads = {}", d / nhead)));
    }
    let layers = cfg.size("num_hidden_layers", blob::MAX_LAYERS)?;
    let ff = cfg.size("intermediate_size", blob::MAX_D_FF)?;
    let vocab = cfg.size("vocab_size", blob::MAX_VOCAB)?;
    let tied = cfg.bool_or("tie_word_embeddings", false)?;
    let eos = match cfg.get("eos_token_id") {
        Some(Value::Array(a)) => {
            if a.len() > 1 {
                eprintln!("warning: {}: eos_token_id {a:?}: the runtime stops at the first only", cfg.path.display());
            }
            a.first().and_then(Value::as_u64).and_then(|n| u16::try_from(n).ok())
        }
        _ => cfg.id("eos_token_id")?,
    };

    let max_len = max_len(cfg)?;
    if let Some(window) = cfg.opt_usize("sliding_window")?.filter(|&w| w < max_len) {
        return Err(cfg.err("sliding_window", format!("{window}: the runtime attends to the whole context, so the window must be null or at least the {max_len} positions")));
    }

    let spm_path = dir.join("tokenizer.model");
    if !spm_path.exists() {
        let hint = if dir.join("tokenizer.json").exists() { ": tokenizer.json (the fast tokenizer) is not read, save the SentencePiece model too" } else { "" };
        bail!("{}: not found (the SentencePiece BPE model a Llama checkpoint carries){hint}", spm_path.display());
    }
    let spm = SpmModel::load(&spm_path)?;
    let bos = cfg.id("bos_token_id")?.unwrap_or(spm.bos);
    let eos = eos.unwrap_or(spm.eos);
    for (field, id, spm_id) in [("bos_token_id", bos, spm.bos), ("eos_token_id", eos, spm.eos)] {
        if id != spm_id {
            return Err(cfg.err(field, format!("{id}, but {} says {spm_id}", spm_path.display())));
        }
    }

    // tensors, renamed onto the generic layout
    let mut t = HashMap::new();
    let mut put = |w: &mut Weights, from: &str, to: String, shape: &[usize]| -> Result<()> {
        let (s, data) = w.take(from)?;
        shape_is(w, from, &s, shape)?;
        t.insert(to, data);
        Ok(())
    };
    let hd = d / nhead;
    put(&mut w, "model.embed_tokens.weight", "embed.weight".into(), &[vocab, d])?;
    for l in 0..layers {
        let (p, q) = (format!("model.layers.{l}"), format!("layers.{l}"));
        put(&mut w, &format!("{p}.input_layernorm.weight"), format!("{q}.attn_norm.weight"), &[d])?;
        put(&mut w, &format!("{p}.post_attention_layernorm.weight"), format!("{q}.ffn_norm.weight"), &[d])?;
        for (hf, ours, n, k) in [("self_attn.q_proj", "attn.q", nhead * hd, d), ("self_attn.k_proj", "attn.k", kv * hd, d), ("self_attn.v_proj", "attn.v", kv * hd, d), ("self_attn.o_proj", "attn.o", d, nhead * hd), ("mlp.gate_proj", "ffn.gate", ff, d), ("mlp.up_proj", "ffn.up", ff, d), ("mlp.down_proj", "ffn.down", d, ff)] {
            put(&mut w, &format!("{p}.{hf}.weight"), format!("{q}.{ours}.weight"), &[n, k])?;
            if attn_bias {
                put(&mut w, &format!("{p}.{hf}.bias"), format!("{q}.{ours}.bias"), &[n])?;
            }
        }
    }
    put(&mut w, "model.norm.weight", "norm.weight".into(), &[d])?;
    if !tied {
        put(&mut w, "lm_head.weight", "lm_head.weight".into(), &[vocab, d])?;
    } else {
        // a tied head saved anyway is the embedding itself
        w.tensors.remove("lm_head.weight");
    }
    // buffers older versions saved
    w.tensors.retain(|k, _| !k.ends_with("rotary_emb.inv_freq"));
    let mut left: Vec<&String> = w.tensors.keys().collect();
    left.sort();
    if let Some(name) = left.first() {
        bail!("{}: unexpected tensor `{name}` ({} unexpected in all): config.json does not call for it (num_hidden_layers, tie_word_embeddings, attention_bias?)", w.path.display(), left.len());
    }

    let config: GenericConfig = serde_json::from_value(json!({
        "model_type": "decoder-only",
        "d_model": d,
        "nhead": nhead,
        "num_kv_heads": kv,
        "num_layers": layers,
        "dim_feedforward": ff,
        "norm": "rmsnorm",
        "norm_eps": cfg.f64_or("rms_norm_eps", 1e-6)?,
        "norm_first": true,
        "final_norm": true,
        "activation": "swiglu",
        "bias": attn_bias,
        "positional": "rope",
        "rope_theta": rope_theta,
        "max_len": max_len,
        "vocab_size": vocab,
        "unk_id": spm.unk,
        "bos_id": bos,
        "eos_id": eos,
        "tie_embeddings": tied,
    }))?;
    Ok(Imported { layout: Layout::Generic(Box::new(config)), tensors: t, weights_path: w.path, spm, spm_path })
}
