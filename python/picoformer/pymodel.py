"""Shared PyTorch reference model, greedy decoding and export helpers for picoformer.

Used by tools/train.py (trained de->en model) and tools/export_variants.py
(randomly initialised models of other shapes).
"""
import gzip
import io
import json
import math
import os

import torch
import torch.nn as nn
from safetensors.torch import save_file

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3

# Keys written to config.json, in this order.
CONFIG_KEYS = [
    "d_model", "nhead", "num_encoder_layers", "num_decoder_layers", "dim_feedforward",
    "activation", "norm_first", "layer_norm_eps", "vocab_size", "max_len", "pad_id",
    "unk_id", "bos_id", "eos_id", "tie_embeddings", "scale_embedding", "positional",
]


def make_config(**kw):
    cfg = {
        "d_model": 128, "nhead": 4, "num_encoder_layers": 2, "num_decoder_layers": 2,
        "dim_feedforward": 256, "activation": "relu", "norm_first": False,
        "layer_norm_eps": 1e-5, "vocab_size": 4000, "max_len": 64, "pad_id": PAD_ID,
        "unk_id": UNK_ID, "bos_id": BOS_ID, "eos_id": EOS_ID, "tie_embeddings": True,
        "scale_embedding": True, "positional": "sinusoidal",
    }
    for k, v in kw.items():
        assert k in cfg, k
        cfg[k] = v
    return {k: cfg[k] for k in CONFIG_KEYS}


# ---------------------------------------------------------------- tokenizer

SPM_OPTIONS = dict(
    model_type="unigram",
    character_coverage=1.0,
    normalization_rule_name="identity",
    remove_extra_whitespaces=True,
    add_dummy_prefix=True,
    byte_fallback=False,
    pad_id=PAD_ID,
    unk_id=UNK_ID,
    bos_id=BOS_ID,
    eos_id=EOS_ID,
    num_threads=1,  # deterministic (sentencepiece 0.2 has no random_seed option)
)


def read_lines(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def train_spm(sentences, vocab_size, out_path):
    """Train a unigram SentencePiece model on `sentences` and write it to out_path.
    Returns the serialized model bytes."""
    import sentencepiece as spm
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=buf, vocab_size=vocab_size,
        minloglevel=1, **SPM_OPTIONS)
    data = buf.getvalue()
    os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
    with open(out_path, "wb") as f:
        f.write(data)
    return data


def load_spm(path):
    import sentencepiece as spm
    return spm.SentencePieceProcessor(model_file=path)


# ---------------------------------------------------------------- model

def sinusoidal_pe(max_len, d):
    """Interleaved: PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(...)."""
    pos = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)
    i2 = torch.arange(0, d, 2, dtype=torch.float64)
    div = torch.pow(10000.0, i2 / d)
    pe = torch.zeros(max_len, d, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos / div)
    pe[:, 1::2] = torch.cos(pos / div)[:, : d // 2]
    return pe.float()


class Seq2Seq(nn.Module):
    def __init__(self, cfg, dropout=0.1):
        super().__init__()
        self.cfg = cfg
        d, V = cfg["d_model"], cfg["vocab_size"]
        self.transformer = nn.Transformer(
            d_model=d, nhead=cfg["nhead"], num_encoder_layers=cfg["num_encoder_layers"],
            num_decoder_layers=cfg["num_decoder_layers"], dim_feedforward=cfg["dim_feedforward"],
            dropout=dropout, activation=cfg["activation"], norm_first=cfg["norm_first"],
            layer_norm_eps=cfg["layer_norm_eps"], batch_first=True)
        self.tied = cfg["tie_embeddings"]
        if self.tied:
            self.embedding = nn.Embedding(V, d)
            nn.init.normal_(self.embedding.weight, 0.0, d ** -0.5)
        else:
            self.src_embedding = nn.Embedding(V, d)
            self.tgt_embedding = nn.Embedding(V, d)
            self.generator = nn.Linear(d, V, bias=True)
        self.scale = math.sqrt(d) if cfg["scale_embedding"] else 1.0
        self.register_buffer("pe", sinusoidal_pe(cfg["max_len"], d), persistent=False)
        self.drop = nn.Dropout(dropout)

    def _embed(self, ids, emb):
        x = emb(ids) * self.scale + self.pe[: ids.shape[1]].unsqueeze(0)
        return self.drop(x)

    def encode(self, src, src_pad_mask=None):
        emb = self.embedding if self.tied else self.src_embedding
        return self.transformer.encoder(self._embed(src, emb), src_key_padding_mask=src_pad_mask)

    def decode(self, tgt_in, memory, src_pad_mask=None, tgt_pad_mask=None):
        """Returns logits [B, T, V]."""
        emb = self.embedding if self.tied else self.tgt_embedding
        T = tgt_in.shape[1]
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool, device=tgt_in.device), 1)
        h = self.transformer.decoder(
            self._embed(tgt_in, emb), memory, tgt_mask=causal,
            tgt_key_padding_mask=tgt_pad_mask, memory_key_padding_mask=src_pad_mask)
        if self.tied:
            return h @ self.embedding.weight.t()
        return self.generator(h)

    def forward(self, src, tgt_in):
        src_pad = src.eq(PAD_ID)
        tgt_pad = tgt_in.eq(PAD_ID)
        mem = self.encode(src, src_pad)
        return self.decode(tgt_in, mem, src_pad, tgt_pad)


def random_init_(model, gen_std=0.2, seed=0):
    """Large-ish random init so random models produce non-degenerate activations/logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif "norm" in name and name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "embedding" in name:
                std = 0.2 if model.tied else 0.5
                p.copy_(std * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn(p.shape, generator=g) if "generator" not in name
                        else 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(gen_std * torch.randn(p.shape, generator=g))


# ---------------------------------------------------------------- data helpers

def src_ids(sp, text, max_len):
    return sp.encode(text)[: max_len - 1] + [EOS_ID]


def pad_batch(seqs):
    L = max(len(s) for s in seqs)
    out = torch.full((len(seqs), L), PAD_ID, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


# ---------------------------------------------------------------- decoding

@torch.no_grad()
def greedy_decode(model, srcs, max_out=None, batch_size=100):
    """srcs: list of id lists (already with eos). Returns list of id lists
    (no bos; ending with eos if emitted). Model must be in eval mode."""
    if max_out is None:
        max_out = model.cfg["max_len"] - 1
    results = [None] * len(srcs)
    order = sorted(range(len(srcs)), key=lambda i: len(srcs[i]))
    for b in range(0, len(order), batch_size):
        idx = order[b: b + batch_size]
        src = pad_batch([srcs[i] for i in idx])
        src_pad = src.eq(PAD_ID)
        mem = model.encode(src, src_pad)
        B = src.shape[0]
        ys = torch.full((B, 1), BOS_ID, dtype=torch.long)
        done = torch.zeros(B, dtype=torch.bool)
        for _ in range(max_out):
            logits = model.decode(ys, mem, src_pad)[:, -1]
            nxt = logits.argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, PAD_ID), nxt)
            ys = torch.cat([ys, nxt.unsqueeze(1)], 1)
            done |= nxt.eq(EOS_ID)
            if bool(done.all()):
                break
        for j, i in enumerate(idx):
            out = []
            # a row ends at its eos (pad fills it after that); pad before eos is a token like
            # any other, as the runtime's greedy decoder takes it
            for t in ys[j, 1:].tolist():
                out.append(t)
                if t == EOS_ID:
                    break
            results[i] = out
    return results


def ids_to_text(sp, ids):
    return sp.decode([t for t in ids if t != EOS_ID])


# ---------------------------------------------------------------- export

def export_state_dict(model):
    sd = {}
    for k, v in model.transformer.state_dict().items():
        sd["transformer." + k] = v.detach().float().contiguous().clone()
    if model.tied:
        sd["embedding.weight"] = model.embedding.weight.detach().float().contiguous().clone()
    else:
        sd["src_embedding.weight"] = model.src_embedding.weight.detach().float().contiguous().clone()
        sd["tgt_embedding.weight"] = model.tgt_embedding.weight.detach().float().contiguous().clone()
        sd["generator.weight"] = model.generator.weight.detach().float().contiguous().clone()
        sd["generator.bias"] = model.generator.bias.detach().float().contiguous().clone()
    return sd


@torch.no_grad()
def reference_tensors(model, sp, sentences):
    """Per-sentence reference outputs, each computed with batch size 1 (no padding)."""
    torch.backends.mha.set_fastpath_enabled(False)
    model.eval()
    max_len = model.cfg["max_len"]
    ref = {}
    for i, text in enumerate(sentences):
        s = src_ids(sp, text, max_len)
        src = torch.tensor([s], dtype=torch.long)
        mem = model.encode(src, None)
        g = greedy_decode(model, [s], max_out=max_len - 1, batch_size=1)[0]
        T = min(8, len(g))
        tgt_in = torch.tensor([[BOS_ID] + g[: T - 1]], dtype=torch.long)
        logits = model.decode(tgt_in, mem, None)
        ref[f"src_ids.{i}"] = torch.tensor(s, dtype=torch.int64)
        ref[f"memory.{i}"] = mem[0].float().contiguous().clone()
        ref[f"greedy.{i}"] = torch.tensor(g, dtype=torch.int64)
        ref[f"logits.{i}"] = logits[0].float().contiguous().clone()
    return ref


def export_model(model, out_dir, sp_model_path, ref_sentences):
    """Write config.json, model.safetensors, tokenizer.model, reference.safetensors."""
    os.makedirs(out_dir, exist_ok=True)
    model.eval()
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(model.cfg, f, indent=2)
        f.write("\n")
    save_file(export_state_dict(model), os.path.join(out_dir, "model.safetensors"))
    tok_dst = os.path.join(out_dir, "tokenizer.model")
    if os.path.abspath(sp_model_path) != os.path.abspath(tok_dst):
        with open(sp_model_path, "rb") as fi, open(tok_dst, "wb") as fo:
            fo.write(fi.read())
    sp = load_spm(tok_dst)
    ref = reference_tensors(model, sp, ref_sentences)
    save_file(ref, os.path.join(out_dir, "reference.safetensors"))
    return ref
