"""Write feature rows as one CSV shard: header row, NULL as an empty field, exact floats.

Floats are written in their shortest round-trip form (Python's repr; orjson's formatter gives
the same digits ~10x faster and is used when installed), so loading a shard gives back the
same doubles; zeros stay "0.0"; NaN (missing) becomes an empty field.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from apps.rebuild_objects.features import COLUMNS
from tasks.outputs import atomic_write

try:  # optional accelerator: same text as repr for finite floats
    import orjson
except ImportError:  # pragma: no cover - exercised where orjson is missing
    orjson = None


def _format_numbers(values: np.ndarray) -> list[bytes]:
    if orjson is not None:
        text = orjson.dumps(np.ascontiguousarray(values), option=orjson.OPT_SERIALIZE_NUMPY)
        if len(values) == 0:
            return []
        return [b"" if v == b"null" else v for v in text[1:-1].split(b",")]
    if values.dtype.kind == "f":
        return [b"" if v != v or v in (np.inf, -np.inf) else repr(v).encode()
                for v in values.tolist()]
    return [str(v).encode() for v in values.tolist()]


def _format_strings(values: np.ndarray) -> list[bytes]:
    out = []
    for v in values.tolist():
        if v is None:
            out.append(b"")
        elif any(ch in v for ch in ',"\n\r') or v == "":
            buf = io.StringIO()
            csv.writer(buf, lineterminator="").writerow([v])
            out.append(buf.getvalue().encode())
        else:
            out.append(v.encode())
    return out


def shard_bytes(features: dict[str, np.ndarray]) -> bytes:
    """The CSV text (header + one row per object) of a features dict from compute_features."""
    cols = []
    for name, kind in COLUMNS:
        v = features[name]
        cols.append(_format_strings(v) if kind == "s" else _format_numbers(v))
    header = ",".join(name for name, _ in COLUMNS).encode()
    body = b"\n".join(map(b",".join, zip(*cols, strict=True)))
    return header + b"\n" + (body + b"\n" if body else b"")


def write_shard(path: str | Path, features: dict[str, np.ndarray]) -> int:
    """Write the shard atomically (temp file + rename); returns the number of rows."""
    data = shard_bytes(features)
    with atomic_write(path, "wb") as f:
        f.write(data)
    return len(features["objectId"])
