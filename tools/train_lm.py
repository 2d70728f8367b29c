#!/usr/bin/env python3
"""Train the Llama-style caption language model (models/captions-lm) on the Multi30K English
training captions and export it for picoformer (docs/export-format.md §2, decoder-only).

  python tools/train_lm.py --data ../shared/data/multi30k --out models/captions-lm/export --spm-only
  python tools/train_lm.py --data ../shared/data/multi30k --out models/captions-lm/export \
      [--steps 7000] [--minutes 30] [--threads 1] [--seed 0]

Writes, beside the export directory (models/captions-lm/): calib.en, test2016.en, prompts.txt.
Writes into it: tokenizer.model (SentencePiece BPE, Llama's conventions), config.json,
model.safetensors, reference.safetensors.
"""
import argparse
import gzip
import hashlib
import io
import math
import os
import random
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generic_model as gm  # noqa: E402

VOCAB = 2000
MAX_LEN = 64
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2

# Llama's tokenizer conventions (byte fallback, digits split, no normalisation, no pad).
SPM_OPTIONS = dict(
    model_type="bpe",
    vocab_size=VOCAB,
    character_coverage=0.9995,
    byte_fallback=True,
    split_digits=True,
    normalization_rule_name="identity",
    add_dummy_prefix=True,
    remove_extra_whitespaces=False,
    unk_id=UNK_ID,
    bos_id=BOS_ID,
    eos_id=EOS_ID,
    pad_id=-1,
    num_threads=1,  # deterministic
)

MODEL = dict(
    model_type="decoder-only", d_model=128, nhead=4, num_kv_heads=2, num_layers=4,
    dim_feedforward=256, norm="rmsnorm", norm_eps=1e-5, norm_first=True, final_norm=True,
    activation="swiglu", bias=False, positional="rope", rope_theta=10000.0, max_len=MAX_LEN,
    vocab_size=VOCAB, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID, scale_embedding=False,
    tie_embeddings=False,
)

REF_PROMPTS = ["A man in a red"]  # + the first prompts of prompts.txt
N_REF_FROM_FILE = 5


def log(msg):
    print(msg, flush=True)


def read_lines(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as f:
        for line in lines:
            assert "\n" not in line
            f.write(line + "\n")


def train_spm(sentences, out_path):
    import sentencepiece as spm
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(sentences), model_writer=buf,
                                   minloglevel=1, **SPM_OPTIONS)
    data = buf.getvalue()
    with open(out_path, "wb") as f:
        f.write(data)
    return data


def sequence(sp, text):
    """[bos] + pieces + [eos], truncated to MAX_LEN tokens."""
    return ([BOS_ID] + sp.encode(text) + [EOS_ID])[:MAX_LEN]


def make_batches(seqs, max_tokens, rng):
    """Length-bucketed batches with batch * (padded length - 1) <= max_tokens."""
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]) + rng.random() * 2)
    batches, cur, cur_max = [], [], 0
    for i in order:
        L = len(seqs[i]) - 1
        m = max(cur_max, L)
        if cur and m * (len(cur) + 1) > max_tokens:
            batches.append(cur)
            cur, m = [], L
        cur.append(i)
        cur_max = m
    if cur:
        batches.append(cur)
    rng.shuffle(batches)
    return batches


def tensors(seqs, idx):
    """inputs (B, T) padded with eos (masked), targets (B, T) padded with -100, lengths (B,)."""
    T = max(len(seqs[i]) for i in idx) - 1
    inp = torch.full((len(idx), T), EOS_ID, dtype=torch.long)
    tgt = torch.full((len(idx), T), -100, dtype=torch.long)
    lens = torch.zeros(len(idx), dtype=torch.long)
    for j, i in enumerate(idx):
        s = seqs[i]
        inp[j, : len(s) - 1] = torch.tensor(s[:-1])
        tgt[j, : len(s) - 1] = torch.tensor(s[1:])
        lens[j] = len(s) - 1
    return inp, tgt, lens


@torch.no_grad()
def mean_nll(model, seqs, max_tokens=8000):
    """Mean NLL (nats) over every predicted token (eos included, bos as the first input)."""
    was = model.training
    model.eval()
    tot, n = 0.0, 0
    for idx in make_batches(seqs, max_tokens, random.Random(0)):
        inp, tgt, lens = tensors(seqs, idx)
        logits = model(inp, lens)
        tot += float(F.cross_entropy(logits.reshape(-1, VOCAB), tgt.reshape(-1),
                                     ignore_index=-100, reduction="sum"))
        n += int(tgt.ne(-100).sum())
    model.train(was)
    return tot / n, n


def init_weights(model, seed):
    """Scaled normal init: N(0, 1/sqrt(fan_in)) for q, k, v, gate, up and lm_head, the same
    divided by sqrt(2 * num_layers) for the residual outputs o and down, N(0, 1) embeddings,
    norm weights 1."""
    g = torch.Generator().manual_seed(seed)
    L = model.cfg["num_layers"]
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.fill_(1.0)
            elif n == "embed.weight":
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                std = p.shape[1] ** -0.5
                if n.endswith("attn.o.weight") or n.endswith("ffn.down.weight"):
                    std /= math.sqrt(2 * L)
                p.copy_(std * torch.randn(p.shape, generator=g))


def evaluate_export(out_dir, sp, val, test, prompts, out_path):
    model, _ = gm.load(out_dir)
    for name, texts in (("val", val), ("test2016", test)):
        nll, n = mean_nll(model, [sequence(sp, t) for t in texts])
        log(f"{name}: mean nll {nll:.4f} per-token ppl {math.exp(nll):.3f} over {n} tokens (exported model)")
    n_eos, lines = 0, []
    for p in prompts:
        g = model.greedy([BOS_ID] + sp.encode(p), 20)
        n_eos += int(bool(g) and g[-1] == EOS_ID)
        lines.append(sp.decode([t for t in g if t != EOS_ID]))
    write_lines(out_path, lines)
    log(f"wrote {out_path}: float greedy continuations (at most 20 tokens) of {len(prompts)} prompts, "
        f"{n_eos} end with eos")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=7000, help="step budget")
    ap.add_argument("--minutes", type=float, default=30.0, help="training time budget")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=2048)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--spm-only", action="store_true", help="train/save tokenizer and exit")
    ap.add_argument("--retrain-spm", action="store_true")
    ap.add_argument("--eval-only", action="store_true",
                    help="load the export, recompute val/test2016 perplexity, and write the float "
                         "greedy continuations of prompts.txt to float_prompts.txt")
    args = ap.parse_args()

    t_start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    log(f"command: {' '.join(sys.argv)}")
    log(f"torch {torch.__version__}, threads {torch.get_num_threads()}")

    train = read_lines(os.path.join(args.data, "train.en.gz"))
    val = read_lines(os.path.join(args.data, "val.en.gz"))
    test = read_lines(os.path.join(args.data, "test_2016_flickr.en.gz"))

    # ---- 1. tokenizer
    os.makedirs(args.out, exist_ok=True)
    tok_path = os.path.join(args.out, "tokenizer.model")
    if args.retrain_spm or args.spm_only or not os.path.exists(tok_path):
        t0 = time.time()
        data = train_spm(train, tok_path)
        log(f"trained sentencepiece BPE vocab {VOCAB} in {time.time() - t0:.1f}s "
            f"md5 {hashlib.md5(data).hexdigest()}")
    else:
        with open(tok_path, "rb") as f:
            log(f"reusing {tok_path} md5 {hashlib.md5(f.read()).hexdigest()}")
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=tok_path)
    assert sp.get_piece_size() == VOCAB
    assert (sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()) == (UNK_ID, BOS_ID, EOS_ID, -1)

    # ---- plain-text files beside the export
    base = os.path.dirname(os.path.abspath(args.out))
    calib = train[::96][:300]  # every 96th training caption, as models/de-en/calib.en
    prompts = [" ".join(s.split()[:4]) for s in test[:200]]
    write_lines(os.path.join(base, "calib.en"), calib)
    write_lines(os.path.join(base, "test2016.en"), test)
    write_lines(os.path.join(base, "prompts.txt"), prompts)
    log(f"wrote calib.en ({len(calib)}), test2016.en ({len(test)}), prompts.txt ({len(prompts)})")
    if args.spm_only:
        return
    if args.eval_only:
        evaluate_export(args.out, sp, val, test, prompts, os.path.join(base, "float_prompts.txt"))
        log(f"total wall time {time.time() - t_start:.0f}s")
        return

    # ---- data
    seqs = [sequence(sp, s) for s in train]
    val_seqs = [sequence(sp, s) for s in val]
    test_seqs = [sequence(sp, s) for s in test]
    for name, ss, raw in (("train", seqs, train), ("val", val_seqs, val), ("test2016", test_seqs, test)):
        cut = sum(1 for s in raw if len(sp.encode(s)) + 2 > MAX_LEN)
        log(f"{name}: {len(ss)} captions, {sum(len(s) - 1 for s in ss)} predicted tokens, "
            f"mean length {sum(len(s) for s in ss) / len(ss):.1f}, truncated {cut}, "
            f"unk {sum(s.count(UNK_ID) for s in ss)}")

    # ---- model
    cfg = gm.make_config(**MODEL)
    model = gm.GenericModel(cfg, dropout=args.dropout)
    init_weights(model, args.seed)
    nparams = sum(p.numel() for p in model.parameters())
    log(f"config {cfg}")
    log(f"model params {nparams}")
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)

    # Progress runs from 0 to 1 over --steps steps or --minutes of training, whichever comes
    # first: on a fast machine the run is step-bound and bit-reproducible; on a busy one it
    # is time-bound and still ends with the learning rate fully decayed.
    budget = args.minutes * 60.0
    warm_frac = args.warmup / args.steps

    def lr_at(progress):  # linear warm-up, then cosine to min_lr_frac * lr
        if progress <= warm_frac:
            return args.lr * progress / warm_frac
        t = min(1.0, (progress - warm_frac) / (1 - warm_frac))
        return args.lr * (args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * t)))

    t_train = time.time()
    step, epoch = 0, 0
    tok_count, loss_sum, loss_n, t_log = 0, 0.0, 0, time.time()
    model.train()
    stop = False
    while not stop:
        epoch += 1
        for idx in make_batches(seqs, args.max_tokens, rng):
            step += 1
            progress = max(step / args.steps, (time.time() - t_train) / budget)
            lr = lr_at(progress)
            for g in opt.param_groups:
                g["lr"] = lr
            inp, tgt, lens = tensors(seqs, idx)
            logits = model(inp, lens)
            loss = F.cross_entropy(logits.reshape(-1, VOCAB), tgt.reshape(-1), ignore_index=-100)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            ntok = int(tgt.ne(-100).sum())
            tok_count += ntok
            loss_sum += loss.item() * ntok
            loss_n += ntok
            if step % 50 == 0:
                now = time.time()
                log(f"step {step} epoch {epoch} loss {loss_sum / loss_n:.4f} lr {lr:.2e} progress {progress:.3f} "
                    f"tok/s {tok_count / (now - t_log):.0f} elapsed {now - t_start:.0f}s")
                tok_count, loss_sum, loss_n, t_log = 0, 0.0, 0, now
            if step % args.eval_every == 0:
                v, _ = mean_nll(model, val_seqs)
                log(f"step {step} val nll {v:.4f} ppl {math.exp(v):.2f} elapsed {time.time() - t_start:.0f}s")
            if progress >= 1.0:
                log(f"{'step' if step >= args.steps else 'time'} budget reached at step {step}")
                stop = True
                break
    log(f"training stopped at step {step} (epoch {epoch}) after {time.time() - t_train:.0f}s")

    # ---- evaluation
    model.eval()
    v, nv = mean_nll(model, val_seqs)
    t, nt = mean_nll(model, test_seqs)
    log(f"val: mean nll {v:.4f} per-token ppl {math.exp(v):.3f} over {nv} tokens")
    log(f"test2016: mean nll {t:.4f} per-token ppl {math.exp(t):.3f} over {nt} tokens")

    # ---- export
    gm.export(model, cfg, args.out)
    ref_prompts = REF_PROMPTS + prompts[:N_REF_FROM_FILE]
    ref_ids = [[BOS_ID] + sp.encode(p) for p in ref_prompts]
    ref = gm.write_reference(model, ref_ids, args.out)
    for i, p in enumerate(ref_prompts):
        ids, g = ref[f"ids.{i}"].tolist(), ref[f"greedy.{i}"].tolist()
        with torch.no_grad():  # top-1 minus top-2 logit at every greedy decision
            lg = model(torch.tensor([ids + g[:-1]]))[0, len(ids) - 1:]
        top2 = lg.topk(2, dim=-1).values
        log(f"greedy {i}: {p!r} -> {sp.decode([x for x in g if x != EOS_ID])!r} "
            f"({len(g)} tokens, eos {'yes' if g and g[-1] == EOS_ID else 'no'}; "
            f"min top1-top2 logit gap over the greedy steps {float((top2[:, 0] - top2[:, 1]).min()):.3f})")
    log(f"exported to {args.out}")
    log(f"total wall time {time.time() - t_start:.0f}s")


if __name__ == "__main__":
    main()
