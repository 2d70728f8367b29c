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
- bert: BertForSequenceClassification (post-norm, exact GELU, embedding LayerNorm, pooler,
  3 labels); vocab.txt is a WordPiece vocabulary trained with `tokenizers` on multi30k's English
  and German training text (plus a few CJK characters), saved by BertTokenizer
  (do_lower_case, accents stripped). tokenizer_vectors.json holds BertTokenizer's ids (the
  slow one; the fast one is checked to agree) for many strings: accents, punctuation, CJK,
  unknown and over-long words.

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


BERT_TEXTS = [
    "Two young, White males are outside near many bushes.",
    "Ein Mann mit einem orangefarbenen Hut, der etwas anstarrt.",
    "Café Müller's crème brûlée costs €5 (naïve façade)!",
    "ÀÉÎÕÜ ÅNGSTRÖM Ça va? Señor Ñandú.",
    "Hello,world!!! What's up... \"quoted\" [brackets] {braces} <tags> a-b_c/d\\e",
    "中文字符 mixed with English 日本語 and 한국어 text",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "xqzv qqqq zzzzzz jjjj",
    "   leading and trailing spaces \t\ttabs\nnewline   ",
    "",
    "A dog runs through the grass. THE DOG RUNS!",
    "\u00e9 vs e\u0301 (composed and decomposed), \u212b vs \u00c5, ﬁ ligature",
    "numbers 12345 and 3.14159, 1,000,000",
    "emoji 😀🐶 and symbols © ® ™ § ¶ ° ± × ÷",
    "Straße, Groß, GROSS, İstanbul, ΣΊΣΥΦΟΣ, Ωμέγα",
    "control\u0000chars\u0007 and zero\u200bwidth and soft\u00adhyphen",
    "a" * 120,
    "Several men in hard hats are operating a giant pulley system.",
    "Eine Gruppe von Männern lädt Baumwolle auf einen Lastwagen.",
    "Kinder spielen im Schnee; ein Mädchen lächelt.",
    "greek question mark\u037e compatibility ideograph \uf900 fullwidth ＡＢＣ！ and ≠ and ´accent",
]


def bert(out, seed):
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer, BertTokenizerFast
    import gzip

    torch.manual_seed(seed)
    os.makedirs(out, exist_ok=True)
    text = []
    for lang in ("en", "de"):
        with gzip.open(f"/work/shared/data/multi30k/train.{lang}.gz", "rt", encoding="utf-8") as f:
            text.extend(l.strip() for l in f)
    trainer = BertWordPieceTokenizer(lowercase=True, strip_accents=True, clean_text=True, handle_chinese_chars=True)
    trainer.train_from_iterator(text, vocab_size=1200, min_frequency=2, limit_alphabet=80,
                                special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    # the trainer breaks ties in no fixed order: the specials first, then the pieces sorted
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = specials + sorted(w for w in trainer.get_vocab() if w not in specials)
    words += [c for c in "中文日本" if c not in trainer.get_vocab()]
    with open(os.path.join(out, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("".join(w + "\n" for w in words))
    tok = BertTokenizer(os.path.join(out, "vocab.txt"), do_lower_case=True, model_max_length=64)
    tok.save_pretrained(out)
    for junk in ("special_tokens_map.json", "tokenizer.json"):
        if os.path.exists(os.path.join(out, junk)):
            os.remove(os.path.join(out, junk))
    fast = BertTokenizerFast(os.path.join(out, "vocab.txt"), do_lower_case=True)
    cases = []
    for t in BERT_TEXTS:
        ids = tok(t)["input_ids"]
        assert fast(t)["input_ids"] == ids, t
        cases.append({"text": t, "ids": ids})
    with open(os.path.join(out, "tokenizer_vectors.json"), "w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(json.dumps(c, ensure_ascii=False) for c in cases) + "\n]\n")
    cfg = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, hidden_act="gelu", max_position_embeddings=64, type_vocab_size=2,
                     initializer_range=0.2, layer_norm_eps=1e-12, pad_token_id=0, num_labels=3,
                     id2label={0: "animal", 1: "person", 2: "thing"},
                     label2id={"animal": 0, "person": 1, "thing": 2})
    model = BertForSequenceClassification(cfg).eval()
    model.save_pretrained(out)
    ref = {}
    for i, t in enumerate(lines("models/de-en/test2016.en", 4) + [BERT_TEXTS[2], BERT_TEXTS[5]]):
        ids = tok(t)["input_ids"]
        with torch.no_grad():
            o = model(torch.tensor([ids]), output_hidden_states=True)
        ref[f"input.{i}"] = torch.tensor(ids, dtype=torch.int64)
        ref[f"hidden.{i}"] = o.hidden_states[-1][0].float().contiguous()
        ref[f"output.{i}"] = o.logits[0].float().contiguous()
    save_file(ref, os.path.join(out, "reference.safetensors"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "models/hf-tiny"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=["llama", "mistral", "marian", "bert"])
    a = ap.parse_args()
    torch.backends.mha.set_fastpath_enabled(False)
    for name, f in (("llama", llama), ("mistral", lambda o, s: llama(o, s, mistral=True)), ("marian", marian), ("bert", bert)):
        if a.only in (None, name):
            f(os.path.join(a.out, name), a.seed)
            print(name, sorted(os.listdir(os.path.join(a.out, name))))


if __name__ == "__main__":
    main()
