#!/usr/bin/env python3
"""Train the SentencePiece BPE test models and write their golden vectors for the on-device
tokenizer (tools/tests/tokenizer_spm.rs).

  /work/venv/bin/python tools/bpe_vectors.py [--data /work/shared/data/multi30k] [--out tools/tests/data]

Models, trained with python sentencepiece on the Multi30K English training captions:
  bpe_llama: the caption LM's Llama-style options (BPE, 2000 pieces, byte_fallback, split_digits,
             identity normalization, dummy prefix, extra whitespace kept), on all lines.
  bpe_small: 300 pieces, no byte_fallback (unknown characters become <unk>), extra whitespace
             removed, pad id 3, on the first 3000 lines.

Files per model <m>:
  <m>.model                  the SentencePiece model
  <m>.test2016.txt           sp.encode(line) ids of the 1000 test2016 English captions, one line each
  <m>.test2016_decoded.txt   sp.decode(ids) of those ids
  <m>.cases.jsonl            hostile texts {"text", "ids", "decoded"} and id sequences
                             {"ids", "decoded"} (random ids, broken byte sequences)

and tiny models the runtime must reject (tools/src/spm.rs names the option): reject_<option>.model.
"""
import argparse
import gzip
import json
import os
import random

import sentencepiece as spm

COMMON = dict(
    model_type="bpe",
    normalization_rule_name="identity",
    add_dummy_prefix=True,
    unk_id=0,
    bos_id=1,
    eos_id=2,
    num_threads=1,
)

MODELS = {
    "bpe_llama": dict(
        COMMON,
        vocab_size=2000,
        character_coverage=0.9995,
        byte_fallback=True,
        split_digits=True,
        remove_extra_whitespaces=False,
        pad_id=-1,
    ),
    "bpe_small": dict(
        COMMON,
        vocab_size=300,
        character_coverage=0.98,
        byte_fallback=False,
        remove_extra_whitespaces=True,
        pad_id=3,
        input_sentence_size=3000,
    ),
}

# Models spm.rs must refuse, by the option it names.
REJECTED = {
    "reject_user_defined_symbols": dict(COMMON, vocab_size=120, user_defined_symbols=["<sep>"],
                                        remove_extra_whitespaces=True, pad_id=-1),
    "reject_unigram_byte_fallback": dict(COMMON, model_type="unigram", vocab_size=400, byte_fallback=True,
                                         remove_extra_whitespaces=True, pad_id=-1),
    "reject_char_model": dict(COMMON, model_type="char", vocab_size=60, remove_extra_whitespaces=True, pad_id=-1),
}

HOSTILE = [
    "",
    " ",
    "   ",
    "a",
    "   leading spaces",
    "trailing spaces   ",
    "  both ends  ",
    "a  b   c    d",
    "a" + " " * 40 + "b",
    "\t",
    "tab\tseparated\twords",
    "\ttab first",
    "line\nbreak and\r\ncrlf",
    "emoji 😀🎉 party 👍🏽",
    "👩‍👩‍👧 family with zero width joiners",
    "😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀",
    "mixed😀a😀b😀",
    "日本語のテキストです。",
    "中文字符和标点，还有。",
    "한국어 문장",
    "combining: e\u0301 a\u0308 n\u0303 o\u0302\u0323",
    "Zalgo t\u0337\u0322\u031be\u0336\u034ex\u0335t",
    "Ä Ö Ü ß é è ñ ç ø å",
    "digits 1234567890 3.14159 2024-06-01 007",
    "0",
    "000111222333",
    "A man with 2 dogs and 10 cats.",
    "a" * 300,
    "supercalifragilisticexpialidocious" * 6,
    "Pneumonoultramicroscopicsilicovolcanoconiosis-antidisestablishmentarianism",
    "▁ literal marks ▁▁ inside",
    "▁",
    "<unk> <s> </s> <pad> <0x41> <0xE2>",
    "nul \u0000 and \u0001 \u007f controls",
    "no\u00a0break\u00a0space and ideographic\u3000space",
    "עברית والعربية",
    "\ufeffbyte order mark",
    "replacement \ufffd char",
    "math 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and 𝟘𝟙𝟚",
    "ǅ ǈ ǋ ǲ digraphs",
    "A dog runs through the snow.",
    "Two men are playing soccer in a field!!!",
    "   A girl   in a pink dress   climbs   stairs.   ",
    "UPPER CASE CAPTION WITH NUMBERS 42",
    "!!!???...,,,;;;:::",
    "\"quoted\" 'single' (parens) [brackets] {braces}",
    "lll eeee ooooo sssss ffff gggggg",
    "coooool balll mississippi",
    "eeeeeee",
    "x",
    "ü",
    "€",
    "😀",
]


def train(name, opts, lines, out):
    prefix = os.path.join(out, name)
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=prefix, **opts)
    os.remove(prefix + ".vocab")
    return spm.SentencePieceProcessor(model_file=prefix + ".model")


def byte_id(sp, b):
    return sp.piece_to_id("<0x%02X>" % b)


def decode_cases(sp, rng):
    """Id sequences for decode: random ids, and byte pieces in valid and broken orders."""
    v = sp.get_piece_size()
    cases = [[rng.randrange(v) for _ in range(rng.randrange(1, 24))] for _ in range(300)]
    if not sp.id_to_piece(3).startswith("<0x"):
        return cases
    normal = [i for i in range(v) if not (sp.is_byte(i) or sp.is_control(i) or sp.is_unknown(i))]
    pieces = [
        "é".encode(), "€".encode(), "😀".encode(), "▁".encode(), b"\xe2\x82", b"\xf0\x9f\x98",
        b"\x80", b"\xbf", b"\xc0\x80", b"\xe0\x80\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
        b"\xf8", b"\xff", b"\xc3", b"\xc3\xc3\xa9", b"\xe2\x41", b" ", b"a", b"\x00", b"\xef\xbf\xbd",
    ]
    for _ in range(300):
        seq = []
        for _ in range(rng.randrange(1, 12)):
            r = rng.random()
            if r < 0.5:
                seq += [byte_id(sp, b) for b in rng.choice(pieces)]
            elif r < 0.7:
                seq.append(byte_id(sp, rng.randrange(256)))
            elif r < 0.95:
                seq.append(rng.choice(normal))
            else:
                seq.append(rng.choice([sp.unk_id(), sp.bos_id(), sp.eos_id()]))
        cases.append(seq)
    mark = [byte_id(sp, b) for b in "▁".encode()]
    space = sp.piece_to_id("▁")
    word = sp.piece_to_id("▁a")
    cases += [mark + [word], [space] + mark + [word], [byte_id(sp, 0x41), word], [byte_id(sp, 0xE2), word],
              [sp.bos_id(), byte_id(sp, 0xC3), sp.eos_id(), word], [space, space, word]]
    return cases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data/multi30k")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "tests", "data"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with gzip.open(os.path.join(args.data, "train.en.gz"), "rt", encoding="utf-8") as f:
        train_lines = [line.rstrip("\n") for line in f]
    with gzip.open(os.path.join(args.data, "test_2016_flickr.en.gz"), "rt", encoding="utf-8") as f:
        test = [line.rstrip("\n") for line in f]
    for name, opts in MODELS.items():
        lines = train_lines[: opts.pop("input_sentence_size", len(train_lines))]
        sp = train(name, opts, lines, args.out)
        base = os.path.join(args.out, name)
        n_bytes = n_unk = 0
        with open(base + ".test2016.txt", "w", encoding="utf-8") as fo, \
                open(base + ".test2016_decoded.txt", "w", encoding="utf-8") as fd:
            for line in test:
                ids = sp.encode(line)
                n_bytes += sum(map(sp.is_byte, ids))
                n_unk += sum(map(sp.is_unknown, ids))
                fo.write(" ".join(map(str, ids)) + "\n")
                fd.write(sp.decode(ids) + "\n")
        rng = random.Random(20240601)
        with open(base + ".cases.jsonl", "w", encoding="utf-8") as fc:
            for text in HOSTILE:
                ids = sp.encode(text)
                fc.write(json.dumps({"text": text, "ids": ids, "decoded": sp.decode(ids)}) + "\n")
            for ids in decode_cases(sp, rng):
                fc.write(json.dumps({"ids": ids, "decoded": sp.decode(ids)}) + "\n")
        print(f"{name}: {sp.get_piece_size()} pieces; test2016 {len(test)} lines, "
              f"{n_bytes} byte pieces, {n_unk} unk; {len(HOSTILE)} hostile texts")
    for name, opts in REJECTED.items():
        train(name, opts, train_lines[:2000], args.out)


if __name__ == "__main__":
    main()
