"""`picoformer.export`: a live PyTorch model to the export directory of docs/export-format.md
(config.json, model.safetensors, tokenizer.model, reference.safetensors). Needs torch,
safetensors and (for token models) sentencepiece; the rest of the package needs none of them.

It takes
- the project's own modules, which are the format's executable specification:
  `picoformer.pymodel.Seq2Seq` (§1, encoder-decoder) and `picoformer.generic_model.GenericModel`
  (§2, encoder-only and decoder-only);
- any module holding an `nn.Transformer` with its embeddings (one shared `nn.Embedding`, or a
  source and a target one, in that order) and its generator (an `nn.Linear` to the
  vocabulary): an encoder-decoder. Positions are the interleaved sinusoidal table of §1;
- any module holding an `nn.TransformerEncoder` stack with its input (an `nn.Embedding` for
  tokens, an `nn.Linear` for feature frames), optional learned positions (`positional="learned"`:
  a second `nn.Embedding`) and its head (the last `nn.Linear` outside the stack): an
  encoder-only classifier or regressor; with `causal=True`, a decoder-only language model
  (the stack under a causal mask, its head to the vocabulary or tied to the embedding).

A foreign module's weights are renamed onto the project's module of that kind, whose float
forward pass writes the reference vectors. When the module's own forward pass can be called
on a reference input (`forward(src, tgt)` for an encoder-decoder, `forward(x)` otherwise;
`forward` defaults to the module itself), its output must match the renamed model's to 1e-4,
or export fails: a forward pass that does something the mapping does not know (another
positional table, an embedding scale not given) is caught here, not on the device.
"""
import os
import shutil
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import generic_model as gm
from . import pymodel as pm
from ._native import Error

TOLERANCE = 1e-4


def export(model, tokenizer, out_dir, *, reference=None, max_len=None, scale_embedding=False,
           positional=None, causal=False, pooling="mean", head="classification", labels=None,
           forward=None, max_new=20):
    """Write `out_dir` for `model`; returns the reference tensors written (a dict).

    tokenizer: a SentencePiece model (a path, or a `SentencePieceProcessor`) for token models;
      None for feature input.
    reference: inputs for reference.safetensors: texts for token models, `(frames, n_features)`
      arrays for feature models (None: no reference vectors, and `convert` warns).
    max_len, scale_embedding, positional ("sinusoidal", "learned" or "none"), causal, pooling,
    head, labels: what a foreign module's weights do not say (see docs/export-format.md).
    forward: the module's own forward pass, checked against the export (default: the module).
    max_new: decoder-only reference continuations, at most this many tokens.
    """
    os.makedirs(out_dir, exist_ok=True)
    model.eval()
    torch.backends.mha.set_fastpath_enabled(False)  # it writes zeros at padded positions
    tok_path = _write_tokenizer(tokenizer, out_dir)
    if isinstance(model, pm.Seq2Seq):
        return _export_seq2seq(model, tok_path, out_dir, reference)
    if isinstance(model, gm.GenericModel):
        return _export_generic(model, tok_path, out_dir, reference, max_new)
    tf = _find(model, nn.Transformer)
    if tf is not None:
        canon = _map_transformer(model, tf, tok_path, max_len, scale_embedding)
        ref = _export_seq2seq(canon, tok_path, out_dir, reference)
        _check_seq2seq(forward or model, ref)
        return ref
    enc = _find(model, nn.TransformerEncoder)
    if enc is not None:
        canon = _map_encoder_stack(model, enc, tok_path, max_len, scale_embedding, positional or "none",
                                   causal, pooling, head, labels)
        ref = _export_generic(canon, tok_path, out_dir, reference, max_new)
        _check_generic(forward or model, canon, ref)
        return ref
    raise Error(f"{type(model).__name__}: no nn.Transformer or nn.TransformerEncoder inside, and not a "
                "picoformer.pymodel.Seq2Seq or picoformer.generic_model.GenericModel: export takes those")


# ---------------------------------------------------------------- the project's modules

def _export_seq2seq(model, tok_path, out_dir, reference):
    if tok_path is None:
        raise Error("an encoder-decoder needs its SentencePiece tokenizer")
    _check_ids(model.cfg, _spm(tok_path))
    ref = pm.export_model(model, out_dir, tok_path, list(reference or []))
    if not reference:
        os.remove(os.path.join(out_dir, "reference.safetensors"))
    return ref


def _export_generic(model, tok_path, out_dir, reference, max_new):
    cfg = model.cfg
    gm.export(model, cfg, out_dir)
    if model.tokens and tok_path is None:
        raise Error("a token model needs its SentencePiece tokenizer")
    if not reference:
        return {}
    if model.tokens:
        sp = _spm(tok_path)
        cap = cfg["max_len"] - 1 if model.decoder else cfg["max_len"]
        inputs = [([cfg["bos_id"]] + sp.encode(t))[:cap] for t in reference]
    else:
        inputs = [torch.as_tensor(_array(x), dtype=torch.float32) for x in reference]
    return gm.write_reference(model, inputs, out_dir, max_new)


# ---------------------------------------------------------------- foreign modules

def _map_transformer(model, tf, tok_path, max_len, scale_embedding):
    """An nn.Transformer with embeddings and a generator, renamed onto pymodel.Seq2Seq."""
    if tok_path is None:
        raise Error("an encoder-decoder needs its SentencePiece tokenizer")
    vocab = _spm(tok_path).get_piece_size()
    l0 = tf.encoder.layers[0]
    embs = [m for m in _outside(model, tf) if isinstance(m, nn.Embedding) and m.num_embeddings == vocab]
    gens = [m for m in _outside(model, tf) if isinstance(m, nn.Linear) and m.out_features == vocab]
    if not embs or len(embs) > 2:
        raise Error(f"{type(model).__name__}: found {len(embs)} nn.Embedding of the tokenizer's {vocab} pieces; "
                    "an encoder-decoder has one (shared) or two (source, then target)")
    tied = len(embs) == 1 and (not gens or gens[-1].weight is embs[0].weight)
    if not tied and not gens:
        raise Error(f"{type(model).__name__}: no generator (an nn.Linear to {vocab} outputs)")
    if max_len is None:
        raise Error("give max_len= (the longest source and output, in tokens) for an nn.Transformer")
    cfg = pm.make_config(
        d_model=l0.self_attn.embed_dim, nhead=l0.self_attn.num_heads,
        num_encoder_layers=len(tf.encoder.layers), num_decoder_layers=len(tf.decoder.layers),
        dim_feedforward=l0.linear1.out_features, activation=_activation(l0, ("relu", "gelu")),
        norm_first=bool(l0.norm_first), layer_norm_eps=float(l0.norm1.eps), vocab_size=vocab,
        max_len=int(max_len), tie_embeddings=tied, scale_embedding=bool(scale_embedding))
    canon = pm.Seq2Seq(cfg, dropout=0.0).eval()
    with torch.no_grad():
        canon.transformer.load_state_dict(tf.state_dict())
        if tied:
            canon.embedding.weight.copy_(embs[0].weight)
        else:
            src, tgt = (embs[0], embs[-1])
            canon.src_embedding.weight.copy_(src.weight)
            canon.tgt_embedding.weight.copy_(tgt.weight)
            canon.generator.weight.copy_(gens[-1].weight)
            if gens[-1].bias is not None:
                canon.generator.bias.copy_(gens[-1].bias)
            else:
                canon.generator.bias.zero_()
    return canon


def _map_encoder_stack(model, enc, tok_path, max_len, scale_embedding, positional, causal, pooling,
                       head_kind, labels):
    """An nn.TransformerEncoder stack with its input and head, renamed onto GenericModel."""
    name = type(model).__name__
    l0 = enc.layers[0]
    d = l0.self_attn.embed_dim
    outside = _outside(model, enc)
    linears = [m for m in outside if isinstance(m, nn.Linear)]
    embeddings = [m for m in outside if isinstance(m, nn.Embedding)]
    tokens = tok_path is not None
    if causal and not tokens:
        raise Error("a decoder-only model (causal=True) reads tokens: give its tokenizer")
    if max_len is None:
        raise Error("give max_len= (the longest input, in tokens or frames)")
    kw = {}
    if tokens:
        sp = _spm(tok_path)
        vocab = sp.get_piece_size()
        embed = next((m for m in embeddings if m.num_embeddings == vocab and m.embedding_dim == d), None)
        if embed is None:
            raise Error(f"{name}: no nn.Embedding of the tokenizer's {vocab} pieces and width {d}")
        kw.update(vocab_size=vocab, unk_id=sp.unk_id(), bos_id=sp.bos_id(), eos_id=sp.eos_id(),
                  pad_id=sp.pad_id(), scale_embedding=bool(scale_embedding))
        rest = [m for m in embeddings if m is not embed]
    else:
        proj = next((m for m in linears if m.out_features == d), None)
        if proj is None:
            raise Error(f"{name}: no input projection (an nn.Linear to width {d}) before the stack")
        linears = [m for m in linears if m is not proj]
        kw.update(input="features", n_features=proj.in_features)
        rest = embeddings
    pos = None
    if positional == "learned":
        pos = next((m for m in rest if m.embedding_dim == d), None)
        if pos is None:
            raise Error(f"{name}: positional='learned' but no nn.Embedding of positions of width {d}")
    elif positional not in ("none", "sinusoidal"):
        raise Error(f"positional={positional!r}: an nn.TransformerEncoder stack takes 'sinusoidal', 'learned' or 'none'")
    head = next((m for m in reversed(linears) if m.in_features == d), None)
    if causal:
        tied = head is None or head.out_features != kw["vocab_size"] or head.weight is embed.weight
        kw.update(model_type="decoder-only", tie_embeddings=tied)
    else:
        if head is None:
            raise Error(f"{name}: no head (an nn.Linear from width {d}) after the stack")
        kw.update(model_type="encoder-only", pooling=pooling, head=head_kind, n_outputs=head.out_features)
        if labels is not None:
            kw["labels"] = list(labels)
    cfg = gm.make_config(
        d_model=d, nhead=l0.self_attn.num_heads, num_layers=len(enc.layers),
        dim_feedforward=l0.linear1.out_features, norm="layernorm", norm_eps=float(l0.norm1.eps),
        norm_first=bool(l0.norm_first), final_norm=enc.norm is not None,
        activation=_activation(l0, ("relu", "gelu", "gelu_tanh")), bias=l0.linear1.bias is not None,
        positional=positional, max_len=int(max_len), **kw)
    canon = gm.GenericModel(cfg).eval()
    with torch.no_grad():
        for ours, t in zip(canon.layers, enc.layers):
            for part, (w, b) in zip(("q", "k", "v"), _split_in_proj(t.self_attn, d)):
                getattr(ours.attn, part).weight.copy_(w)
                if b is not None:
                    getattr(ours.attn, part).bias.copy_(b)
            _copy(ours.attn.o, t.self_attn.out_proj)
            _copy(ours.ffn.up, t.linear1)
            _copy(ours.ffn.down, t.linear2)
            _copy(ours.attn_norm, t.norm1)
            _copy(ours.ffn_norm, t.norm2)
        if enc.norm is not None:
            _copy(canon.norm, enc.norm)
        if tokens:
            canon.embed.weight.copy_(embed.weight)
        else:
            _copy(canon.input_proj, proj, zero_bias=True)
        if pos is not None:
            canon.pos.weight.copy_(pos.weight[: cfg["max_len"]])
        if causal:
            if not cfg["tie_embeddings"]:
                canon.lm_head.weight.copy_(head.weight)
            if head is not None and head.bias is not None:
                canon.add_lm_head_bias()
                canon.lm_head_bias.copy_(head.bias)
        else:
            _copy(canon.head, head, zero_bias=True)
    return canon.eval()


def _check_seq2seq(forward, ref):
    """The module's own `forward(src, tgt)` logits against the reference's."""
    for i in range(len([k for k in ref if k.startswith("src_ids.")])):
        src = ref[f"src_ids.{i}"].unsqueeze(0)
        logits = ref[f"logits.{i}"]
        tgt = torch.tensor([[pm.BOS_ID] + ref[f"greedy.{i}"].tolist()[: logits.shape[0] - 1]])
        got = _call(forward, src, tgt)
        if got is None:
            return
        _close(got.reshape(logits.shape), logits, f"case {i}: logits")


def _check_generic(forward, canon, ref):
    """The module's own `forward(x)` against the renamed model's output."""
    key = "ids" if canon.decoder else "input"
    for i in range(len([k for k in ref if k.startswith(key + ".")])):
        x = ref[f"{key}.{i}"].unsqueeze(0)
        want = ref[f"logits.{i}"] if canon.decoder else ref[f"output.{i}"]
        got = _call(forward, x)
        if got is None:
            return
        _close(got.reshape(want.shape), want, f"case {i}: {'logits' if canon.decoder else 'head output'}")


# ---------------------------------------------------------------- helpers

@torch.no_grad()
def _call(forward, *args):
    try:
        out = forward(*args)
    except Exception as e:  # a forward of another signature: say so, do not guess
        warnings.warn(f"the module's own forward pass was not checked against the export ({type(e).__name__}: {e}); "
                      "pass forward= a function of the reference input", stacklevel=4)
        return None
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out.float()


def _close(got, want, what):
    diff = float((got - want).abs().max())
    if not diff <= TOLERANCE:
        raise Error(f"{what}: the module's own forward pass differs from the export's by {diff:.2e} "
                    f"(above {TOLERANCE}): check positional=, scale_embedding=, max_len= and "
                    "docs/export-format.md's semantics")


def _find(model, cls):
    return next((m for m in model.modules() if isinstance(m, cls)), None)


def _outside(model, inner):
    """Modules of `model` (in registration order) that are not `inner` or inside it."""
    skip = {id(m) for m in inner.modules()}
    return [m for m in model.modules() if id(m) not in skip]


def _activation(layer, supported):
    a = layer.activation
    name = None
    if a is F.relu or isinstance(a, nn.ReLU):
        name = "relu"
    elif a is F.gelu or (isinstance(a, nn.GELU) and a.approximate == "none"):
        name = "gelu"
    elif isinstance(a, nn.GELU) and a.approximate == "tanh":
        name = "gelu_tanh"
    if name not in supported:
        raise Error(f"activation {a!r}: this model kind takes {', '.join(supported)}")
    return name


def _split_in_proj(attn, d):
    w = attn.in_proj_weight
    b = attn.in_proj_bias
    return [(w[i * d:(i + 1) * d], None if b is None else b[i * d:(i + 1) * d]) for i in range(3)]


def _copy(dst, src, zero_bias=False):
    dst.weight.copy_(src.weight)
    if getattr(dst, "bias", None) is not None:
        if getattr(src, "bias", None) is not None:
            dst.bias.copy_(src.bias)
        elif zero_bias:
            dst.bias.zero_()


def _array(x):
    return x.tolist() if hasattr(x, "tolist") else x


def _spm(path):
    import sentencepiece as spm
    return spm.SentencePieceProcessor(model_file=str(path))


def _check_ids(cfg, sp):
    want = (cfg["pad_id"], cfg["unk_id"], cfg["bos_id"], cfg["eos_id"], cfg["vocab_size"])
    got = (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.get_piece_size())
    if want != got:
        raise Error(f"tokenizer: pad, unk, bos, eos ids and vocabulary {got}; the encoder-decoder export needs {want}")


def _write_tokenizer(tokenizer, out_dir):
    """tokenizer.model in `out_dir` (None for feature models)."""
    if tokenizer is None:
        return None
    dst = os.path.join(out_dir, "tokenizer.model")
    if hasattr(tokenizer, "serialized_model_proto"):
        with open(dst, "wb") as f:
            f.write(tokenizer.serialized_model_proto())
    elif os.path.abspath(str(tokenizer)) != os.path.abspath(dst):
        shutil.copyfile(str(tokenizer), dst)
    return dst
