#!/usr/bin/env python3
"""Train a small encoder-only Transformer classifier on a multivariate time-series dataset of
the UEA/UCR archive (as shipped in the `aeon` wheel) and export it for picoformer
(docs/export-format.md §2: encoder-only, feature input, mean pooling, classification head).

  python tools/train_classifier.py --dataset JapaneseVowels --out models/japanese-vowels
  python tools/train_classifier.py --dataset BasicMotions --out models/basic-motions

Writes into --out: train.csv, train.labels, test.csv, test.labels (the data as read, in the
"Calibration input" CSV format: one line per frame, windows separated by a blank line; labels
one class index per line) and export/ (config.json, model.safetensors, reference.safetensors).
The per-feature standardisation used in training is folded into input_proj, so the exported
model takes the raw features of the CSV files.

--val-frac F holds out a stratified fraction F of the training windows and reports accuracy
on it (for choosing the recipe without looking at the test set); the export always comes from
a run on the whole training set.
"""
import argparse
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generic_model as gm  # noqa: E402

# Per dataset: model shape and training recipe.
RECIPES = {
    "JapaneseVowels": dict(
        model=dict(d_model=48, nhead=4, num_layers=2, dim_feedforward=96, max_len=32),
        labels=[f"speaker {i}" for i in range(1, 10)],
        epochs=200, batch=16, lr=2e-3, wd=0.1, dropout=0.1, noise=0.3),
    "BasicMotions": dict(
        model=dict(d_model=32, nhead=2, num_layers=2, dim_feedforward=64, max_len=100),
        labels=None,  # the archive's class names
        epochs=300, batch=8, lr=2e-3, wd=0.05, dropout=0.1, noise=0.1),
}


def log(msg):
    print(msg, flush=True)


def aeon_data_dir():
    import aeon
    return os.path.join(os.path.dirname(aeon.__file__), "datasets", "data")


def read_ts(path):
    """A .ts file of the archive -> (windows, labels, class_names). Each window is a list of
    frames, each frame a list of the value strings as written in the file (dimensions are
    ':'-separated series, values ','-separated; the class label comes last)."""
    class_names, windows, labels, in_data = None, [], [], False
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                low = line.lower()
                if low.startswith("@classlabel"):
                    parts = line.split()
                    assert parts[1].lower() == "true"
                    class_names = parts[2:]
                elif low.startswith("@data"):
                    in_data = True
                continue
            dims = line.split(":")
            label = dims[-1]
            series = [d.split(",") for d in dims[:-1]]
            n = len(series[0])
            assert all(len(s) == n for s in series), "unequal lengths across dimensions"
            assert not any(v == "?" or v.lower() == "nan" for s in series for v in s)
            windows.append([[series[c][t] for c in range(len(series))] for t in range(n)])
            labels.append(class_names.index(label))
    return windows, labels, class_names


def f32_text(v):
    """Shortest plain-decimal text that reads back as the same float32 (no exponent)."""
    return np.format_float_positional(np.float32(v), unique=True, trim="-")


def write_csv(path, windows):
    with open(path, "w") as f:
        for i, w in enumerate(windows):
            if i:
                f.write("\n")
            for frame in w:
                f.write(",".join(f32_text(float(v)) for v in frame) + "\n")


def read_csv(path):
    """The CSV format above -> list of float32 arrays (n, n_features)."""
    windows, cur = [], []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                if cur:
                    windows.append(np.array(cur, dtype=np.float32))
                cur = []
                continue
            cur.append([float(x) for x in line.split(",")])
    if cur:
        windows.append(np.array(cur, dtype=np.float32))
    return windows


def batch_tensors(windows, idx):
    lens = torch.tensor([len(windows[i]) for i in idx])
    T = int(lens.max())
    nf = windows[idx[0]].shape[1]
    x = torch.zeros(len(idx), T, nf)
    for j, i in enumerate(idx):
        x[j, : len(windows[i])] = torch.from_numpy(windows[i])
    return x, lens


@torch.no_grad()
def accuracy(model, windows, labels, batch=64):
    model.eval()
    correct = 0
    for b in range(0, len(windows), batch):
        idx = list(range(b, min(b + batch, len(windows))))
        x, lens = batch_tensors(windows, idx)
        pred = model(x, lens).argmax(-1)
        correct += int((pred == torch.tensor([labels[i] for i in idx])).sum())
    return correct / len(windows)


def fold_standardisation(model, mu, sd):
    """The model was trained on (f - mu) / sd; make input_proj take raw f:
    W' = W / sd (per input column), b' = b - W' mu."""
    with torch.no_grad():
        W = model.input_proj.weight / sd.view(1, -1)
        b = model.input_proj.bias - W @ mu
        model.input_proj.weight.copy_(W)
        model.input_proj.bias.copy_(b)


def train(cfg, rec, windows, labels, mu, sd, seed, epochs):
    """Train on standardised windows (float32 arrays); returns the model (eval mode)."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = gm.GenericModel(cfg, dropout=rec["dropout"])
    std_w = [(w - mu.numpy()) / sd.numpy() for w in windows]
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and n != "pos.weight"]
    other = [p for n, p in model.named_parameters() if not (p.dim() == 2 and n != "pos.weight")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": rec["wd"]},
                             {"params": other, "weight_decay": 0.0}], lr=rec["lr"])
    steps_per_epoch = math.ceil(len(std_w) / rec["batch"])
    total = epochs * steps_per_epoch
    warm = min(100, total // 10)
    gen = torch.Generator().manual_seed(seed)

    def lr_at(s):
        if s <= warm:
            return rec["lr"] * s / warm
        return rec["lr"] * 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm)))

    step = 0
    model.train()
    for ep in range(1, epochs + 1):
        order = list(range(len(std_w)))
        rng.shuffle(order)
        tot, n = 0.0, 0
        for b in range(0, len(order), rec["batch"]):
            idx = order[b: b + rec["batch"]]
            step += 1
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            x, lens = batch_tensors(std_w, idx)
            if rec["noise"]:
                x = x + rec["noise"] * torch.randn(x.shape, generator=gen)
            y = torch.tensor([labels[i] for i in idx])
            loss = F.cross_entropy(model(x, lens), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            tot += loss.item() * len(idx)
            n += len(idx)
        if ep % 25 == 0 or ep == epochs:
            acc = accuracy(model, std_w, labels)
            model.train()
            log(f"epoch {ep} step {step} loss {tot / n:.4f} train acc {acc:.4f} lr {lr_at(step):.2e}")
    model.eval()
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", required=True, choices=sorted(RECIPES))
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--val-frac", type=float, default=0.0)
    for k in ("lr", "wd", "dropout", "noise"):
        ap.add_argument("--" + k, type=float, default=None, help="override the recipe")
    args = ap.parse_args()
    t_start = time.time()
    torch.set_num_threads(args.threads)
    log(f"command: {' '.join(sys.argv)}")
    log(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    rec = dict(RECIPES[args.dataset])
    for k in ("lr", "wd", "dropout", "noise"):
        if getattr(args, k) is not None:
            rec[k] = getattr(args, k)
    log(f"recipe {rec}")
    epochs = args.epochs or rec["epochs"]

    # ---- data: the archive's .ts files -> committed CSV (+ labels), read back from the CSV
    src = os.path.join(aeon_data_dir(), args.dataset)
    os.makedirs(args.out, exist_ok=True)
    names = None
    for split in ("train", "test"):
        w, y, cn = read_ts(os.path.join(src, f"{args.dataset}_{split.upper()}.ts"))
        assert names is None or names == cn
        names = cn
        write_csv(os.path.join(args.out, f"{split}.csv"), w)
        with open(os.path.join(args.out, f"{split}.labels"), "w") as f:
            f.write("".join(f"{c}\n" for c in y))
    tr_w = read_csv(os.path.join(args.out, "train.csv"))
    te_w = read_csv(os.path.join(args.out, "test.csv"))
    tr_y = [int(x) for x in open(os.path.join(args.out, "train.labels"))]
    te_y = [int(x) for x in open(os.path.join(args.out, "test.labels"))]
    nf = tr_w[0].shape[1]
    lens = [len(w) for w in tr_w + te_w]
    log(f"{args.dataset}: {len(tr_w)} train / {len(te_w)} test windows, {nf} features, "
        f"{len(names)} classes {names}, lengths {min(lens)}-{max(lens)}")
    log("train class counts " + str(np.bincount(tr_y).tolist()) + ", test " + str(np.bincount(te_y).tolist()))

    cfg = gm.make_config(model_type="encoder-only", num_kv_heads=rec["model"]["nhead"],
                         norm="layernorm", norm_first=True, final_norm=True, activation="gelu",
                         bias=True, positional="learned", input="features", n_features=nf,
                         pooling="mean", head="classification", n_outputs=len(names),
                         labels=rec["labels"] or names, **rec["model"])
    assert max(lens) <= cfg["max_len"]
    log(f"config {cfg}")

    def standardisation(windows):
        allf = torch.from_numpy(np.concatenate(windows, 0)).double()
        return allf.mean(0).float(), allf.std(0).clamp_min(1e-6).float()

    if args.val_frac > 0:  # recipe check on a stratified hold-out of the training set
        rng = random.Random(args.seed)
        val_idx = []
        for c in range(len(names)):
            members = [i for i, y in enumerate(tr_y) if y == c]
            rng.shuffle(members)
            val_idx += members[: max(1, round(args.val_frac * len(members)))]
        vs = set(val_idx)
        fit_idx = [i for i in range(len(tr_w)) if i not in vs]
        fw, fy = [tr_w[i] for i in fit_idx], [tr_y[i] for i in fit_idx]
        mu, sd = standardisation(fw)
        m = train(cfg, rec, fw, fy, mu, sd, args.seed, epochs)
        fold_standardisation(m, mu, sd)
        acc = accuracy(m, [tr_w[i] for i in val_idx], [tr_y[i] for i in val_idx])
        log(f"hold-out: fit on {len(fit_idx)}, validation accuracy {acc:.4f} on {len(val_idx)}")
        log(f"total wall time {time.time() - t_start:.0f}s")
        return

    mu, sd = standardisation(tr_w)
    log("feature mean " + " ".join(f"{v:.4g}" for v in mu.tolist()))
    log("feature std  " + " ".join(f"{v:.4g}" for v in sd.tolist()))
    t0 = time.time()
    model = train(cfg, rec, tr_w, tr_y, mu, sd, args.seed, epochs)
    log(f"trained {epochs} epochs in {time.time() - t0:.0f}s, "
        f"params {sum(p.numel() for p in model.parameters())}")
    fold_standardisation(model, mu, sd)

    # ---- export (raw-feature model), then evaluate the exported file itself
    exp_dir = os.path.join(args.out, "export")
    gm.export(model, cfg, exp_dir)
    loaded, _ = gm.load(exp_dir)
    tr_acc = accuracy(loaded, tr_w, tr_y)
    te_acc = accuracy(loaded, te_w, te_y)
    with torch.no_grad():  # batch size 1, no padding: what the device runs
        pred1 = [int(loaded(torch.from_numpy(w).unsqueeze(0)).argmax(-1)) for w in te_w]
    te_acc1 = sum(int(p == y) for p, y in zip(pred1, te_y)) / len(te_y)
    assert te_acc1 == te_acc
    conf = np.zeros((len(names), len(names)), dtype=int)
    for p, y in zip(pred1, te_y):
        conf[y, p] += 1
    log(f"exported model on raw features: train accuracy {tr_acc:.4f}, "
        f"test accuracy {te_acc:.4f} ({sum(int(p == y) for p, y in zip(pred1, te_y))}/{len(te_y)})")
    log("test confusion (rows true, cols predicted):\n" + "\n".join(" ".join(f"{v:3d}" for v in r) for r in conf))
    with open(os.path.join(args.out, "float_test_predictions.labels"), "w") as f:
        f.write("".join(f"{p}\n" for p in pred1))

    # reference windows: the first test window of every ceil(classes / 4)-th class, and for
    # variable lengths also the shortest and the longest test window
    step_c = math.ceil(len(names) / 4)
    ref_idx = [te_y.index(c) for c in range(0, len(names), step_c) if c in te_y]
    tl = [len(w) for w in te_w]
    if min(tl) != max(tl):
        ref_idx += [tl.index(min(tl)), tl.index(max(tl))]
    log(f"reference windows: test {ref_idx}")
    ref_windows = [te_w[i] for i in ref_idx]
    ref = gm.write_reference(loaded, ref_windows, exp_dir)
    for i in range(len(ref_windows)):
        o = ref[f"output.{i}"]
        top2 = o.topk(2).values
        log(f"reference {i}: {tuple(ref[f'input.{i}'].shape)} -> class {int(o.argmax())} "
            f"({cfg['labels'][int(o.argmax())]}), top1-top2 {float(top2[0] - top2[1]):.3f}, "
            f"hidden std {float(ref[f'hidden.{i}'].std()):.3f}")
    log(f"exported to {exp_dir}")
    log(f"total wall time {time.time() - t_start:.0f}s")


if __name__ == "__main__":
    main()
