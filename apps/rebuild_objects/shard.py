"""Feature rows as the text of one CSV shard: header row, NULL as an empty field, exact floats.

Floats are written in their shortest round-trip form, as orjson formats them (its Ryu
formatter: ``0.000032``, ``1.5e-7``, ``1e16``; the same digits as Python's repr, ~10x faster), so
loading a shard gives back the same doubles; zeros stay "0.0"; NaN (missing) becomes an empty
field.  The text never depends on what is installed: without orjson, repr's digits are laid out
by orjson's rules (slowly, per value) and give the identical bytes.

Fast path: in a chunk of rows, each run of neighbouring numeric columns is serialized by one
``orjson.dumps`` call as a 2-D numpy array and cut into its rows' texts, each string column by
one join; a row is then one ``b",".join`` of its pieces (no per-value Python code).  That is
exact only when no string field needs CSV quoting and none holds a newline; strings are checked
first (one regex over all of them) and any other chunk goes through the per-value path, which
gives the same bytes.
"""

from __future__ import annotations

import csv
import io
import re

import numpy as np
from lasair_parallel.apps.rebuild_objects.features import COLUMNS

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


def _runs(cols: list[np.ndarray]) -> list[tuple[str, list[np.ndarray]]] | None:
    """COLUMNS cut into runs of neighbours of one kind: ("s", [column]) or ("f"/"i", [columns
    as float64 / int64]); None when a numeric column has a dtype the fast path does not take
    (float32 would print in its own shortest digits, a float 'i' column as 8.0)."""
    runs: list[tuple[str, list[np.ndarray]]] = []
    for (_, kind), v in zip(COLUMNS, cols, strict=True):
        if kind == "f":
            if v.dtype.kind != "f":
                return None
            v = v.astype(np.float64, copy=False)  # float32 -> the same double, as tolist()
        elif kind == "i":
            if v.dtype.kind not in "iu":
                return None
            v = v.astype(np.int64, copy=False)
        if kind != "s" and runs and runs[-1][0] == kind:
            runs[-1][1].append(v)
        else:
            runs.append((kind, [v]))
    return runs


def _fast_rows(cols: list[np.ndarray]) -> bytes | None:
    """Each run of numeric columns as one 2-D array through one orjson call
    ([[1.5,null],[2.0,3e+16]]), split into its rows' texts at "],["; each string column as
    one join and split; then the rows' pieces joined.  No Python code per value: per row,
    one join.  None when the chunk needs the per-value path (see ``_runs``)."""
    runs = _runs(cols)
    if runs is None:
        return None
    n = len(cols[0])
    pieces = []
    for kind, vs in runs:
        if kind == "s":
            parts = "\n".join(["" if s is None else s for s in vs[0].tolist()]).encode().split(
                b"\n")
        else:
            block = np.column_stack(vs)
            text = orjson.dumps(block, option=orjson.OPT_SERIALIZE_NUMPY)
            # Each pass over the text costs (~1 ms per MB): only those the values need.
            if kind == "f" and not np.isfinite(block).all():
                text = text.replace(b"null", b"")  # NaN and inf come out as null: empty field
            if kind == "f" and (np.abs(block) >= 1e15).any():  # exponents from 1e16 (margin)
                text = text.replace(b"e+", b"e")  # orjson >= 3.9 writes 1e+16, older 1e16
            parts = text[2:-2].split(b"],[")
        if len(parts) != n:  # cannot happen for plain strings; never write a torn row
            return None
        pieces.append(parts)
    return b"\n".join(map(b",".join, zip(*pieces, strict=True))) + b"\n"


def shard_chunks(features: dict[str, np.ndarray]) -> list[bytes]:
    """The CSV text of a features dict from compute_features as pieces: the header line, then
    the rows of each chunk of CHUNK_ROWS objects (each piece ends with a newline).  Written or
    streamed piece by piece, a shard is never joined into one copy (68 MB for 128,000 objects)."""
    header = ",".join(name for name, _ in COLUMNS).encode() + b"\n"
    n = len(features["objectId"])
    parts = [header]
    for lo in range(0, n, CHUNK_ROWS):
        cols = [features[name][lo:lo + CHUNK_ROWS] for name, _ in COLUMNS]
        text = _fast_rows(cols) if orjson is not None and _plain_strings(cols) else None
        parts.append(_slow_rows(cols) if text is None else text)
    return parts


def shard_bytes(features: dict[str, np.ndarray]) -> bytes:
    """The CSV text (header + one row per object) of a features dict from compute_features."""
    return b"".join(shard_chunks(features))
