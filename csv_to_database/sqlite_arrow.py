"""SQLite's Arrow parsing of simple shards: pyarrow's CSV reader, typed by the target's columns.

pyarrow (C++, multithreaded; floats by fast_float, correctly rounded like Python's ``float()``)
turns a shard into typed columns.  Two users: the ADBC loader process (``sqlite_child``), which
binds the Arrow columns straight into SQLite, and, when ADBC is not installed, the loader's
in-process path, which turns them into Python lists for sqlite3's ``executemany``.

It accepts a subset of what the row path accepts, with the same values: anything it does not
decide itself (a value Arrow cannot parse as the column's type, 'nan'/'inf', an empty required
field, a ragged line, a file changed since it was scanned) gives None before anything is
inserted, and the caller loads the shard the old way, which accepts it or names the line.
Without pyarrow it is simply not used.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lasair_parallel.csv_to_database.shard import Column, Shard, read_header

# Bytes of CSV per piece that the ADBC loader parses while it inserts the previous one
# (8 MiB: 5 pieces per 41 MB benchmark shard).  The first piece is parsed before any insert
# can start, so it is small: 1 MiB parses in ~5 ms here (one thread), 8 MiB in ~38 ms.
PIECE = 8 << 20
FIRST_PIECE = 1 << 20


def available() -> bool:
    """Whether pyarrow can be imported (found, not imported: the check costs nothing)."""
    try:
        return importlib.util.find_spec("pyarrow") is not None
    except (ImportError, ValueError):
        return False


def read_bytes(shard: Shard) -> bytes | None:
    """The shard's bytes, or None if it changed since the scan hashed it (same size and mtime,
    as the MySQL path checks: hashing the 42 MB again would cost ~0.08 s per shard here)."""
    data = Path(shard.path).read_bytes()
    if len(data) != shard.size or not shard.unchanged():
        return None  # the row path reports it
    return data


def pieces(data: bytes, size: int = PIECE, first: int = FIRST_PIECE) -> list[tuple[int, int]]:
    """``(start, end)`` byte ranges of the data lines (after the header), each ending at a
    line end: about ``first`` bytes, then about ``size`` each; [] for a header-only shard."""
    start = data.find(b"\n") + 1
    if start == 0:
        return []
    out = []
    while start < len(data):
        step = first if not out else size
        end = data.find(b"\n", min(start + step, len(data)) - 1) + 1 or len(data)
        out.append((start, end))
        start = end
    return out


def parse_piece(buf, cols: list[Column]):
    """One run of whole data lines (a pyarrow Buffer, no header) as a pyarrow Table typed by
    ``cols``, or None when Arrow does not decide it (see the module docstring)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    types = {"int": pa.int64(), "float": pa.float64(), "text": pa.string()}
    names = [c.name for c in cols]
    try:
        t = pcsv.read_csv(
            pa.BufferReader(buf),
            read_options=pcsv.ReadOptions(column_names=names, block_size=1 << 22),
            parse_options=pcsv.ParseOptions(quote_char=False, double_quote=False,
                                            newlines_in_values=False),
            convert_options=pcsv.ConvertOptions(
                column_types={c.name: types[c.kind] for c in cols},
                null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False,
                true_values=[], false_values=[]))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError):
        return None
    for c in cols:
        col = t.column(c.name)
        if ((c.pk and not c.auto) or c.notnull) and col.null_count:
            return None  # empty required field: the row path names the line
        if c.kind == "float" and col.length() > col.null_count:
            if not pc.all(pc.is_finite(col)).as_py():  # 'nan', 'inf', 1e999: refused
                return None
    return t


def parse(shard: Shard, table: str, table_cols: dict[str, Column]):
    """The whole shard as one pyarrow Table typed by the target's columns, or None."""
    import pyarrow as pa

    cols = read_header(shard, table, table_cols)  # header problems: ShardError, as before
    data = read_bytes(shard)
    if data is None:
        return None
    parts = pieces(data, len(data), len(data))
    if not parts:
        return None  # no data line: the other paths load nothing, as before
    start, end = parts[0]
    return parse_piece(pa.py_buffer(data)[start:end], cols)


def columns(t, cols: list[Column]) -> list[list]:
    """The parsed columns as Python lists for ``executemany``: floats through numpy (a null
    becomes NaN, which SQLite stores as NULL), ints through numpy when they have no nulls."""
    out = []
    for c in cols:
        col = t.column(c.name)
        if c.kind == "float":
            out.append(col.to_numpy().tolist())
        elif c.kind == "int" and not col.null_count:
            out.append(col.to_numpy().tolist())
        else:
            out.append(col.to_pylist())
    return out
