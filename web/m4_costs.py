#!/usr/bin/env python3
"""Measure what each test-vector case costs on a Cortex-M4 and write the page's data files.

Runs the mps2-an386 firmware in QEMU (`cargo an386`: Cortex-M4F, DSP kernels, `-icount shift=0`,
so the counts are exact instructions), reads its per-model, per-case lines

    == model de-en
    case 0: Ein Mann mit einem orangefarbenen Hut, der etwas anstarrt.
      source: 17 ok (vector: 17)
      ids: 11 ok (vector: 11); logits digest ...
      instructions: 18490480 (tokenize 124000, encode 5838520, decode 12527960 = 1138905 per step)
    == model japanese-vowels
    case 0: a window of 19 frames
      frames: 19 ok (vector: 19)
      instructions: 1322360 (one pass over 19 rows)

checks them against each model's vector file (web/pvec.py), and writes, for every model in
web/models.json, JSON with the exact per-case counts and the per-unit costs the page uses to
estimate other inputs (instructions per text byte for the tokenizer, per source or prompt id
for the encoder or the prompt, per decoder step; per frame for a classifier), with the
estimate's leave-one-out error on the measured cases. The page multiplies these rates by the
units its kind reports, so the estimate is the same code for every model. A classifier's cases
are the test-set windows the converter spread its vectors over (tools/src/convert.rs `spread`):
each is named `test window K`, K counted from 0 in the model's test.csv.

    web/m4_costs.py                      # run cargo an386, write web/models/<id>.m4.json
    web/m4_costs.py --log an386.log --commit 1234abc   # from a saved log made at that commit
"""
import argparse
import datetime
import json
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pvec  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "cargo an386"
MACHINE = "QEMU mps2-an386, Cortex-M4F (DSP kernels), -icount shift=0: exact instruction counts"
CLOCK_HZ = 168_000_000  # an STM32F4-class M4, as BENCHMARKS.md's time estimates

MODEL = re.compile(r"^== model (\S+)$")
CASE = re.compile(r"^case (\d+): (.*)$")
INPUT = re.compile(r"^\s+(source|prompt|frames): (\d+) ok")
IDS = re.compile(r"^\s+ids: (\d+) ok")
COST = re.compile(r"^\s+instructions: (\d+) \(tokenize (\d+), (?:encode|prompt) (\d+), decode (\d+) = \d+ per step\)")
COST_WINDOW = re.compile(r"^\s+instructions: (\d+) \(one pass over \d+ rows\)")

# per kind: the unit each part of the firmware's count scales with
PART = {
    "translate": {"text_byte": "tokenize", "source_id": "encode", "decoder_step": "decode"},
    "generate": {"text_byte": "tokenize", "prompt_id": "prompt", "decoder_step": "decode"},
    "classify": {"frame": "classify"},
}


def parse_log(log):
    """{model: [case]} with each case's text, input count, output ids and counts."""
    if not re.search(r"\d+ passed, 0 failed", log):
        sys.exit("the firmware run did not pass")
    models, cases, cur = {}, None, None
    for line in log.splitlines():
        if m := MODEL.match(line):
            cases, cur = models.setdefault(m[1], []), None
        elif cases is not None and (m := CASE.match(line)):
            cur = {"index": int(m[1]), "text": m[2]}
            cases.append(cur)
        elif cur is not None and (m := INPUT.match(line)):
            cur["inputs"] = int(m[2])
        elif cur is not None and (m := IDS.match(line)):
            cur["steps"] = int(m[1])
        elif cur is not None and (m := COST.match(line)):
            cur.update(total=int(m[1]), parts=[int(m[2]), int(m[3]), int(m[4])])
        elif cur is not None and (m := COST_WINDOW.match(line)):
            cur.update(total=int(m[1]), parts=[int(m[1])])
    return models


def spread(n_windows, n):
    """The window indices tools/src/convert.rs `spread` picks."""
    n = min(n, n_windows)
    return [i * n_windows // n for i in range(n)]


def csv_windows(path):
    """Frame counts of a test.csv's windows (a frame per line, windows between blank lines)."""
    counts, cur = [], 0
    for line in Path(path).read_text().splitlines():
        if line.strip():
            cur += 1
        elif cur:
            counts.append(cur)
            cur = 0
    return counts + ([cur] if cur else [])


def cases_of(model, log_cases):
    """The measured cases of one models.json entry, checked against its vector file."""
    kind, src = model["kind"], Path(model["blob_source"])
    vec = pvec.read_cases(src.with_suffix(".vectors.bin"))
    if len(log_cases) != min(len(vec), 8) or any("total" not in c for c in log_cases):
        sys.exit(f"{model['id']}: the log has no complete, passing per-case lines")
    names = list(PART[kind])
    windows = csv_windows(ROOT / model["test_windows"]) if kind == "classify" else None
    keys = spread(len(windows), len(vec)) if windows else None
    out = []
    for c, v in zip(log_cases, vec):
        if kind == "classify":
            frames, k = c["inputs"], keys[c["index"]]
            width = len(v["features"]) // max(frames, 1)
            if width * frames != len(v["features"]) or windows[k] != frames or width != len(vec[0]["features"]) // max(log_cases[0]["inputs"], 1):
                sys.exit(f"{model['id']} case {c['index']}: {frames} frames, the vector {len(v['features'])} values, test window {k} {windows[k]} frames")
            units, text = {"frame": frames}, f"test window {k}"
        else:
            if c["text"] != v["text"] or (c["inputs"], c["steps"]) != (len(v["ids"]), len(v["out"])):
                sys.exit(f"{model['id']} case {c['index']}: differs from the vector file")
            units = dict(zip(names, [len(v["text"].encode()), c["inputs"], c["steps"]]))
            text = c["text"]
        parts = dict(zip(PART[kind].values(), c["parts"]))
        out.append({"index": c["index"], "text": text, "units": units, "instructions": c["total"], "parts": parts})
    return out


def rates(kind, cases):
    """Measured instructions per unit, over `cases`."""
    return {u: sum(c["parts"][p] for c in cases) / sum(c["units"][u] for c in cases) for u, p in PART[kind].items()}


def estimate(r, u):
    return round(sum(r[k] * u[k] for k in r))


def git(*args):
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


NOTES = {
    "translate": "instructions per UTF-8 byte of text (tokenizer), per source id, eos included (encoder), "
                 "per decoder step, eos step included (decoder), over the measured sentences",
    "generate": "instructions per UTF-8 byte of text (tokenizer), per prompt id, bos included (the prompt pass), "
                "per decoder step, eos step included (decoding), over the measured prompts",
    "classify": "instructions per frame of the window (the whole classification), over the measured windows",
}
ABOUT = {
    "translate": "Instructions each sentence costs on a Cortex-M4 (tokenize + encode + greedy decode, as the firmware runs it).",
    "generate": "Instructions each prompt costs on a Cortex-M4 (tokenize + prompt + greedy decode of up to 20 tokens, as the firmware runs it).",
    "classify": "Instructions each window costs on a Cortex-M4 (one pass of the encoder and the head, as the firmware runs it).",
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log", help="a saved `cargo an386` log (default: run it now)")
    ap.add_argument("--commit", help="the commit the saved log was made at (default: HEAD)")
    a = ap.parse_args()

    if a.log:
        log = Path(a.log).read_text()
    else:
        p = subprocess.run(COMMAND.split(), cwd=ROOT, capture_output=True, text=True)
        log = p.stdout + p.stderr
        if p.returncode != 0:
            sys.exit(f"{COMMAND} failed:\n{log}")
    measured = parse_log(log)
    dirty = git("status", "--porcelain", "--", "src", "boards", "build.rs", "Cargo.toml", "Cargo.lock", ".cargo")
    qemu = subprocess.run(["qemu-system-arm", "--version"], capture_output=True, text=True).stdout.splitlines()
    for model in json.loads((ROOT / "web/models.json").read_text())["models"]:
        kind = model["kind"]
        if model["id"] not in measured:
            sys.exit(f"the log has no model {model['id']}")
        cases = cases_of(model, measured[model["id"]])
        r = rates(kind, cases)
        # leave-one-out: estimate each case from the other cases' rates
        errors = []
        for i, c in enumerate(cases):
            c["estimate_left_out"] = estimate(rates(kind, cases[:i] + cases[i + 1:]), c["units"])
            errors.append(abs(c["estimate_left_out"] - c["instructions"]) / c["instructions"])
        data = {
            "about": ABOUT[kind] + " Written by web/m4_costs.py; do not edit.",
            "machine": MACHINE,
            "command": COMMAND,
            "commit": a.commit or git("rev-parse", "--short=7", "HEAD") + (" (with uncommitted changes)" if dirty else ""),
            "date": datetime.date.today().isoformat(),
            "qemu": qemu[0] if qemu else "",
            "rustc": subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip(),
            "clock_hz": CLOCK_HZ,
            "clock_note": "time = instructions / clock, taking one instruction per cycle (BENCHMARKS.md): an order of magnitude",
            "per_unit": {k: round(v, 1) for k, v in r.items()},
            "per_unit_note": NOTES[kind],
            "estimate_error": {"max": round(max(errors), 4), "mean": round(sum(errors) / len(errors), 4),
                               "note": "each measured case estimated from the other cases' rates"},
            "cases": cases,
        }
        out = ROOT / "web" / model["costs"]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        mean = sum(c["instructions"] for c in cases) / len(cases)
        print(f"{out.relative_to(ROOT)}: {len(cases)} cases at {data['commit']}, {mean / 1e6:.2f} M instructions each on average; "
              f"per unit {data['per_unit']}; leave-one-out error max {100 * max(errors):.1f}%")


if __name__ == "__main__":
    main()
