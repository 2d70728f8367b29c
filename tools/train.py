#!/usr/bin/env python3
"""Train the German->English Multi30K reference model and export it for picoformer.

  python tools/train.py --data ../shared/data/multi30k --out models/de-en/export \
      [--minutes 30] [--threads 1] [--seed 0] [--spm-only] [--retrain-spm]
"""
import argparse
import copy
import hashlib
import math
import os
import random
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pymodel as pm  # noqa: E402

VOCAB = 4000
MAX_LEN = 64


def log(msg):
    print(msg, flush=True)


def make_batches(pairs, max_tokens, rng):
    """Bucket by length: sort by (src_len, tgt_len) with a little noise, then fill batches
    so that batch_size * max(padded src len, padded tgt len) <= max_tokens."""
    keyed = sorted(range(len(pairs)),
                   key=lambda i: (len(pairs[i][0]) + rng.random() * 2, len(pairs[i][1])))
    batches, cur, cur_max = [], [], 0
    for i in keyed:
        L = max(len(pairs[i][0]), len(pairs[i][1]) + 1)
        new_max = max(cur_max, L)
        if cur and new_max * (len(cur) + 1) > max_tokens:
            batches.append(cur)
            cur, new_max = [], L
        cur.append(i)
        cur_max = new_max
    if cur:
        batches.append(cur)
    rng.shuffle(batches)
    return batches


def tensors_for(pairs, idx):
    src = pm.pad_batch([pairs[i][0] + [pm.EOS_ID] for i in idx])
    tin = pm.pad_batch([[pm.BOS_ID] + pairs[i][1] for i in idx])
    tout = pm.pad_batch([pairs[i][1] + [pm.EOS_ID] for i in idx])
    return src, tin, tout


def bleu(hyps, refs):
    import sacrebleu
    return sacrebleu.corpus_bleu(hyps, [refs])


def average_states(states):
    avg = {}
    for k in states[0]:
        avg[k] = sum(s[k].float() for s in states) / len(states)
    return avg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=4000)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--warmup", type=int, default=400)
    ap.add_argument("--avg", type=int, default=5, help="average last N epoch checkpoints (chosen on val)")
    ap.add_argument("--init-from", default=None,
                    help="continue from an exported model.safetensors (fresh optimizer state)")
    ap.add_argument("--start-step", type=int, default=0,
                    help="with --init-from: step offset for the LR schedule (50-step re-warm-up)")
    ap.add_argument("--spm-only", action="store_true", help="train/save tokenizer and exit")
    ap.add_argument("--retrain-spm", action="store_true", help="retrain tokenizer even if it exists")
    args = ap.parse_args()

    t_start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    rng = random.Random(args.seed)
    log(f"command: {' '.join(sys.argv)}")
    log(f"torch {torch.__version__}, threads {torch.get_num_threads()}")

    d = args.data
    train_de = pm.read_lines(os.path.join(d, "train.de.gz"))
    train_en = pm.read_lines(os.path.join(d, "train.en.gz"))
    val_de = pm.read_lines(os.path.join(d, "val.de.gz"))
    val_en = pm.read_lines(os.path.join(d, "val.en.gz"))
    test_de = pm.read_lines(os.path.join(d, "test_2016_flickr.de.gz"))
    test_en = pm.read_lines(os.path.join(d, "test_2016_flickr.en.gz"))
    assert len(train_de) == len(train_en) and len(test_de) == len(test_en)

    # ---- 1. tokenizer
    os.makedirs(args.out, exist_ok=True)
    tok_path = os.path.join(args.out, "tokenizer.model")
    if args.retrain_spm or args.spm_only or not os.path.exists(tok_path):
        t0 = time.time()
        data = pm.train_spm(train_de + train_en, VOCAB, tok_path)
        log(f"trained sentencepiece unigram vocab {VOCAB} in {time.time() - t0:.1f}s "
            f"md5 {hashlib.md5(data).hexdigest()}")
    else:
        with open(tok_path, "rb") as f:
            log(f"reusing existing {tok_path} md5 {hashlib.md5(f.read()).hexdigest()}")
    if args.spm_only:
        return
    sp = pm.load_spm(tok_path)
    assert sp.get_piece_size() == VOCAB

    # ---- data
    enc_de = sp.encode(train_de)
    enc_en = sp.encode(train_en)
    pairs = [(s, t) for s, t in zip(enc_de, enc_en)
             if len(s) <= MAX_LEN - 1 and len(t) <= MAX_LEN - 1 and len(s) > 0 and len(t) > 0]
    log(f"train pairs kept {len(pairs)} / {len(train_de)}")
    val_pairs = [(s[: MAX_LEN - 1], t[: MAX_LEN - 1])
                 for s, t in zip(sp.encode(val_de), sp.encode(val_en))]

    # ---- model
    cfg = pm.make_config()
    model = pm.Seq2Seq(cfg, dropout=0.1)
    if args.init_from:
        from safetensors.torch import load_file
        sd = load_file(args.init_from)
        missing = model.load_state_dict(sd, strict=False)
        assert not missing.unexpected_keys and missing.missing_keys == [], missing
        log(f"initialised from {args.init_from}; LR schedule starts at step {args.start_step}")
    nparams = sum(p.numel() for p in model.parameters())
    log(f"model params {nparams}")
    crit = nn.CrossEntropyLoss(ignore_index=pm.PAD_ID, label_smoothing=0.1)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), eps=1e-9,
                            weight_decay=0.01)

    def lr_at(step):  # step starts at 1
        if args.init_from:
            return min(1.0, step / 50) * args.lr * math.sqrt(args.warmup / max(args.warmup, step + args.start_step))
        if step <= args.warmup:
            return args.lr * step / args.warmup
        return args.lr * math.sqrt(args.warmup / step)

    @torch.no_grad()
    def val_loss():
        model.eval()
        tot, n = 0.0, 0
        vb = make_batches(val_pairs, 8000, random.Random(0))
        for idx in vb:
            src, tin, tout = tensors_for(val_pairs, idx)
            logits = model(src, tin)
            ntok = int(tout.ne(pm.PAD_ID).sum())
            tot += float(crit(logits.reshape(-1, VOCAB), tout.reshape(-1))) * ntok
            n += ntok
        model.train()
        return tot / n

    budget = args.minutes * 60.0
    t_train = time.time()
    step, epoch = 0, 0
    ckpts = []  # last N epoch-end state dicts
    tok_count, t_log = 0, time.time()
    model.train()
    stop = False
    while not stop:
        epoch += 1
        for idx in make_batches(pairs, args.max_tokens, rng):
            step += 1
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            src, tin, tout = tensors_for(pairs, idx)
            logits = model(src, tin)
            loss = crit(logits.reshape(-1, VOCAB), tout.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            tok_count += int(tout.ne(pm.PAD_ID).sum())
            if step % 50 == 0:
                now = time.time()
                log(f"step {step} epoch {epoch} loss {loss.item():.4f} lr {lr_at(step):.2e} "
                    f"tgt_tok/s {tok_count / (now - t_log):.0f} elapsed {now - t_start:.0f}s")
                tok_count, t_log = 0, now
            if time.time() - t_train > budget:
                stop = True
                break
        if not stop:
            ckpts.append(copy.deepcopy(model.state_dict()))
            ckpts = ckpts[-args.avg:]
            log(f"end epoch {epoch} step {step} val_loss {val_loss():.4f} "
                f"elapsed {time.time() - t_start:.0f}s")
    log(f"training stopped at step {step} (epoch {epoch}) after {time.time() - t_train:.0f}s")

    # ---- choose final vs checkpoint average on val (greedy BLEU)
    torch.backends.mha.set_fastpath_enabled(False)
    model.eval()
    val_src = [pm.src_ids(sp, s, MAX_LEN) for s in val_de]

    def val_bleu():
        hyps = [pm.ids_to_text(sp, h) for h in pm.greedy_decode(model, val_src)]
        return bleu(hyps, val_en).score

    final_state = copy.deepcopy(model.state_dict())
    b_final = val_bleu()
    log(f"val greedy BLEU final weights: {b_final:.2f}")
    best_state, best_name, best_b = final_state, "final", b_final
    if len(ckpts) >= 2:
        states = ckpts + [final_state]
        model.load_state_dict(average_states(states))
        b_avg = val_bleu()
        log(f"val greedy BLEU average of last {len(states)} (epoch ends + final): {b_avg:.2f}")
        if b_avg > b_final:
            best_state, best_name, best_b = model.state_dict(), f"avg{len(states)}", b_avg
    model.load_state_dict(best_state)
    log(f"using weights: {best_name} (val BLEU {best_b:.2f})")

    # ---- test2016 greedy BLEU
    t0 = time.time()
    test_src = [pm.src_ids(sp, s, MAX_LEN) for s in test_de]
    hyps = [pm.ids_to_text(sp, h) for h in pm.greedy_decode(model, test_src)]
    res = bleu(hyps, test_en)
    hyp_path = os.path.join(os.path.dirname(os.path.abspath(args.out)), "float_test2016.en")
    with open(hyp_path, "w", encoding="utf-8") as f:
        for h in hyps:
            f.write(h + "\n")
    log(f"test2016 greedy sacreBLEU: {res.score:.2f}  ({res})  decode {time.time() - t0:.0f}s")
    log(f"wrote {hyp_path}")

    # ---- export
    pm.export_model(model, args.out, tok_path, test_de[:4])
    log(f"exported to {args.out}")
    log(f"total wall time {time.time() - t_start:.0f}s")


if __name__ == "__main__":
    main()
