"""Shared helpers: the repository's paths, the CLI, the committed vectors (read without the
safetensors package, which CI does not install)."""
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
VECTORS = 8  # the converter's default --vectors: cases per committed vector file

_DTYPES = {"U16": np.uint16, "I16": np.int16, "I32": np.int32, "F32": np.float32, "U32": np.uint32,
           "I64": np.int64, "U8": np.uint8, "I8": np.int8}


def load_safetensors(path):
    """Every tensor of a safetensors file, as numpy arrays."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(body[a:b], dtype=_DTYPES[v["dtype"]]).reshape(v["shape"])
    return out


def cases(name):
    """The committed vectors of models/<name> (or a `.vectors.safetensors` path): per case, its
    src, greedy, features, logits0."""
    path = name if isinstance(name, Path) else MODELS / name / f"{name}.vectors.safetensors"
    t = load_safetensors(path)
    n = 1 + max(int(k.split(".")[1]) for k in t)
    return [{f: t[f"case.{i}.{f}"].tolist() for f in ("src", "greedy", "logits0", "features")
             if f"case.{i}.{f}" in t} for i in range(n)]


def read_windows(path):
    """Windows of a CSV file: frames one per line, windows separated by blank lines."""
    windows, cur = [], []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            if cur:
                windows.append(cur)
                cur = []
            continue
        cur.append([float(v) for v in line.split(",")])
    if cur:
        windows.append(cur)
    return windows


def spread(items, n):
    """The converter's choice of `n` test windows spread over a test set (vectors::spread)."""
    n = min(n, len(items))
    return [items[i * len(items) // n] for i in range(n)]


def lines(path, n=None):
    return Path(path).read_text(encoding="utf-8").splitlines()[:n]


def cli_path():
    """The `picoformer` CLI: $PICOFORMER_CLI, else the one scripts/python-test builds."""
    for p in (os.environ.get("PICOFORMER_CLI"), ROOT / "target/python/picoformer",
              ROOT / "target/release/picoformer"):
        if p and Path(p).is_file():
            return str(p)
    return shutil.which("picoformer")


@pytest.fixture(scope="session")
def cli():
    """Run the CLI; returns its stdout (and fails the test with its stderr if it fails)."""
    exe = cli_path()
    if exe is None:
        pytest.fail("no picoformer CLI: run scripts/python-test, or set PICOFORMER_CLI")

    def run(*args, check=True, stdin=None):
        env = dict(os.environ)
        env.pop("RUST_BACKTRACE", None)
        r = subprocess.run([exe, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                           input=stdin, env=env)
        if check and r.returncode != 0:
            raise AssertionError(f"picoformer {' '.join(map(str, args))}: {r.stderr}")
        return r if not check else r.stdout

    return run
