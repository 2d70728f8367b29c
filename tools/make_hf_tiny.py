#!/usr/bin/env python3
"""Build tiny, randomly initialised Hugging Face checkpoints with `transformers` (from configs,
no Hub access) and the logits of transformers' own forward pass, for the HF importers'
tests (docs/import.md).

  /work/venv/bin/python tools/make_hf_tiny.py --out models/hf-tiny [--seed 0]

models/hf-tiny/<family>/ gets what `save_pretrained` writes (config.json, model.safetensors or
shards with model.safetensors.index.json, generation_config.json) plus the tokenizer files as
the family saves them, and reference.safetensors in the keys of docs/export-format.md:

- llama: LlamaForCausalLM (GQA, untied head) in 2 shards; tokenizer.model is the Llama-style
  BPE model of models/variants/dec_gqa_rope_rmsnorm_swiglu (byte fallback, no pad).
- mistral: MistralForCausalLM (multi-query, tied head, no sliding window), same tokenizer.
- marian: MarianMTModel (post-norm, swish, tied, final_logits_bias); source.spm = target.spm is
  the unigram model of models/variants/postnorm_relu_tied; vocab.json orders the pieces as
  Marian does (</s>, <unk>, the pieces shuffled, <pad> last), so its ids differ from the
  SentencePiece ids.

The weights use a wider init than the default (initializer_range 0.2), so that greedy argmaxes
are not near-ties. Prompts and sentences are the first lines of models/captions-lm/prompts.txt
and models/de-en/test2016.de.
"""
import argparse
import json
import os
import random
import shutil

import torch
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def lines(rel, n):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return [l.rstrip("\n") for l in f][:n]


def llama(out, seed, mistral=False):
    import sentencepiece as spm
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    torch.manual_seed(seed)
    sp_path = os.path.join(ROOT, "models/variants/dec_gqa_rope_rmsnorm_swiglu/tokenizer.model")
    sp = spm.SentencePieceProcessor(model_file=sp_path)
    common = dict(vocab_size=sp.vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, max_position_embeddings=64, bos_token_id=sp.bos_id(),
                  eos_token_id=sp.eos_id(), pad_token_id=None, initializer_range=0.2)
    if mistral:
        cfg = MistralConfig(**common, num_key_value_heads=1, rms_norm_eps=1e-5, rope_theta=10000.0,
                            tie_word_embeddings=True, sliding_window=None)
        model = MistralForCausalLM(cfg).eval()
    else:
        cfg = LlamaConfig(**common, num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=500.0,
                          tie_word_embeddings=False, attention_bias=False, mlp_bias=False)
        model = LlamaForCausalLM(cfg).eval()
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out, **({} if mistral else {"max_shard_size": "200KB"}))
    shutil.copy(sp_path, os.path.join(out, "tokenizer.model"))
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False,
                   "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}, f, indent=2)
    ref = {}
    for i, text in enumerate(lines("models/captions-lm/prompts.txt", 2 if mistral else 4)):
        ids = [sp.bos_id()] + sp.encode(text)
        x = torch.tensor([ids])
        with torch.no_grad():
            logits = model(x).logits[0]
            seq, new = list(ids), []
            while len(new) < 20 and len(seq) < cfg.max_position_embeddings:
                t = int(model(torch.tensor([seq])).logits[0, -1].argmax())
                new.append(t)
                seq.append(t)
                if t == sp.eos_id():
                    break
        ref[f"ids.{i}"] = torch.tensor(ids, dtype=torch.int64)
        ref[f"logits.{i}"] = logits.float().contiguous()
        ref[f"greedy.{i}"] = torch.tensor(new, dtype=torch.int64)
    save_file(ref, os.path.join(out, "reference.safetensors"))


def marian(out, seed):
    import sentencepiece as spm
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    torch.manual_seed(seed)
    sp_path = os.path.join(ROOT, "models/variants/postnorm_relu_tied/tokenizer.model")
    sp = spm.SentencePieceProcessor(model_file=sp_path)
    pieces = [sp.id_to_piece(i) for i in range(sp.vocab_size()) if not (sp.is_control(i) or sp.is_unknown(i))]
    random.Random(seed).shuffle(pieces)
    vocab = ["</s>", "<unk>"] + pieces + ["<pad>"]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({p: i for i, p in enumerate(vocab)}, f, ensure_ascii=False, indent=1)
    for name in ("source.spm", "target.spm"):
        shutil.copy(sp_path, os.path.join(out, name))
    tok = MarianTokenizer(source_spm=os.path.join(out, "source.spm"), target_spm=os.path.join(out, "target.spm"),
                          vocab=os.path.join(out, "vocab.json"), source_lang="de", target_lang="en")
    tok.save_pretrained(out)
    pad = len(vocab) - 1
    cfg = MarianConfig(
        vocab_size=len(vocab), d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, activation_function="swish",
        max_position_embeddings=64, scale_embedding=True, pad_token_id=pad, eos_token_id=0,
        decoder_start_token_id=pad, forced_eos_token_id=0, init_std=0.2, share_encoder_decoder_embeddings=True,
        tie_word_embeddings=True)
    model = MarianMTModel(cfg).eval()
    with torch.no_grad():
        model.final_logits_bias.normal_(0.0, 0.5)
    model.save_pretrained(out)
    ref = {}
    for i, text in enumerate(lines("models/de-en/test2016.de", 4)):
        src = tok(text)["input_ids"]
        x = torch.tensor([src])
        with torch.no_grad():
            enc = model.get_encoder()(input_ids=x).last_hidden_state
            seq = [pad]
            while len(seq) < cfg.max_position_embeddings:
                o = model(input_ids=x, decoder_input_ids=torch.tensor([seq]))
                t = int(o.logits[0, -1].argmax())
                seq.append(t)
                if t == 0:
                    break
            steps = min(8, len(seq) - 1)
            logits = model(input_ids=x, decoder_input_ids=torch.tensor([seq[:steps]])).logits[0]
        ref[f"src_ids.{i}"] = torch.tensor(src, dtype=torch.int64)
        ref[f"memory.{i}"] = enc[0].float().contiguous()
        ref[f"logits.{i}"] = logits.float().contiguous()
        ref[f"greedy.{i}"] = torch.tensor(seq[1:], dtype=torch.int64)
    save_file(ref, os.path.join(out, "reference.safetensors"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "models/hf-tiny"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=["llama", "mistral", "marian"])
    a = ap.parse_args()
    torch.backends.mha.set_fastpath_enabled(False)
    for name, f in (("llama", llama), ("mistral", lambda o, s: llama(o, s, mistral=True)), ("marian", marian)):
        if a.only in (None, name):
            f(os.path.join(a.out, name), a.seed)
            print(name, sorted(os.listdir(os.path.join(a.out, name))))


if __name__ == "__main__":
    main()
