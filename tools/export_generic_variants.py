#!/usr/bin/env python3
"""Export small randomly initialised encoder-only and decoder-only models (docs/export-format.md
§2) that cover every block of the generic layout, to check the converter and runtime are not
hard-coded to one architecture.

  python tools/export_generic_variants.py --data ../shared/data/multi30k --out models/variants [--seed 0]

Each models/variants/<name>/ gets config.json, model.safetensors, reference.safetensors and,
for token input, tokenizer.model (SentencePiece, trained on the first 4000 lines of Multi30K
train.en: BPE with Llama's options or unigram with the de-en model's options).
Deterministic: same seed, same bytes.
"""
import argparse
import hashlib
import io
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generic_model as gm  # noqa: E402
import pymodel as pm  # noqa: E402
import train_classifier as tc  # noqa: E402
import train_lm  # noqa: E402

SPM_SUBSET = 4000

# name -> (config fields, tokenizer kind or None, extras)
VARIANTS = {
    # (a) Llama block: GQA + RoPE + RMSNorm + SwiGLU, no bias, untied
    "dec_gqa_rope_rmsnorm_swiglu": (dict(
        model_type="decoder-only", d_model=64, nhead=4, num_kv_heads=2, num_layers=2,
        dim_feedforward=128, norm="rmsnorm", norm_eps=1e-5, norm_first=True, final_norm=True,
        activation="swiglu", bias=False, positional="rope", rope_theta=10000.0, max_len=64,
        scale_embedding=False, tie_embeddings=False), ("bpe", 1000), {}),
    # (b) GPT-style block, but post-norm: LayerNorm + learned positions + GELU + bias + tied
    "dec_postnorm_learned_gelu_tied": (dict(
        model_type="decoder-only", d_model=48, nhead=3, num_layers=2, dim_feedforward=128,
        norm="layernorm", norm_eps=1e-5, norm_first=False, final_norm=False, activation="gelu",
        bias=True, positional="learned", max_len=48, scale_embedding=True,
        tie_embeddings=True), ("unigram", 500), {}),
    # (c) multi-query (one K/V head) + tanh GELU + sinusoidal + untied lm_head with bias
    "dec_mqa_gelutanh_sinusoidal_lmbias": (dict(
        model_type="decoder-only", d_model=64, nhead=4, num_kv_heads=1, num_layers=1,
        dim_feedforward=96, norm="layernorm", norm_eps=1e-6, norm_first=True, final_norm=True,
        activation="gelu_tanh", bias=True, positional="sinusoidal", max_len=32,
        scale_embedding=False, tie_embeddings=False), ("bpe", 800), {"lm_head_bias": True}),
    # (d) encoder over tokens: first-token pooling + RMSNorm (post-norm, no final norm) +
    #     ReLU + regression head with 3 outputs, no positions
    "enc_tokens_first_rmsnorm_relu_regression": (dict(
        model_type="encoder-only", d_model=32, nhead=2, num_layers=2, dim_feedforward=64,
        norm="rmsnorm", norm_eps=1e-5, norm_first=False, final_norm=False, activation="relu",
        bias=True, positional="none", max_len=40, input="tokens", scale_embedding=True,
        pooling="first", head="regression", n_outputs=3), ("unigram", 600), {}),
    # (e) encoder over feature frames (JapaneseVowels' 12 LPC coefficients): mean pooling +
    #     RoPE (theta 500000) + GQA + LayerNorm without bias + classification
    "enc_features_mean_rope_gqa_cls": (dict(
        model_type="encoder-only", d_model=64, nhead=4, num_kv_heads=2, num_layers=2,
        dim_feedforward=128, norm="layernorm", norm_eps=1e-5, norm_first=True, final_norm=True,
        activation="gelu", bias=False, positional="rope", rope_theta=500000.0, max_len=32,
        input="features", n_features=12, pooling="mean", head="classification",
        n_outputs=9), None, {}),
    # (f) no positions at all + tied embeddings with lm_head.bias + SwiGLU with biases + RMSNorm
    "dec_nope_tied_lmbias_swiglu_bias": (dict(
        model_type="decoder-only", d_model=32, nhead=2, num_layers=1, dim_feedforward=64,
        norm="rmsnorm", norm_eps=1e-6, norm_first=True, final_norm=True, activation="swiglu",
        bias=True, positional="none", max_len=32, scale_embedding=False,
        tie_embeddings=True), ("bpe", 400), {"lm_head_bias": True}),
}

BPE_OPTIONS = {k: v for k, v in train_lm.SPM_OPTIONS.items() if k != "vocab_size"}


def train_tokenizer(kind, vocab, sentences, path):
    import sentencepiece as spm
    if kind == "bpe":
        opts = BPE_OPTIONS  # unk 0, bos 1, eos 2, no pad, byte fallback
    else:
        opts = pm.SPM_OPTIONS  # unigram: pad 0, unk 1, bos 2, eos 3
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(sentences), model_writer=buf,
                                   vocab_size=vocab, minloglevel=1, **opts)
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    sp = spm.SentencePieceProcessor(model_file=path)
    assert sp.get_piece_size() == vocab
    return sp


def random_init_(model, seed):
    """Weights with sane activation ranges (see models/variants/README.md):
    linear weights N(0, g^2 / fan_in) with g = 1.5 for q and k (peaked but not one-hot
    attention) and 1 elsewhere; linear biases N(0, 0.05^2); norm weights 1 + N(0, 0.1^2),
    LayerNorm biases N(0, 0.1^2); untied embeddings and learned positions N(0, 1) and
    N(0, 0.5^2); a tied table N(0, (1.5^2) / d) (logit std ~1.5); lm_head N(0, 1.5^2 / d),
    lm_head.bias N(0, 0.1^2); the classification/regression head N(0, 1 / d)."""
    g = torch.Generator().manual_seed(seed)
    d = model.cfg["d_model"]
    tied = model.decoder and model.cfg["tie_embeddings"]

    def rn(shape, std):
        return std * torch.randn(shape, generator=g)

    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n and n.endswith(".weight"):
                p.copy_(1.0 + rn(p.shape, 0.1))
            elif "norm" in n and n.endswith(".bias"):
                p.copy_(rn(p.shape, 0.1))
            elif n == "embed.weight":
                p.copy_(rn(p.shape, 1.5 / d ** 0.5 if tied else 1.0))
            elif n == "pos.weight":
                p.copy_(rn(p.shape, 0.5))
            elif n == "lm_head.weight":
                p.copy_(rn(p.shape, 1.5 / d ** 0.5))
            elif n == "lm_head_bias":
                p.copy_(rn(p.shape, 0.1))
            elif n.endswith(".bias"):
                p.copy_(rn(p.shape, 0.05))
            elif n.endswith(".weight"):
                gain = 1.5 if (n.endswith("attn.q.weight") or n.endswith("attn.k.weight")) else 1.0
                p.copy_(rn(p.shape, gain / p.shape[1] ** 0.5))
            else:
                raise AssertionError(n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default="models/variants")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default=None, help="comma-separated variant names")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    en = pm.read_lines(os.path.join(args.data, "train.en.gz"))[:SPM_SUBSET]
    test_en = pm.read_lines(os.path.join(args.data, "test_2016_flickr.en.gz"))
    prompts = ["A man in a red"] + [" ".join(s.split()[:4]) for s in test_en[:3]]
    jv, _, _ = tc.read_ts(os.path.join(tc.aeon_data_dir(), "JapaneseVowels", "JapaneseVowels_TEST.ts"))
    jv = [torch.tensor([[float(v) for v in fr] for fr in w]) for w in jv]
    lens = [len(w) for w in jv]
    jv_ref = [jv[0], jv[100], jv[lens.index(min(lens))], jv[lens.index(max(lens))]]

    only = set(args.only.split(",")) if args.only else None
    for k, (name, (kw, tok, extra)) in enumerate(VARIANTS.items()):
        if only and name not in only:
            continue
        out_dir = os.path.join(args.out, name)
        os.makedirs(out_dir, exist_ok=True)
        sp = None
        if tok:
            kind, vocab = tok
            sp = train_tokenizer(kind, vocab, en, os.path.join(out_dir, "tokenizer.model"))
            kw = dict(kw, vocab_size=vocab, unk_id=sp.unk_id(), bos_id=sp.bos_id(),
                      eos_id=sp.eos_id(), pad_id=sp.pad_id())
        cfg = gm.make_config(**kw)
        torch.manual_seed(args.seed + k)
        model = gm.GenericModel(cfg)
        if extra.get("lm_head_bias"):
            model.add_lm_head_bias()
        random_init_(model, args.seed + k)
        model.eval()
        gm.export(model, cfg, out_dir)
        if model.decoder:
            inputs = [[sp.bos_id()] + sp.encode(p) for p in prompts]
        elif model.tokens:
            inputs = [([sp.bos_id()] + sp.encode(s))[: cfg["max_len"]]
                      for s in test_en[:3] + ["A dog."]]
        else:
            inputs = jv_ref
        ref = gm.write_reference(model, inputs, out_dir)

        print(f"{name}: {cfg}" + (" + lm_head.bias" if extra.get("lm_head_bias") else ""))
        for i in range(len(inputs)):
            if model.decoder:
                ids, gr = ref[f"ids.{i}"].tolist(), ref[f"greedy.{i}"].tolist()
                with torch.no_grad():
                    lg = model(torch.tensor([ids + gr[:-1]]))[0]
                top2 = lg[len(ids) - 1:].topk(2, dim=-1).values
                print(f"  case {i}: ids {len(ids)} greedy {len(gr)} {gr[:8]}... "
                      f"logit std {float(ref[f'logits.{i}'].std()):.2f} "
                      f"min top1-top2 gap on greedy steps {float((top2[:, 0] - top2[:, 1]).min()):.3f}")
            else:
                o = ref[f"output.{i}"]
                gap = ""
                if cfg["head"] == "classification":
                    t2 = o.topk(2).values
                    gap = f" top1-top2 {float(t2[0] - t2[1]):.3f}"
                print(f"  case {i}: input {tuple(ref[f'input.{i}'].shape)} hidden std "
                      f"{float(ref[f'hidden.{i}'].std()):.2f} output {[round(v, 3) for v in o.tolist()]}{gap}")
        sizes = {f: os.path.getsize(os.path.join(out_dir, f)) for f in sorted(os.listdir(out_dir))}
        md5 = hashlib.md5(open(os.path.join(out_dir, "model.safetensors"), "rb").read()).hexdigest()
        print(f"  files: {sizes}; model.safetensors md5 {md5}")


if __name__ == "__main__":
    main()
