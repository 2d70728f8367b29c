#!/usr/bin/env python3
"""Export small randomly initialised models in the same layout as tools/train.py, to
check that the Rust converter/runtime is not hard-coded to one architecture.

  python tools/export_variants.py --data ../shared/data/multi30k --out models/variants [--seed 0]

Each models/variants/<name>/ gets config.json, model.safetensors, tokenizer.model and
reference.safetensors (same keys as the de-en export, computed by the random model).
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pymodel as pm  # noqa: E402

VARIANTS = {
    "prenorm_gelu": dict(d_model=64, nhead=2, num_encoder_layers=1, num_decoder_layers=2,
                         dim_feedforward=96, activation="gelu", norm_first=True,
                         tie_embeddings=False, scale_embedding=False, vocab_size=1000),
    "postnorm_relu_tied": dict(d_model=48, nhead=3, num_encoder_layers=2, num_decoder_layers=1,
                               dim_feedforward=128, activation="relu", norm_first=False,
                               tie_embeddings=True, scale_embedding=True, vocab_size=500),
    "prenorm_relu_untied": dict(d_model=32, nhead=4, num_encoder_layers=1, num_decoder_layers=1,
                                dim_feedforward=64, activation="relu", norm_first=True,
                                tie_embeddings=False, scale_embedding=True, vocab_size=800,
                                max_len=32),
}

SPM_SUBSET = 4000  # sentences from each of train.de / train.en


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default="models/variants")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.backends.mha.set_fastpath_enabled(False)

    de = pm.read_lines(os.path.join(args.data, "train.de.gz"))[:SPM_SUBSET]
    en = pm.read_lines(os.path.join(args.data, "train.en.gz"))[:SPM_SUBSET]
    test_de = pm.read_lines(os.path.join(args.data, "test_2016_flickr.de.gz"))[:4]

    for k, (name, kw) in enumerate(VARIANTS.items()):
        out_dir = os.path.join(args.out, name)
        os.makedirs(out_dir, exist_ok=True)
        cfg = pm.make_config(**kw)
        tok = os.path.join(out_dir, "tokenizer.model")
        pm.train_spm(de + en, cfg["vocab_size"], tok)
        torch.manual_seed(args.seed + k)
        model = pm.Seq2Seq(cfg, dropout=0.0)
        pm.random_init_(model, seed=args.seed + k)
        model.eval()
        ref = pm.export_model(model, out_dir, tok, test_de)
        sizes = {f: os.path.getsize(os.path.join(out_dir, f)) for f in sorted(os.listdir(out_dir))}
        print(f"{name}: {cfg}")
        for i in range(4):
            lg = ref[f"logits.{i}"]
            print(f"  sent {i}: src {len(ref[f'src_ids.{i}'])} greedy {len(ref[f'greedy.{i}'])} "
                  f"memory std {ref[f'memory.{i}'].std():.3f} logits std {lg.std():.3f} "
                  f"max-min {float((lg.max(-1).values - lg.min(-1).values).mean()):.2f} "
                  f"greedy[:10] {ref[f'greedy.{i}'][:10].tolist()}")
        print(f"  files: {sizes} total {sum(sizes.values())} bytes")


if __name__ == "__main__":
    main()
