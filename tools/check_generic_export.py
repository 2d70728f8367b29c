#!/usr/bin/env python3
"""Independent NumPy (float64) implementation of docs/export-format.md §2, written from the
document's text rather than from tools/generic_model.py: reads an export directory
(config.json, model.safetensors) and checks reference.safetensors against it.

  python tools/check_generic_export.py models/captions-lm/export models/variants/dec_* ...

Fails (exit 1) if any reference value differs by more than 1e-4 (relative to max(1, |value|)),
if config.json has an unknown field or model.safetensors an unexpected or missing tensor.
"""
import json
import math
import os
import sys

import numpy as np
from safetensors.numpy import load_file

FIELDS = {
    "model_type", "d_model", "nhead", "num_kv_heads", "num_layers", "dim_feedforward", "norm",
    "norm_eps", "norm_first", "final_norm", "activation", "bias", "positional", "rope_theta",
    "max_len", "input", "n_features", "vocab_size", "unk_id", "bos_id", "eos_id", "pad_id",
    "scale_embedding", "tie_embeddings", "pooling", "head", "n_outputs", "labels",
}


def erf(x):
    return np.vectorize(math.erf)(x)


class Model:
    def __init__(self, d):
        with open(os.path.join(d, "config.json")) as f:
            c = json.load(f)
        unknown = set(c) - FIELDS
        assert not unknown, f"unknown config fields {unknown}"
        self.c = c
        self.w = {k: v.astype(np.float64) for k, v in load_file(os.path.join(d, "model.safetensors")).items()}
        self.used = set()
        self.dec = c["model_type"] == "decoder-only"
        self.D, self.H = c["d_model"], c["nhead"]
        self.KV = c.get("num_kv_heads", self.H)
        self.dh = self.D // self.H
        self.bias = c.get("bias", True)
        self.norm_kind = c.get("norm", "layernorm")
        self.eps = c.get("norm_eps", 1e-5)
        self.tokens = self.dec or c.get("input", "tokens") == "tokens"

    def t(self, name):
        self.used.add(name)
        return self.w[name]

    def lin(self, name, x, bias=None):
        y = x @ self.t(name + ".weight").T
        if bias if bias is not None else self.bias:
            y = y + self.t(name + ".bias")
        return y

    def norm(self, name, x):
        g = self.t(name + ".weight")
        if self.norm_kind == "rmsnorm":
            return x / np.sqrt(np.mean(x * x, -1, keepdims=True) + self.eps) * g
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        y = (x - mu) / np.sqrt(var + self.eps) * g
        if self.bias:
            y = y + self.t(name + ".bias")
        return y

    def rope(self, x):  # x: (n, heads, dh)
        n, h = x.shape[0], self.dh // 2
        theta = self.c.get("rope_theta", 10000.0)
        i = np.arange(h)
        ang = np.arange(n)[:, None] * theta ** (-2.0 * i / self.dh)  # (n, h)
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        a, b = x[..., :h], x[..., h:]
        return np.concatenate([a * cos - b * sin, b * cos + a * sin], -1)

    def attn(self, p, x):
        n = x.shape[0]
        q = self.lin(p + "q", x).reshape(n, self.H, self.dh)
        k = self.lin(p + "k", x).reshape(n, self.KV, self.dh)
        v = self.lin(p + "v", x).reshape(n, self.KV, self.dh)
        if self.c["positional"] == "rope":
            q, k = self.rope(q), self.rope(k)
        out = np.zeros((n, self.H, self.dh))
        g = self.H // self.KV
        for h in range(self.H):
            s = q[:, h] @ k[:, h // g].T / math.sqrt(self.dh)
            if self.dec:
                s = s + np.triu(np.full((n, n), -np.inf), 1)
            s = np.exp(s - s.max(-1, keepdims=True))
            s = s / s.sum(-1, keepdims=True)
            out[:, h] = s @ v[:, h // g]
        return self.lin(p + "o", out.reshape(n, self.H * self.dh))

    def ffn(self, p, x):
        a = self.c["activation"]
        if a == "swiglu":
            z = self.lin(p + "gate", x)
            h = z / (1 + np.exp(-z)) * self.lin(p + "up", x)
        else:
            z = self.lin(p + "up", x)
            if a == "relu":
                h = np.maximum(z, 0)
            elif a == "gelu":
                h = 0.5 * z * (1 + erf(z / math.sqrt(2)))
            else:
                h = 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3)))
        return self.lin(p + "down", h)

    def hidden(self, inp):
        c = self.c
        n = inp.shape[0]
        assert n <= c["max_len"]
        if self.tokens:
            x = self.t("embed.weight")[inp]
            if c.get("scale_embedding", False):
                x = x * math.sqrt(self.D)
        else:
            x = self.lin("input_proj", inp.astype(np.float64), bias=True)
        if c["positional"] == "learned":
            x = x + self.t("pos.weight")[:n]
        elif c["positional"] == "sinusoidal":
            pe = np.zeros((n, self.D))
            i2 = np.arange(0, self.D, 2)
            ang = np.arange(n)[:, None] / 10000.0 ** (i2 / self.D)
            pe[:, 0::2] = np.sin(ang)
            pe[:, 1::2] = np.cos(ang)[:, : self.D // 2]
            x = x + pe
        for l in range(c["num_layers"]):
            p = f"layers.{l}."
            if c.get("norm_first", True):
                x = x + self.attn(p + "attn.", self.norm(p + "attn_norm", x))
                x = x + self.ffn(p + "ffn.", self.norm(p + "ffn_norm", x))
            else:
                x = self.norm(p + "attn_norm", x + self.attn(p + "attn.", x))
                x = self.norm(p + "ffn_norm", x + self.ffn(p + "ffn.", x))
        if c.get("final_norm", True):
            x = self.norm("norm", x)
        return x

    def logits(self, ids):
        h = self.hidden(ids)
        W = self.t("embed.weight") if self.c.get("tie_embeddings", False) else self.t("lm_head.weight")
        y = h @ W.T
        if "lm_head.bias" in self.w:
            y = y + self.t("lm_head.bias")
        return y

    def output(self, inp):
        h = self.hidden(inp)
        pooled = h[0] if self.c.get("pooling", "mean") == "first" else h.mean(0)
        return h, self.lin("head", pooled, bias=True)


def close(name, a, b, tol=1e-4):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (name, a.shape, b.shape)
    err = float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b)))) if a.size else 0.0
    assert err <= tol, f"{name}: max relative error {err:.2e}"
    return err


def check(d):
    m = Model(d)
    ref = load_file(os.path.join(d, "reference.safetensors"))
    n_cases = len({k.split(".")[1] for k in ref})
    worst = 0.0
    for i in range(n_cases):
        if m.dec:
            ids = ref[f"ids.{i}"].astype(np.int64)
            worst = max(worst, close(f"logits.{i}", m.logits(ids), ref[f"logits.{i}"]))
            seq, out = list(ids), []  # greedy, same stopping rules as the document
            while len(out) < 20 and len(seq) < m.c["max_len"]:
                t = int(np.argmax(m.logits(np.array(seq))[-1]))
                out.append(t)
                seq.append(t)
                if t == m.c["eos_id"]:
                    break
            assert out == ref[f"greedy.{i}"].tolist(), (f"greedy.{i}", out, ref[f"greedy.{i}"].tolist())
        else:
            h, o = m.output(ref[f"input.{i}"])
            worst = max(worst, close(f"hidden.{i}", h, ref[f"hidden.{i}"]),
                        close(f"output.{i}", o, ref[f"output.{i}"]))
    unused = set(m.w) - m.used
    assert not unused, f"tensors the document does not use: {sorted(unused)}"
    print(f"{d}: {n_cases} cases ok, max relative error {worst:.2e}, {len(m.w)} tensors all used")


if __name__ == "__main__":
    bad = 0
    for d in sys.argv[1:]:
        try:
            check(d)
        except AssertionError as e:
            bad += 1
            print(f"{d}: FAILED {e}")
    sys.exit(1 if bad else 0)
