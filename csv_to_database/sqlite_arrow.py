"""SQLite's Arrow path for simple shards: pyarrow's CSV parser, rows bound by ``executemany``.

The shard is parsed by pyarrow (C++, multithreaded; floats by fast_float, correctly rounded like
Python's ``float()``) into typed columns, which the loader inserts with ``executemany`` on its
own sqlite3 connection, inside the transaction that holds the shard's ledger row.

Not ADBC's bulk ingest, although it binds straight from Arrow memory: adbc-driver-sqlite links
its own copy of SQLite, and two copies of SQLite in one process do not see each other's POSIX
locks (https://www.sqlite.org/howtocorrupt.html, 2.2.2).  Measured here: with three loader
threads, a COMMIT on the ADBC connection reported "disk I/O error" after it had committed.

It accepts a subset of what the row path accepts, with the same values: anything it does not
decide itself (a value Arrow cannot parse as the column's type, 'nan'/'inf', an empty required
field, a ragged line, a duplicate under --insert, a file changed since it was scanned) returns
None before anything is inserted, and the caller loads the shard the old way, which accepts it
or names the line.  Without pyarrow it is simply not used.
"""

from __future__ import annotations

from pathlib import Path

from lasair_parallel.csv_to_database.shard import Column, Shard, read_header


def available() -> bool:
    """Whether pyarrow imports."""
    try:
        import pyarrow.csv  # noqa: F401
    except ImportError:
        return False
    return True


def parse(shard: Shard, table: str, table_cols: dict[str, Column]):
    """The shard as a pyarrow Table typed by the target's columns, or None (not for Arrow)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    cols = read_header(shard, table, table_cols)  # header problems: ShardError, as before
    data = Path(shard.path).read_bytes()
    # Unchanged since the scan hashed it: same size and mtime, as the MySQL path checks
    # (hashing the 42 MB again would cost ~0.08 s per shard here).
    if len(data) != shard.size or not shard.unchanged():
        return None  # changed since scanned: the row path reports it
    types = {"int": pa.int64(), "float": pa.float64(), "text": pa.string()}
    names = [c.name for c in cols]
    try:
        t = pcsv.read_csv(
            pa.BufferReader(data),
            read_options=pcsv.ReadOptions(column_names=names, skip_rows=1,
                                          block_size=1 << 22),
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
