#!/usr/bin/env python3
"""Measure what each test-vector sentence costs on a Cortex-M4 and write the page's data file.

Runs the mps2-an386 firmware in QEMU (`cargo an386`: Cortex-M4F, DSP kernels, `-icount shift=0`,
so the counts are exact instructions), reads its per-case lines

    case 0: Ein Mann mit einem orangefarbenen Hut, der etwas anstarrt.
      source: 17 ids ok (vector: 17)
      ids: 11 ok (vector: 11); logits digest ...
      instructions: 18648840 (tokenize 122640, encode 5801360, decode 12724840 = 1156803 per step)

checks the texts against the vector file, and writes JSON with the exact per-sentence counts and
the per-unit costs the page uses to estimate other sentences (instructions per text byte for the
tokenizer, per source id for the encoder, per decoder step), with the estimate's leave-one-out
error on the measured sentences. The page multiplies these rates by the units its kind reports
(`text_byte`, `source_id`, `decoder_step`), so the estimate is the same code for every model.

    web/m4_costs.py                      # run cargo an386, write web/models/de-en.m4.json
    web/m4_costs.py --log an386.log      # from a saved log of the same commit
"""
import argparse
import datetime
import json
import re
import struct
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "cargo an386"
MACHINE = "QEMU mps2-an386, Cortex-M4F (DSP kernels), -icount shift=0: exact instruction counts"
CLOCK_HZ = 168_000_000  # an STM32F4-class M4, as BENCHMARKS.md's time estimates


def vector_cases(path):
    """(text, source ids, output ids incl. eos) per case; format in src/vectors.rs."""
    b = Path(path).read_bytes()
    if b[:4] != b"PVEC" or struct.unpack_from("<I", b, 4)[0] != 1:
        sys.exit(f"{path}: not a version-1 vector file")
    count = struct.unpack_from("<I", b, 8)[0]
    o, cases = 12, []
    for _ in range(count):
        tl = struct.unpack_from("<H", b, o)[0]
        text = b[o + 2:o + 2 + tl].decode()
        o += 2 + tl
        n = struct.unpack_from("<H", b, o)[0]
        o += 2 + 2 * n
        m = struct.unpack_from("<H", b, o)[0]
        o += 2 + 2 * m + 4
        cases.append((text, n, m))
    return cases


CASE = re.compile(r"^case (\d+): (.*)$")
SOURCE = re.compile(r"^\s+source: (\d+) ids ok")
IDS = re.compile(r"^\s+ids: (\d+) ok")
COST = re.compile(r"^\s+instructions: (\d+) \(tokenize (\d+), encode (\d+), decode (\d+) = \d+ per step\)")


def parse_log(log):
    cases, cur = [], None
    for line in log.splitlines():
        if m := CASE.match(line):
            cur = {"index": int(m[1]), "text": m[2]}
            cases.append(cur)
        elif cur is not None and (m := SOURCE.match(line)):
            cur["source_ids"] = int(m[1])
        elif cur is not None and (m := IDS.match(line)):
            cur["steps"] = int(m[1])
        elif cur is not None and (m := COST.match(line)):
            cur.update(total=int(m[1]), tokenize=int(m[2]), encode=int(m[3]), decode=int(m[4]))
    if not cases or any(len(c) != 8 for c in cases):
        sys.exit("the log has no complete, passing per-case lines (a failed case prints no 'ok')")
    if "12 passed, 0 failed" not in log and not re.search(r"\d+ passed, 0 failed", log):
        sys.exit("the firmware run did not pass")
    return cases


def units(c):
    """What a sentence's cost scales with, named as the page's kind reports them."""
    return {"text_byte": len(c["text"].encode()), "source_id": c["source_ids"], "decoder_step": c["steps"]}


# the part of the firmware's count that each unit drives
PART = {"text_byte": "tokenize", "source_id": "encode", "decoder_step": "decode"}


def rates(cases):
    """Measured instructions per unit: the tokenizer per text byte, the encoder per source id
    (eos included), the decoder per step (eos step included)."""
    return {u: sum(c["parts"][p] for c in cases) / sum(c["units"][u] for c in cases) for u, p in PART.items()}


def estimate(r, u):
    return round(sum(r[k] * u[k] for k in r))


def git(*args):
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log", help="a saved `cargo an386` log (default: run it now)")
    ap.add_argument("--vectors", default=str(ROOT / "models/de-en/de-en.vectors.bin"))
    ap.add_argument("--out", default=str(ROOT / "web/models/de-en.m4.json"))
    a = ap.parse_args()

    if a.log:
        log = Path(a.log).read_text()
    else:
        p = subprocess.run(COMMAND.split(), cwd=ROOT, capture_output=True, text=True)
        log = p.stdout + p.stderr
        if p.returncode != 0:
            sys.exit(f"{COMMAND} failed:\n{log}")
    cases = parse_log(log)
    vec = vector_cases(a.vectors)
    if [c["text"] for c in cases] != [t for t, _, _ in vec]:
        sys.exit("the log's sentences are not the vector file's")
    for c, (_, n, m) in zip(cases, vec):
        if (c["source_ids"], c["steps"]) != (n, m):
            sys.exit(f"case {c['index']}: ids differ from the vector file")

    cases = [{"index": c["index"], "text": c["text"], "units": units(c), "instructions": c["total"],
              "parts": {p: c[p] for p in PART.values()}} for c in cases]
    r = rates(cases)
    # leave-one-out: estimate each sentence from the other seven's rates
    errors = []
    for i, c in enumerate(cases):
        c["estimate_left_out"] = estimate(rates(cases[:i] + cases[i + 1:]), c["units"])
        errors.append(abs(c["estimate_left_out"] - c["instructions"]) / c["instructions"])

    dirty = git("status", "--porcelain", "--", "src", "boards", "build.rs", "Cargo.toml", "Cargo.lock", ".cargo")
    qemu = subprocess.run(["qemu-system-arm", "--version"], capture_output=True, text=True).stdout.splitlines()
    data = {
        "about": "Instructions each sentence costs on a Cortex-M4 (tokenize + encode + greedy decode, as the "
                 "firmware runs it). Written by web/m4_costs.py; do not edit.",
        "machine": MACHINE,
        "command": COMMAND,
        "commit": git("rev-parse", "--short=7", "HEAD") + (" (with uncommitted changes)" if dirty else ""),
        "date": datetime.date.today().isoformat(),
        "qemu": qemu[0] if qemu else "",
        "rustc": subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip(),
        "clock_hz": CLOCK_HZ,
        "clock_note": "time = instructions / clock, taking one instruction per cycle (BENCHMARKS.md): an order of magnitude",
        "per_unit": {k: round(v, 1) for k, v in r.items()},
        "per_unit_note": "instructions per UTF-8 byte of text (tokenizer), per source id, eos included "
                         "(encoder), per decoder step, eos step included (decoder), over the measured sentences",
        "estimate_error": {"max": round(max(errors), 4), "mean": round(sum(errors) / len(errors), 4),
                           "note": "each measured sentence estimated from the other sentences' rates"},
        "cases": cases,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"{a.out}: {len(cases)} sentences at {data['commit']}; per unit {data['per_unit']}; "
          f"leave-one-out error max {100 * max(errors):.1f}%")


if __name__ == "__main__":
    main()
