"""Where de-en's int8 loses against float: a float simulation of the export that quantizes one
thing at a time (issue 12), greedy, identical-to-float share and sacreBLEU on test2016 and on
the held-out multi30k val set (not used for calibration).

    /work/venv/bin/python tools/quant_attribution.py [VARIANT ...]

A variant joins parts with `+`: `w` int8 weights per row (max |w|), `g` GPTQ-rounded int8
weights but the embedding table, `ge` GPTQ including the tied table, `go` GPTQ in act order
(largest Gram diagonal first), `gc` GPTQ with each row's scale clipped where its Gram-weighted
rounding loss is least; `q`, `k`, `v` int8 at their calibrated max |x| (calib.de/calib.en,
teacher-forced), `qenc` Q int8 in the encoder only, `kc` K per channel with Q per channel at the
inverse scale (so every product q_d·k_d keeps one scale: no kernel change), `vc` V per channel;
`p` probabilities in 1/256 capped at 255, `pm` in 1/255 of the row's largest, `p16` in Q15;
`a16` every int16 site; `all` = w+q+k+v+p+a16, `gall` = g+q+k+v+p+a16. The simulation keeps
float LayerNorm, softmax and requantization, so `all` sits a little above the integer runtime
(`picoformer eval`). Results: models/de-en/README.md. Needs torch (never in CI)."""
import gzip, math, json, os, sys
import torch, torch.nn.functional as F
import sentencepiece as spm
from safetensors.torch import load_file
import sacrebleu

torch.set_num_threads(1)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DE_EN = os.path.join(ROOT, "models/de-en")
EXP = os.path.join(DE_EN, "export")
DATA = os.environ.get("MULTI30K", os.path.join(ROOT, "..", "shared", "data", "multi30k"))
cfg = json.load(open(f"{EXP}/config.json"))
W = load_file(f"{EXP}/model.safetensors")
sp = spm.SentencePieceProcessor(model_file=f"{EXP}/tokenizer.model")
D, H, V, L = cfg["d_model"], cfg["nhead"], cfg["vocab_size"], cfg["max_len"]
DH = D // H
PAD, BOS, EOS = 0, 2, 3

def pe(n, d):
    pos = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    div = torch.pow(10000.0, torch.arange(0, d, 2, dtype=torch.float64) / d)
    p = torch.zeros(n, d, dtype=torch.float64); p[:, 0::2] = torch.sin(pos / div); p[:, 1::2] = torch.cos(pos / div)
    return p.float()
PE = pe(L, D)

W0 = {k: v.clone() for k, v in W.items()}

def qrows(w, qmax=127):
    s = w.abs().amax(1, keepdim=True).clamp_min(1e-12) / qmax
    return (w / s).round().clamp(-qmax, qmax) * s

class Q:
    """Which sites to fake-quantize; ranges[site] = max |x| from calibration."""
    def __init__(self, on=(), ranges=None, probs=False):
        self.on = set(on); self.ranges = ranges; self.probs = probs; self.rec = None
    def __call__(self, site, x):
        if self.rec is not None:
            m = float(x.abs().max()) if x.numel() else 0.0
            self.rec[site] = max(self.rec.get(site, 0.0), m)
            if site.split(".")[-1] in ("q", "k", "v") and x.numel():
                c = x.abs().reshape(-1, x.shape[-1]).amax(0)
                self.rec[site + "#ch"] = torch.maximum(self.rec.get(site + "#ch", torch.zeros_like(c)), c)
            return x
        kind = site.split(".")[-1]
        grp = kind if kind in ("q", "k", "v") else "a16"
        if grp == "q" and "qenc" in self.on and site.startswith("enc"):
            grp = "q"; hit = True
        else:
            hit = grp in self.on or site in self.on
        if hit and grp in "qkv" and ("kc" in self.on and grp in "qk" or "vc" in self.on and grp == "v"):
            base = site[:-2]
            mk = self.ranges[base + ".k#ch"].clamp_min(1e-6)
            if grp == "k":
                s = mk / 127
            elif grp == "q":
                c = float((self.ranges[base + ".q#ch"] * mk).max()) / 127 ** 2
                s = c * 127 / mk
            else:
                s = self.ranges[site + "#ch"].clamp_min(1e-6) / 127
            return (x / s).round().clamp(-127, 127) * s
        if hit:
            qmax = 127 if grp in "qkv" else 32767
            s = max(self.ranges[site], 1e-6) / qmax
            return (x / s).round().clamp(-qmax, qmax) * s
        return x

def ln(x, p, fq, site):
    y = F.layer_norm(x, (D,), W[p + ".weight"], W[p + ".bias"], 1e-5)
    return fq(site, y)

HREC = None
def hrec(name, x):
    if HREC is not None:
        x2 = x.reshape(-1, x.shape[-1]).double()
        HREC[name] = HREC.get(name, 0) + x2.t() @ x2

def lin(x, p):
    hrec(p + ".weight", x)
    return x @ W[p + ".weight"].t() + W[p + ".bias"]

def mha(x, kv, p, fq, site, mask):
    wi, bi = W[p + ".in_proj_weight"], W[p + ".in_proj_bias"]
    hrec(p + ".in_proj_weight.q", x); hrec(p + ".in_proj_weight.kv", kv)
    q = x @ wi[:D].t() + bi[:D]; k = kv @ wi[D:2 * D].t() + bi[D:2 * D]; v = kv @ wi[2 * D:].t() + bi[2 * D:]
    q, k, v = fq(site + ".q", q), fq(site + ".k", k), fq(site + ".v", v)
    B, T, S = x.shape[0], x.shape[1], kv.shape[1]
    q = q.view(B, T, H, DH).transpose(1, 2); k = k.view(B, S, H, DH).transpose(1, 2); v = v.view(B, S, H, DH).transpose(1, 2)
    sc = q @ k.transpose(-1, -2) / math.sqrt(DH)
    sc = sc.masked_fill(mask, float("-inf"))
    pr = sc.softmax(-1)
    if fq.probs == "pm":
        m = pr.amax(-1, keepdim=True)
        pr = torch.round(pr / m * 255) / 255 * m
    elif fq.probs == "p16":
        pr = torch.clamp(torch.round(pr * 32768), max=32767) / 32768
    elif fq.probs:
        pr = torch.clamp(torch.round(pr * 256), max=255) / 256
    ctx = (pr @ v).transpose(1, 2).reshape(B, T, D)
    ctx = fq(site + ".ctx", ctx)
    return fq(site + ".out", lin(ctx, p + ".out_proj"))

def ffn(x, p, fq, site):
    h = fq(site + ".hidden", torch.relu(lin(x, p + ".linear1")))
    return fq(site + ".out", lin(h, p + ".linear2"))

def embed(ids, fq, site):
    return fq(site, W["embedding.weight"][ids] * math.sqrt(D) + PE[: ids.shape[1]])

def encode(src, fq):
    pad = src.eq(PAD)[:, None, None, :]
    x = embed(src, fq, "src_emb")
    for l in range(cfg["num_encoder_layers"]):
        p = f"transformer.encoder.layers.{l}"
        s = f"enc{l}"
        x = ln(fq(s + ".sa.sum", x + mha(x, x, p + ".self_attn", fq, s + ".sa", pad)), p + ".norm1", fq, s + ".sa.norm")
        x = ln(fq(s + ".ff.sum", x + ffn(x, p, fq, s + ".ff")), p + ".norm2", fq, s + ".ff.norm")
    return ln(x, "transformer.encoder.norm", fq, "enc_norm"), pad

def decode(tgt, mem, pad, fq):
    T = tgt.shape[1]
    causal = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)[None, None] | tgt.eq(PAD)[:, None, None, :] & False
    x = embed(tgt, fq, "tgt_emb")
    for l in range(cfg["num_decoder_layers"]):
        p = f"transformer.decoder.layers.{l}"
        s = f"dec{l}"
        x = ln(fq(s + ".sa.sum", x + mha(x, x, p + ".self_attn", fq, s + ".sa", causal)), p + ".norm1", fq, s + ".sa.norm")
        x = ln(fq(s + ".ca.sum", x + mha(x, mem, p + ".multihead_attn", fq, s + ".ca", pad)), p + ".norm2", fq, s + ".ca.norm")
        x = ln(fq(s + ".ff.sum", x + ffn(x, p, fq, s + ".ff")), p + ".norm3", fq, s + ".ff.norm")
    h = ln(x, "transformer.decoder.norm", fq, "dec_norm")
    hrec("embedding.weight", h)
    return h @ W["embedding.weight"].t()

def src_ids(t):
    return sp.encode(t)[: L - 1] + [EOS]

def pad_batch(seqs):
    m = max(len(s) for s in seqs)
    out = torch.full((len(seqs), m), PAD, dtype=torch.long)
    for i, s in enumerate(seqs): out[i, : len(s)] = torch.tensor(s)
    return out

@torch.no_grad()
def greedy(srcs, fq, bs=128):
    res = [None] * len(srcs)
    order = sorted(range(len(srcs)), key=lambda i: len(srcs[i]))
    for b in range(0, len(order), bs):
        idx = order[b: b + bs]
        src = pad_batch([srcs[i] for i in idx])
        mem, pad = encode(src, fq)
        ys = torch.full((len(idx), 1), BOS, dtype=torch.long)
        done = torch.zeros(len(idx), dtype=torch.bool)
        for _ in range(L - 1):
            nxt = decode(ys, mem, pad, fq)[:, -1].argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
            ys = torch.cat([ys, nxt[:, None]], 1); done |= nxt.eq(EOS)
            if bool(done.all()): break
        for j, i in enumerate(idx):
            out = []
            for t in ys[j, 1:].tolist():
                out.append(t)
                if t == EOS: break
            res[i] = out
    return res

@torch.no_grad()
def calibrate(fq, srcs, tgts):
    fq.rec = {}
    for b in range(0, len(srcs), 50):
        s = pad_batch([src_ids(t) for t in srcs[b:b + 50]])
        # teacher-forced; unpadded per sentence so padding does not enter the ranges
        for i in range(s.shape[0]):
            si = torch.tensor([src_ids(srcs[b + i])])
            ti = torch.tensor([[BOS] + sp.encode(tgts[b + i])[: L - 1]])
            mem, pad = encode(si, fq)
            decode(ti, mem, pad, fq)
    r = fq.rec; fq.rec = None
    return r

def lines(p):
    f = gzip.open(p, "rt") if p.endswith(".gz") else open(p)
    return [l.rstrip("\n") for l in f]

def gptq(w, H, qmax=127, damp=0.01, act_order=False, clip=False):
    w = w.double().clone(); n, k = w.shape
    s = w.abs().amax(1, keepdim=True).clamp_min(1e-12) / qmax
    H = H.clone()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1; w[:, dead] = 0
    perm = torch.argsort(torch.diag(H), descending=True) if act_order else torch.arange(k)
    w = w[:, perm]; H = H[perm][:, perm]
    H += damp * torch.mean(torch.diag(H)) * torch.eye(k, dtype=H.dtype)
    if clip:
        amax = w.abs().amax(1, keepdim=True).clamp_min(1e-12)
        best = None
        for r in [1.0, 0.97, 0.94, 0.91, 0.88, 0.85, 0.8, 0.75]:
            sr = amax * r / qmax
            E = w - (w / sr).round().clamp(-qmax, qmax) * sr
            L = ((E @ H) * E).sum(1, keepdim=True)
            if best is None:
                best, s = L, sr
            else:
                m = L < best
                best = torch.where(m, L, best); s = torch.where(m, sr, s)
    Hi = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    Q = torch.zeros_like(w)
    if clip: s = s.double()
    for j in range(k):
        q = (w[:, j:j+1] / s).round().clamp(-qmax, qmax) * s
        Q[:, j:j+1] = q
        e = (w[:, j:j+1] - q) / Hi[j, j]
        w[:, j+1:] -= e @ Hi[j:j+1, j+1:]
    inv = torch.argsort(perm)
    return Q[:, inv].float()

def gptq_weights(Hs, emb=False, **kw):
    out = {}
    for k, v in W0.items():
        if v.dim() != 2: continue
        if k.endswith("in_proj_weight"):
            out[k] = torch.cat([gptq(v[:D], Hs[k + ".q"], **kw), gptq(v[D:], Hs[k + ".kv"], **kw)])
        elif k == "embedding.weight" and not emb:
            out[k] = qrows(v)
        else:
            out[k] = gptq(v, Hs[k], **kw)
    return out

def main():
    sets = {"test2016": (os.path.join(DE_EN, "test2016.de"), os.path.join(DE_EN, "test2016.en")),
            "val": (os.path.join(DATA, "val.de.gz"), os.path.join(DATA, "val.en.gz"))}
    cal = Q()
    ranges = calibrate(cal, lines(os.path.join(DE_EN, "calib.de")), lines(os.path.join(DE_EN, "calib.en")))
    global HREC
    HREC = {}
    calibrate(Q(), lines(os.path.join(DE_EN, "calib.de")), lines(os.path.join(DE_EN, "calib.en")))
    Hs = HREC; HREC = None
    data = {k: ([src_ids(t) for t in lines(a)], lines(b)) for k, (a, b) in sets.items()}
    floats = {k: greedy(s, Q()) for k, (s, _) in data.items()}
    ft = [sp.decode([t for t in x if t != EOS]) for x in floats["test2016"]]
    print("float check vs float_test2016.en:", sum(a == b for a, b in zip(ft, lines(os.path.join(DE_EN, "float_test2016.en")))), flush=True)
    variants = sys.argv[1:] or ["w", "q", "k", "v", "p", "a16", "all", "g", "ge", "gall"]
    for var in variants:
        parts = set(var.split("+"))
        if "all" in parts: parts = {"w", "q", "k", "v", "p", "a16"}
        if "gall" in parts: parts = {"g", "q", "k", "v", "p", "a16"}
        global W
        W = {k: v.clone() for k, v in W0.items()}
        if parts & {"g", "ge", "go", "gc"}:
            W.update(gptq_weights(Hs, emb="ge" in parts, act_order="go" in parts, clip="gc" in parts))
        if "w" in parts:
            for k in W:
                if W[k].dim() == 2: W[k] = qrows(W[k])
        fq = Q(on=parts - {"w", "p", "pm", "p16", "ge", "g", "go", "gc"}, ranges=ranges, probs=("pm" if "pm" in parts else "p16" if "p16" in parts else "p" in parts))
        row = [var]
        for k, (s, refs) in data.items():
            g = greedy(s, fq)
            same = sum(a == b for a, b in zip(g, floats[k]))
            hyp = [sp.decode([t for t in x if t != EOS]) for x in g]
            bleu = sacrebleu.corpus_bleu(hyp, [refs]).score
            row += [f"{k} {same}/{len(s)} {100*same/len(s):.1f}% BLEU {bleu:.2f}"]
        print(" | ".join(row), flush=True)
        W = W0

if __name__ == "__main__":
    main()
