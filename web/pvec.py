"""Test-vector files (`<model>.vectors.bin`), read as src/vectors/mod.rs defines them:

    "PVEC", u32 version (2), u32 count, then per case (little-endian, packed):
      u8 kind (0 translate, 1 generate, 2 classify), u8 0, u16 text bytes, text (UTF-8),
      u16 n, n × u16 input ids,
      u32 f, f × i16 feature values (frames × n_features),
      u16 m, m × u16 output ids,
      u32 digest
"""
import struct
import sys
from pathlib import Path

KINDS = ("translate", "generate", "classify")


def read_cases(path):
    """Per case: {kind, text, ids, features, out} (features as a list of i16 values)."""
    b = Path(path).read_bytes()
    if b[:4] != b"PVEC" or struct.unpack_from("<I", b, 4)[0] != 2:
        sys.exit(f"{path}: not a version-2 vector file")
    count, o, cases = struct.unpack_from("<I", b, 8)[0], 12, []
    for _ in range(count):
        kind, _, tl = struct.unpack_from("<BBH", b, o)
        o += 4
        text = b[o:o + tl].decode()
        o += tl
        (n,) = struct.unpack_from("<H", b, o)
        ids = list(struct.unpack_from(f"<{n}H", b, o + 2))
        o += 2 + 2 * n
        (f,) = struct.unpack_from("<I", b, o)
        features = list(struct.unpack_from(f"<{f}h", b, o + 4))
        o += 4 + 2 * f
        (m,) = struct.unpack_from("<H", b, o)
        out = list(struct.unpack_from(f"<{m}H", b, o + 2))
        o += 2 + 2 * m + 4
        cases.append({"kind": KINDS[kind], "text": text, "ids": ids, "features": features, "out": out})
    if o != len(b):
        sys.exit(f"{path}: {len(b) - o} bytes after the last case")
    return cases
