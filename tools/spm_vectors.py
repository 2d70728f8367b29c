#!/usr/bin/env python3
"""Write SentencePiece test vectors for the on-device tokenizer.

  python tools/spm_vectors.py --model models/de-en/export/tokenizer.model \
      --src ../shared/data/multi30k/test_2016_flickr.de.gz --out models/de-en/tokenizer_test2016.txt

<out>: one line per input sentence, the ids of sp.encode(line) (no bos/eos) separated by spaces.
<out minus .txt>_decoded.txt: sp.decode(ids) per line.
"""
import argparse
import gzip

import sentencepiece as spm


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--src", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--decoded-out", default=None)
    args = ap.parse_args()
    sp = spm.SentencePieceProcessor(model_file=args.model)
    opener = gzip.open if args.src.endswith(".gz") else open
    with opener(args.src, "rt", encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f]
    dec_out = args.decoded_out or (args.out[:-4] if args.out.endswith(".txt") else args.out) + "_decoded.txt"
    n_unk = 0
    with open(args.out, "w", encoding="utf-8") as fo, open(dec_out, "w", encoding="utf-8") as fd:
        for line in lines:
            ids = sp.encode(line)
            n_unk += sum(1 for t in ids if t == sp.unk_id())
            fo.write(" ".join(str(t) for t in ids) + "\n")
            fd.write(sp.decode(ids) + "\n")
    print(f"{len(lines)} lines -> {args.out}, {dec_out}; unk tokens: {n_unk}")


if __name__ == "__main__":
    main()
