#!/usr/bin/env python3
"""Seeds of the `export` fuzz target: `n` (u16 LE), `n` bytes of config.json, a safetensors
file. Tiny random weights (F16 for the Hugging Face ones), sized to the tokenizer files the
target puts beside them (models/hf-tiny). Run from anywhere:

  /work/venv/bin/python fuzz/seeds/export/make.py
"""
import json
import os
import struct

import numpy as np
from safetensors.numpy import save

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(0)


def w(*shape, dtype=np.float16):
    return (rng.standard_normal(shape) * 0.2).astype(dtype)


def seed(name, config, tensors):
    c = json.dumps(config, separators=(",", ":")).encode()
    st = save(tensors) if isinstance(tensors, dict) else tensors
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(struct.pack("<H", len(c)) + c + st)


# llama: hidden 8, 2 heads over 1 K/V head, 1 layer, tied, vocabulary of tokenizer.model (1000)
d, ff, v = 8, 16, 1000
t = {"model.embed_tokens.weight": w(v, d), "model.norm.weight": w(d)}
for x, n, k in [("self_attn.q_proj", d, d), ("self_attn.k_proj", 4, d), ("self_attn.v_proj", 4, d), ("self_attn.o_proj", d, d),
                ("mlp.gate_proj", ff, d), ("mlp.up_proj", ff, d), ("mlp.down_proj", d, ff)]:
    t[f"model.layers.0.{x}.weight"] = w(n, k)
for x in ["input_layernorm", "post_attention_layernorm"]:
    t[f"model.layers.0.{x}.weight"] = w(d)
seed("llama", {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": d, "intermediate_size": ff,
               "num_attention_heads": 2, "num_key_value_heads": 1, "num_hidden_layers": 1, "vocab_size": v,
               "max_position_embeddings": 16, "rms_norm_eps": 1e-6, "hidden_act": "silu", "tie_word_embeddings": True,
               "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}, "bos_token_id": 1, "eos_token_id": 2}, t)

# marian: d 8, 2 heads, 1 + 1 layers, tied, vocabulary of vocab.json (499)
v = 499
t = {"model.shared.weight": w(v, d), "final_logits_bias": w(1, v)}
for stack, attns, norms in [("encoder", ["self_attn"], ["self_attn_layer_norm", "final_layer_norm"]),
                            ("decoder", ["self_attn", "encoder_attn"], ["self_attn_layer_norm", "encoder_attn_layer_norm", "final_layer_norm"])]:
    p = f"model.{stack}.layers.0"
    for a in attns:
        for x in ["q_proj", "k_proj", "v_proj", "out_proj"]:
            t[f"{p}.{a}.{x}.weight"], t[f"{p}.{a}.{x}.bias"] = w(d, d), w(d)
    for nm in norms:
        t[f"{p}.{nm}.weight"], t[f"{p}.{nm}.bias"] = w(d), w(d)
    t[f"{p}.fc1.weight"], t[f"{p}.fc1.bias"], t[f"{p}.fc2.weight"], t[f"{p}.fc2.bias"] = w(ff, d), w(ff), w(d, ff), w(d)
seed("marian", {"architectures": ["MarianMTModel"], "model_type": "marian", "d_model": d, "encoder_layers": 1, "decoder_layers": 1,
                "encoder_attention_heads": 2, "decoder_attention_heads": 2, "encoder_ffn_dim": ff, "decoder_ffn_dim": ff,
                "activation_function": "swish", "vocab_size": v, "max_position_embeddings": 16, "scale_embedding": True,
                "pad_token_id": 498, "eos_token_id": 0, "decoder_start_token_id": 498, "tie_word_embeddings": True}, t)

# the generic layout: an encoder-only feature classifier (no tokenizer)
f32 = np.float32
d, ff = 4, 8
t = {"input_proj.weight": w(d, 3, dtype=f32), "input_proj.bias": w(d, dtype=f32), "head.weight": w(2, d, dtype=f32), "head.bias": w(2, dtype=f32),
     "norm.weight": w(d, dtype=f32), "norm.bias": w(d, dtype=f32)}
for x, n, k in [("attn.q", d, d), ("attn.k", d, d), ("attn.v", d, d), ("attn.o", d, d), ("ffn.up", ff, d), ("ffn.down", d, ff)]:
    t[f"layers.0.{x}.weight"], t[f"layers.0.{x}.bias"] = w(n, k, dtype=f32), w(n, dtype=f32)
for x in ["attn_norm", "ffn_norm"]:
    t[f"layers.0.{x}.weight"], t[f"layers.0.{x}.bias"] = w(d, dtype=f32), w(d, dtype=f32)
seed("generic", {"model_type": "encoder-only", "d_model": d, "nhead": 2, "num_layers": 1, "dim_feedforward": ff, "activation": "gelu",
                 "positional": "none", "max_len": 8, "input": "features", "n_features": 3, "n_outputs": 2}, t)

# the nn.Transformer layout, with a safetensors header whose offsets point past its data
hdr = json.dumps({"embedding.weight": {"dtype": "F32", "shape": [499, 8], "data_offsets": [0, 15968]}}).encode()
seed("transformer", {"d_model": 8, "nhead": 2, "num_encoder_layers": 1, "num_decoder_layers": 1, "dim_feedforward": 16,
                     "activation": "relu", "norm_first": False, "layer_norm_eps": 1e-5, "vocab_size": 1000, "max_len": 16,
                     "pad_id": 2, "unk_id": 0, "bos_id": 1, "eos_id": 2, "tie_embeddings": True, "scale_embedding": True,
                     "positional": "sinusoidal"}, struct.pack("<Q", len(hdr)) + hdr + b"\0" * 64)

# bert: hidden 8, 2 heads, 1 layer, 2 labels, vocabulary of vocab.txt (1204)
d, ff, v = 8, 16, 1204
e = "bert.embeddings"
t = {f"{e}.word_embeddings.weight": w(v, d), f"{e}.position_embeddings.weight": w(16, d), f"{e}.token_type_embeddings.weight": w(2, d),
     f"{e}.LayerNorm.weight": w(d), f"{e}.LayerNorm.bias": w(d), "bert.pooler.dense.weight": w(d, d), "bert.pooler.dense.bias": w(d),
     "classifier.weight": w(2, d), "classifier.bias": w(2)}
p = "bert.encoder.layer.0"
for x, n, k in [("attention.self.query", d, d), ("attention.self.key", d, d), ("attention.self.value", d, d), ("attention.output.dense", d, d),
                ("intermediate.dense", ff, d), ("output.dense", d, ff)]:
    t[f"{p}.{x}.weight"], t[f"{p}.{x}.bias"] = w(n, k), w(n)
for x in ["attention.output.LayerNorm", "output.LayerNorm"]:
    t[f"{p}.{x}.weight"], t[f"{p}.{x}.bias"] = w(d), w(d)
seed("bert", {"architectures": ["BertForSequenceClassification"], "model_type": "bert", "hidden_size": d, "num_attention_heads": 2,
              "num_hidden_layers": 1, "intermediate_size": ff, "hidden_act": "gelu", "vocab_size": v, "max_position_embeddings": 16,
              "type_vocab_size": 2, "layer_norm_eps": 1e-12, "position_embedding_type": "absolute",
              "id2label": {"0": "NEGATIVE", "1": "POSITIVE"}}, t)
