"""Write feature rows as one CSV shard: header row, NULL as an empty field, exact floats.

Floats are written in their shortest round-trip form, as orjson formats them (its Ryu
formatter: ``0.000032``, ``1.5e-7``, ``1e16``; the same digits as Python's repr, ~10x faster), so
loading a shard gives back the same doubles; zeros stay "0.0"; NaN (missing) becomes an empty
field.  The text never depends on what is installed: without orjson, repr's digits are laid out
by orjson's rules (slowly, per value) and give the identical bytes.

Fast path: a chunk of rows is serialized by one ``orjson.dumps`` call as a JSON array of arrays
and turned into CSV by a few ``bytes.replace`` over the whole chunk (no per-value Python code).
That is exact only when no string field needs CSV quoting or JSON escaping and none could be
mistaken for the JSON punctuation being replaced; strings are checked first (one regex over all
of them) and any other chunk goes through the per-value path, which gives the same bytes.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
from lasair_parallel.apps.rebuild_objects.features import COLUMNS
from lasair_parallel.tasks.outputs import atomic_write

try:  # the formatter the shard text is defined by; see _format_float for the fallback
    import orjson
except ImportError:  # pragma: no cover - exercised where orjson is missing
    orjson = None

CHUNK_ROWS = 8192  # rows serialized at a time: bounds the Python objects alive at once
# String fields the fast path may emit as they are: no CSV quoting needed (, " \n \r), no JSON
# escaping (" \\ control characters), no [ ] (row separators), never empty (CSV-quoted "").
# '+' is excluded too: in the fast path's text a '+' can then only be an exponent's sign.
_PLAIN = re.compile(r"[^\x00-\x1f\"\\,\[\]\x7f+]+")


def _format_float(v: float) -> bytes:
    """orjson's text for one float: shortest round-trip digits (repr's), laid out like Ryu's
    ``format64``: plain decimals for decimal exponents -5 < e <= 16, else d.ddde[-]x."""
    if v != v or v in (np.inf, -np.inf):
        return b""
    r = repr(v)
    sign = "-" if r[0] == "-" else ""
    r = r.lstrip("-")
    mant, _, exp = r.partition("e")
    intpart, _, frac = mant.partition(".")
    digits = (intpart + frac).lstrip("0")
    if not digits:
        return f"{sign}0.0".encode()
    # value = 0.digits * 10**kk
    kk = int(exp or 0) + len(intpart) - (len(intpart + frac) - len((intpart + frac).lstrip("0")))
    digits = digits.rstrip("0")
    n = len(digits)
    k = kk - n  # exponent of the last digit
    if 0 <= k and kk <= 16:
        out = digits + "0" * k + ".0"
    elif 0 < kk <= 16:
        out = digits[:kk] + "." + digits[kk:]
    elif -5 < kk <= 0:
        out = "0." + "0" * -kk + digits
    elif n == 1:
        out = f"{digits}e{kk - 1}"
    else:
        out = f"{digits[0]}.{digits[1:]}e{kk - 1}"
    return (sign + out).encode()


def _format_numbers(values: np.ndarray) -> list[bytes]:
    if values.dtype.kind == "f":
        if orjson is not None:
            text = orjson.dumps(np.ascontiguousarray(values), option=orjson.OPT_SERIALIZE_NUMPY)
            text = text.replace(b"e+", b"e")  # orjson >= 3.9 writes 1e+16, older 1e16
            return [] if len(values) == 0 else [
                b"" if v == b"null" else v for v in text[1:-1].split(b",")]
        return [_format_float(v) for v in values.tolist()]
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


def _slow_rows(cols: list[np.ndarray]) -> bytes:
    """Per-value formatting: any strings, with or without orjson."""
    out = []
    for (_, kind), v in zip(COLUMNS, cols, strict=True):
        out.append(_format_strings(v) if kind == "s" else _format_numbers(v))
    body = b"\n".join(map(b",".join, zip(*out, strict=True)))
    return body + b"\n" if body else b""


def _plain_strings(cols: list[np.ndarray]) -> bool:
    """True when every string field of the chunk can go through the fast path as it is."""
    texts = []
    for (name, kind), v in zip(COLUMNS, cols, strict=True):
        if kind == "s":
            vals = [s for s in v.tolist() if s is not None]
            if (name == "objectId" and len(vals) != len(v)) or not all(
                    isinstance(s, str) and s for s in vals):
                return False
            texts.extend(vals)
    return not texts or _PLAIN.fullmatch("a".join(texts)) is not None


_CLOSE_TO_NEWLINE = bytes.maketrans(b"]", b"\n")


def _fast_rows(cols: list[np.ndarray]) -> bytes:
    """One orjson call for the chunk: [["id",1,2.5,"",...],...] -> CSV lines.

    Missing values (NaN, inf, None) go in as "" so that, once the quotes are deleted, they are
    empty fields; deleting '"' and '[' and turning ']' into a newline leaves rows joined by
    "\n," (from "],["), fixed by one replace.
    """
    lists = []
    for (_, kind), v in zip(COLUMNS, cols, strict=True):
        vals = v.tolist()
        if kind == "f":
            for i in np.flatnonzero(~np.isfinite(v)).tolist():
                vals[i] = ""
        elif kind == "s":
            vals = ["" if s is None else s for s in vals]
        lists.append(vals)
    text = orjson.dumps(list(zip(*lists, strict=True)))
    text = text.replace(b"e+", b"e")  # orjson >= 3.9 writes 1e+16, older 1e16 (no '+' in strings)
    text = text.translate(_CLOSE_TO_NEWLINE, b'"[').replace(b"\n,", b"\n")
    return text[:-1]  # the outer "]" left one newline too many


def shard_bytes(features: dict[str, np.ndarray]) -> bytes:
    """The CSV text (header + one row per object) of a features dict from compute_features."""
    header = ",".join(name for name, _ in COLUMNS).encode() + b"\n"
    n = len(features["objectId"])
    parts = [header]
    for lo in range(0, n, CHUNK_ROWS):
        cols = [features[name][lo:lo + CHUNK_ROWS] for name, _ in COLUMNS]
        fast = orjson is not None and _plain_strings(cols)
        parts.append(_fast_rows(cols) if fast else _slow_rows(cols))
    return b"".join(parts)


def write_shard(path: str | Path, features: dict[str, np.ndarray]) -> int:
    """Write the shard atomically (temp file + rename); returns the number of rows."""
    data = shard_bytes(features)
    with atomic_write(path, "wb") as f:
        f.write(data)
    return len(features["objectId"])
