//! `MarianMTModel` (the opus-mt translators) onto the encoder-decoder layout: post-norm blocks,
//! a SiLU ("swish") FFN, no final encoder or decoder norm, Marian's sinusoidal table (sines in
//! the first half of each row, cosines in the second) as learned positions, scaled embeddings
//! shared by both sides and the tied head, `final_logits_bias` as the output bias, and
//! `decoder_start_token_id` (the pad id) as the decoder's first token. The tokenizer is
//! `source.spm` with its pieces renumbered by `vocab.json` (Marian's ids are not the
//! SentencePiece ids); the output ids decode through the same pieces.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use picoformer::blob;
use picoformer::tokenizer::ModelKind as SpmKind;
use serde_json::{json, Value};

use super::{max_len, shape_is, Cfg, Imported, Layout, Weights};
use crate::export::TransformerConfig;
use crate::spm::{Piece, PieceType, SpmModel};

pub(super) fn import(dir: &Path, cfg: &Cfg<'_>, mut w: Weights) -> Result<Imported> {
    let act = match cfg.expect_str("activation_function", &["swish", "silu", "relu", "gelu"], "gelu")?.as_str() {
        "swish" | "silu" => "silu",
        other => other,
    }
    .to_owned();
    cfg.expect("normalize_before", &Value::Bool(false), "Marian's blocks are post-norm")?;
    cfg.expect("normalize_embedding", &Value::Bool(false), "no norm after the embedding")?;
    cfg.expect("add_final_layer_norm", &Value::Bool(false), "no final norms")?;
    cfg.expect("static_position_embeddings", &Value::Bool(true), "sinusoidal positions only")?;
    cfg.expect("share_encoder_decoder_embeddings", &Value::Bool(true), "one vocabulary and one embedding table for both sides")?;
    let d = cfg.size("d_model", blob::MAX_D_MODEL)?;
    let nhead = cfg.size("encoder_attention_heads", d)?;
    let ff = cfg.size("encoder_ffn_dim", blob::MAX_D_FF)?;
    let vocab = cfg.size("vocab_size", blob::MAX_VOCAB)?;
    for (field, v, same) in [("decoder_attention_heads", cfg.usize("decoder_attention_heads")?, nhead), ("decoder_ffn_dim", cfg.usize("decoder_ffn_dim")?, ff), ("decoder_vocab_size", cfg.opt_usize("decoder_vocab_size")?.unwrap_or(vocab), vocab)] {
        if v != same {
            return Err(cfg.err(field, format!("{v}: the runtime needs the encoder's value, {same}")));
        }
    }
    if d % 2 != 0 {
        return Err(cfg.err("d_model", format!("{d}: Marian's sinusoidal table needs an even width")));
    }
    let (n_enc, n_dec) = (cfg.size("encoder_layers", blob::MAX_LAYERS)?, cfg.size("decoder_layers", blob::MAX_LAYERS)?);
    let tied = cfg.bool_or("tie_word_embeddings", true)?;
    let pad = cfg.id("pad_token_id")?.ok_or_else(|| cfg.err("pad_token_id", "missing"))?;
    let eos = cfg.id("eos_token_id")?.ok_or_else(|| cfg.err("eos_token_id", "missing"))?;
    let start = cfg.id("decoder_start_token_id")?.unwrap_or(pad);
    if start != pad {
        return Err(cfg.err("decoder_start_token_id", format!("{start}: the runtime starts the decoder at the pad id, pad_token_id {pad}")));
    }
    let max_len = max_len(cfg)?;
    let (spm, spm_path) = tokenizer(dir, vocab, pad, eos)?;

    // tensors, renamed onto nn.Transformer's
    let mut t = HashMap::new();
    let take = |w: &mut Weights, name: &str, shape: &[usize]| -> Result<Vec<f32>> {
        let (s, data) = w.take(name)?;
        shape_is(w, name, &s, shape)?;
        Ok(data)
    };
    let shared = take(&mut w, "model.shared.weight", &[vocab, d])?;
    let bias = match w.tensors.contains_key("final_logits_bias") {
        true => take(&mut w, "final_logits_bias", &[1, vocab])?,
        false => vec![0.0; vocab],
    };
    for (stack, ours, n) in [("encoder", "encoder", n_enc), ("decoder", "decoder", n_dec)] {
        for l in 0..n {
            let (p, q) = (format!("model.{stack}.layers.{l}"), format!("transformer.{ours}.layers.{l}"));
            let attns: &[(&str, &str)] = if stack == "encoder" { &[("self_attn", "self_attn")] } else { &[("self_attn", "self_attn"), ("encoder_attn", "multihead_attn")] };
            for &(hf, to) in attns {
                let (mut iw, mut ib) = (Vec::new(), Vec::new());
                for x in ["q", "k", "v"] {
                    iw.extend(take(&mut w, &format!("{p}.{hf}.{x}_proj.weight"), &[d, d])?);
                    ib.extend(take(&mut w, &format!("{p}.{hf}.{x}_proj.bias"), &[d])?);
                }
                t.insert(format!("{q}.{to}.in_proj_weight"), iw);
                t.insert(format!("{q}.{to}.in_proj_bias"), ib);
                t.insert(format!("{q}.{to}.out_proj.weight"), take(&mut w, &format!("{p}.{hf}.out_proj.weight"), &[d, d])?);
                t.insert(format!("{q}.{to}.out_proj.bias"), take(&mut w, &format!("{p}.{hf}.out_proj.bias"), &[d])?);
            }
            let norms: &[(&str, &str)] = if stack == "encoder" { &[("self_attn_layer_norm", "norm1"), ("final_layer_norm", "norm2")] } else { &[("self_attn_layer_norm", "norm1"), ("encoder_attn_layer_norm", "norm2"), ("final_layer_norm", "norm3")] };
            for &(hf, to) in norms {
                for part in ["weight", "bias"] {
                    t.insert(format!("{q}.{to}.{part}"), take(&mut w, &format!("{p}.{hf}.{part}"), &[d])?);
                }
            }
            for (hf, to, n, k) in [("fc1", "linear1", ff, d), ("fc2", "linear2", d, ff)] {
                t.insert(format!("{q}.{to}.weight"), take(&mut w, &format!("{p}.{hf}.weight"), &[n, k])?);
                t.insert(format!("{q}.{to}.bias"), take(&mut w, &format!("{p}.{hf}.bias"), &[n])?);
            }
        }
    }
    // copies of the shared table, and the position tables, which the runtime computes
    for name in ["model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "model.encoder.embed_positions.weight", "model.decoder.embed_positions.weight"] {
        w.tensors.remove(name);
    }
    if tied {
        w.tensors.remove("lm_head.weight");
        t.insert("embedding.weight".into(), shared);
    } else {
        t.insert("generator.weight".into(), take(&mut w, "lm_head.weight", &[vocab, d])?);
        t.insert("tgt_embedding.weight".into(), shared.clone());
        t.insert("src_embedding.weight".into(), shared);
    }
    t.insert("generator.bias".into(), bias);
    t.insert("pos.weight".into(), positions(max_len, d));
    let mut left: Vec<&String> = w.tensors.keys().collect();
    left.sort();
    if let Some(name) = left.first() {
        bail!("{}: unexpected tensor `{name}` ({} unexpected in all): config.json does not call for it (encoder_layers, decoder_layers, tie_word_embeddings?)", w.path.display(), left.len());
    }

    let config: TransformerConfig = serde_json::from_value(json!({
        "d_model": d,
        "nhead": nhead,
        "num_encoder_layers": n_enc,
        "num_decoder_layers": n_dec,
        "dim_feedforward": ff,
        "activation": act,
        "norm_first": false,
        "layer_norm_eps": 1e-5,
        "vocab_size": vocab,
        "max_len": max_len,
        "pad_id": pad,
        "unk_id": spm.unk,
        "bos_id": pad,
        "eos_id": eos,
        "tie_embeddings": tied,
        "scale_embedding": cfg.bool_or("scale_embedding", false)?,
        "positional": "learned",
        "final_norm": false,
    }))?;
    Ok(Imported { layout: Layout::Transformer(config), tensors: t, weights_path: w.path, spm, spm_path })
}

/// Marian's sinusoidal table, `(max_len, d)`: row `p` is `sin(p / 10000^(2i/d))` for
/// `i < d/2`, then `cos` of the same angles (HF's `MarianSinusoidalPositionalEmbedding`, in
/// f64 as it computes them, stored as f32).
fn positions(max_len: usize, d: usize) -> Vec<f32> {
    let half = d / 2;
    let mut out = vec![0f32; max_len * d];
    for (p, row) in out.chunks_exact_mut(d).enumerate() {
        for i in 0..half {
            let a = p as f64 / 10000f64.powf((2 * i) as f64 / d as f64);
            row[i] = a.sin() as f32;
            row[half + i] = a.cos() as f32;
        }
    }
    out
}

/// `source.spm` renumbered by `vocab.json`: piece `id` of the result is the piece `vocab.json`
/// gives id `id`, with its score and type in `source.spm`. Pieces only the vocabulary has
/// (target-side pieces) are UNUSED: never produced by encoding, decoded by their text.
/// The decoder starts at the pad id, which therefore stands in as bos.
fn tokenizer(dir: &Path, vocab_size: usize, pad: u16, eos: u16) -> Result<(SpmModel, std::path::PathBuf)> {
    let src_path = dir.join("source.spm");
    let tgt_path = dir.join("target.spm");
    let vocab_path = dir.join("vocab.json");
    for p in [&src_path, &tgt_path, &vocab_path] {
        if !p.exists() {
            bail!("{}: not found (a Marian checkpoint carries source.spm, target.spm and vocab.json)", p.display());
        }
    }
    let src = SpmModel::load(&src_path)?;
    let text = std::fs::read_to_string(&vocab_path).with_context(|| format!("reading {}", vocab_path.display()))?;
    let map: HashMap<String, Value> = serde_json::from_str(&text).with_context(|| format!("{}: not a JSON object of piece ids", vocab_path.display()))?;
    if map.len() != vocab_size {
        bail!("{}: {} pieces, but config.json's vocab_size is {vocab_size}", vocab_path.display(), map.len());
    }
    let mut by_id: Vec<Option<&str>> = vec![None; vocab_size];
    for (piece, id) in &map {
        let slot = id.as_u64().and_then(|i| by_id.get_mut(usize::try_from(i).ok()?));
        match slot {
            Some(s @ None) => *s = Some(piece),
            Some(Some(other)) => bail!("{}: id {id} is both {other:?} and {piece:?}", vocab_path.display()),
            None => bail!("{}: piece {piece:?}: id {id} is not below vocab_size {vocab_size}", vocab_path.display()),
        }
    }
    let in_src: HashMap<&str, &Piece> = src.pieces.iter().map(|p| (p.piece.as_str(), p)).collect();
    let mut unk = None;
    let mut pieces = Vec::with_capacity(vocab_size);
    for (id, piece) in by_id.iter().enumerate() {
        let piece = piece.unwrap_or_default();
        let special = id == usize::from(pad) || id == usize::from(eos);
        let (score, kind) = match in_src.get(piece) {
            _ if special => (0.0, PieceType::Control),
            Some(p) if p.kind == PieceType::Unknown => {
                unk = Some(id as u16);
                (p.score, p.kind)
            }
            Some(p) if p.kind != PieceType::Control => (p.score, p.kind),
            _ => (0.0, PieceType::Unused),
        };
        pieces.push(Piece { piece: piece.to_owned(), score, kind });
    }
    let Some(unk) = unk else { bail!("{}: no {:?} piece (source.spm's unknown piece)", vocab_path.display(), src.pieces.get(usize::from(src.unk)).map(|p| p.piece.as_str()).unwrap_or("<unk>")) };
    if src.kind == SpmKind::Bpe && pieces.iter().any(|p| p.kind == PieceType::Unused) {
        bail!("{}: pieces that source.spm lacks, in a BPE tokenizer (only a unigram source.spm may have them)", vocab_path.display());
    }
    let missing = src.pieces.iter().filter(|p| p.kind == PieceType::Normal && !map.contains_key(&p.piece)).count();
    if missing > 0 {
        eprintln!("warning: {}: {missing} pieces of source.spm are not in the vocabulary (Marian encodes them as <unk>; the device segments around them)", vocab_path.display());
    }
    let spm = SpmModel { pieces, unk, bos: pad, eos, pad, ..src };
    Ok((spm, vocab_path))
}
