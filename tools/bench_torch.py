"""Host baseline for BENCHMARKS.md: PyTorch float greedy decoding, one thread, batch size 1.

    /work/venv/bin/python tools/bench_torch.py [--export models/de-en/export]
        [--src models/de-en/test2016.de] [--limit N]

Loads the trained export (config.json, model.safetensors, tokenizer.model), greedy-decodes every
source line with `pymodel.greedy_decode` (batch size 1; the decoder reruns over the whole prefix
each step, as nn.Transformer does without a KV cache) and prints sentences per second. The timing
covers tokenization, encoding and decoding, the same span as `picoformer eval`'s figure.
"""
import argparse
import json
import os
import platform
import sys
import time
import warnings

import sentencepiece as spm
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pymodel  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--export", default="models/de-en/export")
    ap.add_argument("--src", default="models/de-en/test2016.de")
    ap.add_argument("--limit", type=int, default=None, help="first N lines only")
    a = ap.parse_args()
    warnings.filterwarnings("ignore", message=".*nested tensors.*")

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    with open(os.path.join(a.export, "config.json")) as f:
        cfg = json.load(f)
    model = pymodel.Seq2Seq(cfg, dropout=0.0)
    model.load_state_dict(load_file(os.path.join(a.export, "model.safetensors")))
    model.eval()
    sp = spm.SentencePieceProcessor(model_file=os.path.join(a.export, "tokenizer.model"))
    with open(a.src, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f][: a.limit]

    # warm-up (first-call allocations and kernel selection)
    pymodel.greedy_decode(model, [pymodel.src_ids(sp, lines[0], cfg["max_len"])], batch_size=1)
    tokens = 0
    hyps = []
    t0 = time.perf_counter()
    with torch.inference_mode():
        for text in lines:
            out = pymodel.greedy_decode(model, [pymodel.src_ids(sp, text, cfg["max_len"])], batch_size=1)[0]
            tokens += len(out)
            hyps.append(out)
    dt = time.perf_counter() - t0
    # sanity: the same greedy output as the export's stored float translations
    ref = os.path.join(os.path.dirname(a.src), "float_" + os.path.basename(a.src)[:-3] + ".en")
    if os.path.exists(ref):
        with open(ref, encoding="utf-8") as f:
            want = [line.rstrip("\n") for line in f]
        same = sum(pymodel.ids_to_text(sp, h) == w for h, w in zip(hyps, want))
        print(f"identical to {ref}: {same}/{len(hyps)}")
    print(f"torch {torch.__version__}, float32, 1 thread, batch 1, {platform.processor() or platform.machine()}")
    print(f"{len(lines)} sentences, {tokens} output tokens (eos included) in {dt:.2f} s: "
          f"{len(lines) / dt:.1f} sentences/s, {tokens / dt:.0f} tokens/s")


if __name__ == "__main__":
    main()
