"""The generic encoder-only / decoder-only model of docs/export-format.md §2, in PyTorch.

This file is the executable specification of the float semantics of those two model kinds:
tools/train_lm.py, tools/train_classifier.py and tools/export_generic_variants.py train or
randomly initialise a `GenericModel`, then `export()` writes config.json + model.safetensors
and `write_reference()` writes reference.safetensors.

Every computation is float32. Padding: a batch may be right-padded; `lengths` (or a key
padding mask) masks padded keys out of attention and padded rows out of mean pooling, so a
row of n real positions gives exactly what the device computes when it runs those n rows
alone. Positions always count from 0 at the first real position (right padding only).
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

MODEL_TYPES = ("encoder-only", "decoder-only")
NORMS = ("layernorm", "rmsnorm")
ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "swiglu")
POSITIONALS = ("sinusoidal", "learned", "rope", "none")

# Every field docs/export-format.md §2 defines, in the order config.json is written.
CONFIG_ORDER = [
    "model_type", "d_model", "nhead", "num_kv_heads", "num_layers", "dim_feedforward",
    "norm", "norm_eps", "norm_first", "final_norm", "activation", "bias", "positional",
    "rope_theta", "max_len", "input", "n_features", "vocab_size", "unk_id", "bos_id", "eos_id",
    "pad_id", "scale_embedding", "tie_embeddings", "pooling", "head", "n_outputs", "labels",
]

DEFAULTS = {
    "num_kv_heads": None,  # = nhead
    "norm": "layernorm", "norm_eps": 1e-5, "norm_first": True, "final_norm": True,
    "bias": True, "rope_theta": 10000.0, "input": "tokens", "scale_embedding": False,
    "tie_embeddings": False, "pooling": "mean", "head": "classification",
}


def make_config(**kw):
    """A complete, validated config dict holding exactly the fields that apply to the kind
    (all of them written explicitly, defaults included; fields that do not apply, e.g.
    `n_features` for token input or `pooling` for decoder-only, are left out)."""
    for k in kw:
        if k not in CONFIG_ORDER:
            raise ValueError(f"unknown config field {k!r}")
    c = dict(DEFAULTS)
    c.update(kw)
    if c["num_kv_heads"] is None:
        c["num_kv_heads"] = c["nhead"]
    mt = c["model_type"]
    assert mt in MODEL_TYPES, mt
    assert c["norm"] in NORMS and c["activation"] in ACTIVATIONS and c["positional"] in POSITIONALS
    assert c["d_model"] % c["nhead"] == 0, "d_model must be a multiple of nhead"
    assert c["nhead"] % c["num_kv_heads"] == 0, "num_kv_heads must divide nhead"
    if c["positional"] == "rope":
        assert (c["d_model"] // c["nhead"]) % 2 == 0, "rope needs an even d_head"
    if mt == "decoder-only":
        c["input"] = "tokens"
    tokens = c["input"] == "tokens"
    assert c["input"] in ("tokens", "features")
    keep = ["model_type", "d_model", "nhead", "num_kv_heads", "num_layers", "dim_feedforward",
            "norm", "norm_eps", "norm_first", "final_norm", "activation", "bias", "positional",
            "max_len"]
    if c["positional"] == "rope":
        keep.append("rope_theta")
    if mt == "encoder-only":
        keep.append("input")
    if tokens:
        keep += ["vocab_size", "unk_id", "bos_id", "eos_id", "scale_embedding"]
        if c.get("pad_id") is not None and c["pad_id"] >= 0:
            keep.append("pad_id")
    else:
        keep.append("n_features")
    if mt == "decoder-only":
        keep.append("tie_embeddings")
    else:
        keep += ["pooling", "head", "n_outputs"]
        assert c["pooling"] in ("first", "mean") and c["head"] in ("classification", "regression")
        if c.get("labels") is not None:
            assert c["head"] == "classification" and len(c["labels"]) == c["n_outputs"]
            keep.append("labels")
    for k in keep:
        if k not in c:
            raise ValueError(f"config needs {k!r}")
    for k in ("norm_eps", "rope_theta"):
        if k in c:
            c[k] = float(c[k])
    return {k: c[k] for k in CONFIG_ORDER if k in keep}


# ---------------------------------------------------------------- blocks

def sinusoidal_table(max_len, d):
    """Interleaved: PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d)).
    Computed in float64, stored float32 (the de-en model's table, tools/pymodel.py)."""
    pos = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)
    i2 = torch.arange(0, d, 2, dtype=torch.float64)
    ang = pos / torch.pow(10000.0, i2 / d)
    pe = torch.zeros(max_len, d, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(ang)
    pe[:, 1::2] = torch.cos(ang)[:, : d // 2]
    return pe.float()


def rope_tables(max_len, d_head, theta):
    """cos, sin of shape (max_len, d_head) in the Hugging Face Llama layout: column j and
    j + d_head/2 both hold angle p * theta^(-2j/d_head), j < d_head/2. Angles in float64,
    tables float32."""
    half = d_head // 2
    inv = torch.pow(torch.tensor(float(theta), dtype=torch.float64),
                    -torch.arange(half, dtype=torch.float64) * 2.0 / d_head)
    ang = torch.arange(max_len, dtype=torch.float64).unsqueeze(1) * inv.unsqueeze(0)
    ang = torch.cat([ang, ang], dim=1)
    return torch.cos(ang).float(), torch.sin(ang).float()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def apply_rope(x, cos, sin):
    """x: (B, H, T, d_head); cos/sin: (T, d_head).
    x'[i] = x[i] cos - x[i+h] sin, x'[i+h] = x[i+h] cos + x[i] sin."""
    return x * cos + rotate_half(x) * sin


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * weight, in float32 (no bias, no mean subtraction)."""

    def __init__(self, d, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        x = x.float()
        ms = x.pow(2).mean(dim=-1, keepdim=True)
        return x / torch.sqrt(ms + self.eps) * self.weight


def make_norm(cfg):
    d, eps = cfg["d_model"], cfg["norm_eps"]
    if cfg["norm"] == "rmsnorm":
        return RMSNorm(d, eps)
    # LayerNorm: biased variance, eps inside the sqrt, weight and (when cfg bias) bias.
    return nn.LayerNorm(d, eps=eps, bias=cfg["bias"])


class Attention(nn.Module):
    def __init__(self, cfg, dropout):
        super().__init__()
        d, H, KV = cfg["d_model"], cfg["nhead"], cfg["num_kv_heads"]
        self.H, self.KV, self.dh = H, KV, d // H
        b = cfg["bias"]
        self.q = nn.Linear(d, H * self.dh, bias=b)
        self.k = nn.Linear(d, KV * self.dh, bias=b)
        self.v = nn.Linear(d, KV * self.dh, bias=b)
        self.o = nn.Linear(H * self.dh, d, bias=b)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, mask, rope=None):
        """x: (B, T, d); mask: additive float (B, 1, T, T) or None; rope: (cos, sin) or None."""
        B, T, _ = x.shape
        q = self.q(x).view(B, T, self.H, self.dh).transpose(1, 2)
        k = self.k(x).view(B, T, self.KV, self.dh).transpose(1, 2)
        v = self.v(x).view(B, T, self.KV, self.dh).transpose(1, 2)
        if rope is not None:
            cos, sin = rope[0][:T], rope[1][:T]
            q = apply_rope(q, cos, sin)
            k = apply_rope(k, cos, sin)
        g = self.H // self.KV
        if g > 1:  # query head h reads K/V head h // g
            k = k.repeat_interleave(g, dim=1)
            v = v.repeat_interleave(g, dim=1)
        s = (q @ k.transpose(-2, -1)) / math.sqrt(self.dh)
        if mask is not None:
            s = s + mask
        p = self.drop(torch.softmax(s, dim=-1))
        ctx = (p @ v).transpose(1, 2).reshape(B, T, self.H * self.dh)
        return self.o(ctx)


class FFN(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, ff, b = cfg["d_model"], cfg["dim_feedforward"], cfg["bias"]
        self.act = cfg["activation"]
        if self.act == "swiglu":
            self.gate = nn.Linear(d, ff, bias=b)
        self.up = nn.Linear(d, ff, bias=b)
        self.down = nn.Linear(ff, d, bias=b)

    def forward(self, x):
        if self.act == "swiglu":
            h = F.silu(self.gate(x)) * self.up(x)  # silu(z) = z * sigmoid(z)
        elif self.act == "relu":
            h = F.relu(self.up(x))
        elif self.act == "gelu":
            h = F.gelu(self.up(x))  # 0.5 z (1 + erf(z / sqrt 2))
        else:
            h = F.gelu(self.up(x), approximate="tanh")  # 0.5 z (1 + tanh(sqrt(2/pi)(z + 0.044715 z^3)))
        return self.down(h)


class Block(nn.Module):
    def __init__(self, cfg, dropout):
        super().__init__()
        self.norm_first = cfg["norm_first"]
        self.attn_norm = make_norm(cfg)
        self.attn = Attention(cfg, dropout)
        self.ffn_norm = make_norm(cfg)
        self.ffn = FFN(cfg)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, mask, rope):
        if self.norm_first:
            x = x + self.drop(self.attn(self.attn_norm(x), mask, rope))
            x = x + self.drop(self.ffn(self.ffn_norm(x)))
        else:
            x = self.attn_norm(x + self.drop(self.attn(x, mask, rope)))
            x = self.ffn_norm(x + self.drop(self.ffn(x)))
        return x


# ---------------------------------------------------------------- model

class GenericModel(nn.Module):
    """Parameter names are exactly the tensor names of docs/export-format.md §2."""

    def __init__(self, cfg, dropout=0.0):
        super().__init__()
        self.cfg = cfg
        d, L = cfg["d_model"], cfg["max_len"]
        self.decoder = cfg["model_type"] == "decoder-only"
        self.tokens = self.decoder or cfg["input"] == "tokens"
        if self.tokens:
            self.embed = nn.Embedding(cfg["vocab_size"], d)
            self.emb_scale = math.sqrt(d) if cfg["scale_embedding"] else 1.0
        else:
            self.input_proj = nn.Linear(cfg["n_features"], d, bias=True)
        if cfg["positional"] == "learned":
            self.pos = nn.Embedding(L, d)
        elif cfg["positional"] == "sinusoidal":
            self.register_buffer("pe", sinusoidal_table(L, d), persistent=False)
        if cfg["positional"] == "rope":
            cos, sin = rope_tables(L, d // cfg["nhead"], cfg["rope_theta"])
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(Block(cfg, dropout) for _ in range(cfg["num_layers"]))
        if cfg["final_norm"]:
            self.norm = make_norm(cfg)
        if self.decoder:
            if not cfg["tie_embeddings"]:
                self.lm_head = nn.Linear(d, cfg["vocab_size"], bias=False)
            self.lm_head_bias = None  # set by add_lm_head_bias()
        else:
            self.head = nn.Linear(d, cfg["n_outputs"], bias=True)

    def add_lm_head_bias(self):
        """Optional `lm_head.bias` (vocab,), also allowed with tied embeddings."""
        assert self.decoder
        self.lm_head_bias = nn.Parameter(torch.zeros(self.cfg["vocab_size"]))

    # -- pieces

    def embed_input(self, inp):
        """inp: (B, T) int64 ids or (B, T, n_features) float32 frames -> (B, T, d)."""
        T = inp.shape[1]
        assert T <= self.cfg["max_len"], f"{T} positions > max_len {self.cfg['max_len']}"
        if self.tokens:
            x = self.embed(inp)
            if self.emb_scale != 1.0:
                x = x * self.emb_scale
        else:
            x = self.input_proj(inp.float())
        p = self.cfg["positional"]
        if p == "learned":
            x = x + self.pos.weight[:T]
        elif p == "sinusoidal":
            x = x + self.pe[:T]
        return x

    def _mask(self, B, T, lengths, device):
        """Additive attention mask (B, 1, T, T): -inf on padded keys and, for decoder-only,
        on future keys. None when nothing is masked."""
        m = None
        if self.decoder:
            m = torch.triu(torch.ones(T, T, dtype=torch.bool, device=device), 1).view(1, 1, T, T)
        if lengths is not None:
            kp = torch.arange(T, device=device).view(1, T) >= lengths.view(-1, 1)  # (B, T)
            kp = kp.view(B, 1, 1, T)
            m = kp if m is None else (m | kp)
        if m is None:
            return None
        return torch.zeros(m.shape, dtype=torch.float32, device=device).masked_fill(m, float("-inf"))

    def hidden(self, inp, lengths=None):
        """The final norm's output (or the last block's output without final_norm): (B, T, d).
        lengths: (B,) real lengths of right-padded rows, or None (no padding)."""
        B, T = inp.shape[0], inp.shape[1]
        x = self.drop(self.embed_input(inp))
        mask = self._mask(B, T, lengths, inp.device)
        rope = (self.rope_cos, self.rope_sin) if self.cfg["positional"] == "rope" else None
        for layer in self.layers:
            x = layer(x, mask, rope)
        if self.cfg["final_norm"]:
            x = self.norm(x)
        return x

    def lm_logits(self, h):
        W = self.embed.weight if self.cfg["tie_embeddings"] else self.lm_head.weight
        y = h @ W.t()
        if self.lm_head_bias is not None:
            y = y + self.lm_head_bias
        return y

    def pool(self, h, lengths=None):
        if self.cfg["pooling"] == "first":
            return h[:, 0]
        if lengths is None:
            return h.mean(dim=1)
        T = h.shape[1]
        keep = (torch.arange(T, device=h.device).view(1, T) < lengths.view(-1, 1)).float()
        return (h * keep.unsqueeze(-1)).sum(dim=1) / lengths.view(-1, 1).float()

    def forward(self, inp, lengths=None):
        """decoder-only: logits (B, T, vocab); encoder-only: head output (B, n_outputs)."""
        h = self.hidden(inp, lengths)
        if self.decoder:
            return self.lm_logits(h)
        return self.head(self.pool(h, lengths))

    # -- decoding

    @torch.no_grad()
    def greedy(self, ids, max_new=20):
        """Greedy continuation of one prompt (list of ids): at most max_new new tokens, stops
        after eos, and never lets the context (prompt + new tokens) exceed max_len."""
        assert self.decoder and not self.training
        eos = self.cfg["eos_id"]
        seq = list(ids)
        out = []
        while len(out) < max_new and len(seq) < self.cfg["max_len"]:
            logits = self.forward(torch.tensor([seq], dtype=torch.long))[0, -1]
            t = int(torch.argmax(logits))
            out.append(t)
            seq.append(t)
            if t == eos:
                break
        return out


# ---------------------------------------------------------------- export

def state_dict_for_export(model):
    """Exactly the tensors of the document's table, float32, contiguous."""
    sd = {}
    for k, v in model.state_dict().items():
        if k == "lm_head_bias":
            k = "lm_head.bias"
        sd[k] = v.detach().float().contiguous().clone()
    return sd


def expected_tensors(cfg):
    """name -> shape, from docs/export-format.md §2 (used to check every export)."""
    d, H, KV, ff = cfg["d_model"], cfg["nhead"], cfg["num_kv_heads"], cfg["dim_feedforward"]
    dh = d // H
    b = cfg["bias"]
    ln = cfg["norm"] == "layernorm"
    t = {}
    tokens = cfg["model_type"] == "decoder-only" or cfg["input"] == "tokens"
    if tokens:
        t["embed.weight"] = (cfg["vocab_size"], d)
    else:
        t["input_proj.weight"] = (d, cfg["n_features"])
        t["input_proj.bias"] = (d,)
    if cfg["positional"] == "learned":
        t["pos.weight"] = (cfg["max_len"], d)

    def lin(name, out, inp):
        t[name + ".weight"] = (out, inp)
        if b:
            t[name + ".bias"] = (out,)

    def norm(name):
        t[name + ".weight"] = (d,)
        if ln and b:
            t[name + ".bias"] = (d,)

    for l in range(cfg["num_layers"]):
        p = f"layers.{l}."
        norm(p + "attn_norm")
        lin(p + "attn.q", H * dh, d)
        lin(p + "attn.k", KV * dh, d)
        lin(p + "attn.v", KV * dh, d)
        lin(p + "attn.o", d, H * dh)
        norm(p + "ffn_norm")
        if cfg["activation"] == "swiglu":
            lin(p + "ffn.gate", ff, d)
        lin(p + "ffn.up", ff, d)
        lin(p + "ffn.down", d, ff)
    if cfg["final_norm"]:
        norm("norm")
    if cfg["model_type"] == "decoder-only":
        if not cfg["tie_embeddings"]:
            t["lm_head.weight"] = (cfg["vocab_size"], d)
    else:
        t["head.weight"] = (cfg["n_outputs"], d)
        t["head.bias"] = (cfg["n_outputs"],)
    return t


def export(model, cfg, out_dir):
    """Write config.json and model.safetensors; returns the exported state dict."""
    assert cfg == make_config(**cfg), "config is not normalised"
    os.makedirs(out_dir, exist_ok=True)
    sd = state_dict_for_export(model)
    exp = expected_tensors(cfg)
    extra = set(sd) - set(exp)
    if model.decoder and "lm_head.bias" in sd:
        exp["lm_head.bias"] = (cfg["vocab_size"],)
        extra.discard("lm_head.bias")
    assert not extra and set(exp) == set(sd), (sorted(extra), sorted(set(exp) - set(sd)))
    for k, shape in exp.items():
        assert tuple(sd[k].shape) == shape, (k, tuple(sd[k].shape), shape)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    save_file(sd, os.path.join(out_dir, "model.safetensors"))
    return sd


@torch.no_grad()
def reference_tensors(model, inputs, max_new=20):
    """Reference vectors, eval mode, float32, batch size 1.
    decoder-only: inputs are id lists -> ids.{i}, logits.{i}, greedy.{i};
    encoder-only: id lists or float (n, n_features) tensors -> input.{i}, hidden.{i}, output.{i}."""
    was_training = model.training
    model.eval()
    ref = {}
    for i, x in enumerate(inputs):
        if model.decoder:
            ids = torch.tensor([list(x)], dtype=torch.long)
            ref[f"ids.{i}"] = ids[0].clone()
            ref[f"logits.{i}"] = model(ids)[0].float().contiguous().clone()
            ref[f"greedy.{i}"] = torch.tensor(model.greedy(list(x), max_new), dtype=torch.int64)
        else:
            if model.tokens:
                inp = torch.tensor([list(x)], dtype=torch.long)
            else:
                inp = torch.as_tensor(x, dtype=torch.float32).unsqueeze(0)
            h = model.hidden(inp)
            out = model.head(model.pool(h))
            ref[f"input.{i}"] = inp[0].contiguous().clone()
            ref[f"hidden.{i}"] = h[0].float().contiguous().clone()
            ref[f"output.{i}"] = out[0].float().contiguous().clone()
    model.train(was_training)
    return ref


def write_reference(model, inputs, out_dir, max_new=20):
    """Write reference.safetensors (see reference_tensors) and return the dict."""
    ref = reference_tensors(model, inputs, max_new)
    save_file(ref, os.path.join(out_dir, "reference.safetensors"))
    return ref


def load(out_dir, dropout=0.0):
    """Read an export directory back into a GenericModel (strict: every tensor must match)."""
    from safetensors.torch import load_file
    with open(os.path.join(out_dir, "config.json")) as f:
        cfg = make_config(**json.load(f))
    model = GenericModel(cfg, dropout)
    sd = load_file(os.path.join(out_dir, "model.safetensors"))
    if "lm_head.bias" in sd:
        model.add_lm_head_bias()
        sd["lm_head_bias"] = sd.pop("lm_head.bias")
    model.load_state_dict(sd, strict=True)
    model.eval()
    return model, cfg
