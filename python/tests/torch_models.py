"""Small PyTorch models written as a user would (plain nn.Transformer / nn.TransformerEncoder
modules, not the project's), exported by `picoformer.export` into python/tests/data/:

    python python/tests/torch_models.py     # with picoformer, torch and sentencepiece installed

Deterministic (seeded, float32, one thread): the same torch writes the same bytes. The tests
convert and run the committed exports without torch (test_exported.py), and re-export them
where torch is available (test_export.py).
"""
import math
import os
from pathlib import Path

import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
# SentencePiece models of the variants (models/variants/README.md): ids pad 0, unk 1, bos 2,
# eos 3 (unigram, de+en), and a Llama-style BPE (en)
UNIGRAM = ROOT / "models/variants/postnorm_relu_tied/tokenizer.model"
BPE = ROOT / "models/variants/dec_gqa_rope_rmsnorm_swiglu/tokenizer.model"
REFERENCE_TEXTS = ["Ein Hund läuft über die Wiese.", "Zwei Männer spielen Fußball.", "A girl is reading a book."]
MAX_LEN = 32


def positional_table(max_len, d):
    """The classic sinusoidal table: sin on even columns, cos on odd ones."""
    pos = torch.arange(max_len).unsqueeze(1).float()
    div = torch.exp(torch.arange(0, d, 2).float() * (-math.log(10000.0) / d))
    pe = torch.zeros(max_len, d)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe


class Translator(nn.Module):
    """nn.Transformer with source and target embeddings and a generator."""

    def __init__(self, vocab, d=32):
        super().__init__()
        self.src_emb = nn.Embedding(vocab, d)
        self.tgt_emb = nn.Embedding(vocab, d)
        self.transformer = nn.Transformer(d, 4, 1, 2, 64, dropout=0.0, batch_first=True, norm_first=True,
                                          activation="gelu")
        self.generator = nn.Linear(d, vocab)
        self.register_buffer("pe", positional_table(MAX_LEN, d))
        self.scale = math.sqrt(d)

    def forward(self, src, tgt):
        s = self.src_emb(src) * self.scale + self.pe[: src.shape[1]]
        t = self.tgt_emb(tgt) * self.scale + self.pe[: tgt.shape[1]]
        mask = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
        return self.generator(self.transformer(s, t, tgt_mask=mask))


class FrameClassifier(nn.Module):
    """Feature frames -> projection -> nn.TransformerEncoder (post-norm) -> mean -> head."""

    def __init__(self, n_features=6, d=32, classes=3):
        super().__init__()
        self.proj = nn.Linear(n_features, d)
        layer = nn.TransformerEncoderLayer(d, 4, 48, dropout=0.0, batch_first=True, activation="relu")
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        return self.head(self.encoder(self.proj(x)).mean(dim=1))


class TinyLM(nn.Module):
    """Token and learned position embeddings, a causal nn.TransformerEncoder stack (pre-norm,
    tanh GELU, final norm), an untied head."""

    def __init__(self, vocab, d=32):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(MAX_LEN, d)
        layer = nn.TransformerEncoderLayer(d, 2, 64, dropout=0.0, batch_first=True, norm_first=True,
                                           activation=nn.GELU(approximate="tanh"))
        self.blocks = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(d), enable_nested_tensor=False)
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, ids):
        T = ids.shape[1]
        x = self.tok(ids) + self.pos.weight[:T]
        return self.lm_head(self.blocks(x, mask=nn.Transformer.generate_square_subsequent_mask(T), is_causal=True))


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g) if name.endswith("weight")
                        else 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))
    return model.eval()


def frames(seed, n=4, n_features=6):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(4 + 5 * i % 28, n_features, generator=g).numpy().round(3) for i in range(n)]


def export_all(out=DATA):
    """Export the three models into `out`; returns {name: directory}."""
    import picoformer
    import sentencepiece as spm
    torch.manual_seed(0)
    torch.set_num_threads(1)
    vocab_u = spm.SentencePieceProcessor(model_file=str(UNIGRAM)).get_piece_size()
    vocab_b = spm.SentencePieceProcessor(model_file=str(BPE)).get_piece_size()
    dirs = {k: os.path.join(out, k) for k in ("translator", "frame-classifier", "tiny-lm")}
    picoformer.export(randomize(Translator(vocab_u), 1), UNIGRAM, dirs["translator"],
                      reference=REFERENCE_TEXTS, max_len=MAX_LEN, scale_embedding=True)
    picoformer.export(randomize(FrameClassifier(), 2), None, dirs["frame-classifier"],
                      reference=frames(3), max_len=MAX_LEN, labels=["a", "b", "c"])
    picoformer.export(randomize(TinyLM(vocab_b), 4), BPE, dirs["tiny-lm"], reference=REFERENCE_TEXTS[2:] + ["two dogs"],
                      max_len=MAX_LEN, positional="learned", causal=True)
    return dirs


def write_calibration(out=DATA):
    """Calibration and test inputs for the committed exports (CSV windows for the classifier)."""
    with open(os.path.join(out, "frame-classifier.csv"), "w") as f:
        f.write("\n\n".join("\n".join(",".join(f"{v:.3f}" for v in row) for row in w) for w in frames(5, 12)) + "\n")


if __name__ == "__main__":
    for name, d in export_all().items():
        print(name, sorted(os.listdir(d)))
    write_calibration()
