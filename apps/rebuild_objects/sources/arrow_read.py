"""Arrow reads of a block of light curves (connectorx), for the SQLite and MySQL sources.

A live `candidates` table is not clustered by object: rows arrive in jd order and only an index
on (objectId, jd) finds an object's rows, so an ordered read of a block is one random row
lookup per detection.  When the block is a large part of such a table, reading the whole table
in storage order (the engine filters the block's rows) and grouping the rows in Arrow/numpy is
several times faster (../shared/notes/anchors.md section 7: 1.44 s against 2.80 s for ~1M rows
from SQLite).  ``plan_read`` decides between that scan and an ordered read from a measured
sample of the index (SQLite) or the primary key (MySQL); either way the rows arrive as Arrow
columns without a Python object per value.  Anything unexpected (a column type Arrow cannot
cast, an id the query cannot quote, a driver error) raises :class:`ArrowFallback` and the
caller reads the block the row-by-row way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from lasair_parallel.apps.rebuild_objects.lazynp import np
from lasair_parallel.apps.rebuild_objects.sources import arrow_np
from lasair_parallel.apps.rebuild_objects.sources.base import (
    FLOAT_COLUMNS,
    LATE_COLUMNS,
    POSITIVE_SQL,
    Deferred,
    Detections,
    clean_ssnamenr,
    run_jobs,
    two_threads,
)

# Seek (random row lookup through the index) against scan (storage order), per row, on an
# unclustered table: anchors.md section 7 measured the SQLite engine at 2.48 s for an ordered
# read of 986k rows as found vs 0.34 s clustered (~2.2 us/row for the lookups) and 0.08-0.14 s
# for a plain scan of the whole table (~0.12 us/row): seeking costs ~18x a scanned row.
SEEK_OVER_SCAN = 18.0
# Index entries sampled to tell whether a table is clustered by object: 2,000 entries cost
# ~1 ms and tell a table in arrival order (neighbours thousands of rows apart) from one
# sorted by object (neighbours 1 row apart) without doubt.
SAMPLE = 2000
# In a table stored by object, index neighbours are storage neighbours (rowids 1 apart); when
# most are further apart than this, the rows are laid out by something else (arrival time).
NEAR_ROWS = 2
_TRAILING_SPACE = re.compile(r"\s(?:\n|\Z)")
SAFE_ID = re.compile(r"^[A-Za-z0-9_.:+-]*$")  # ids put into the SQL text as literals
EVERY_ID = ("", "\U0010ffff")  # (first, last) bounding every objectId: the whole table
# isdiffpos is tested by the server (as by the row path): an integer column `positive` costs
# the SQLite scan less than a string column (0.20 against 0.29 s for the 1.28M-row benchmark
# table on one thread) and needs no dictionary pass here.
SELECTED = ("objectId", "candid", *FLOAT_COLUMNS, "fid", "nid", f"{POSITIVE_SQL} AS positive",
            "ssnamenr")


class ArrowFallback(Exception):
    """The Arrow path cannot read this block: use the row path."""


@dataclass
class ArrowSql:
    """How one dialect reads with connectorx: ``fetch(sql) -> pyarrow.Table``, the table,
    the identifier quote, the clause that forbids the index, whether a stored -inf is read
    as NULL (the SQLite row path's convention), and how a scan is cut into parts."""

    fetch: Callable[[str], object]
    table: str
    quote: str
    no_index: str
    inf_is_null: bool = False
    server_sorts: bool = False  # list objects in the server's collation (MySQL), not bytes
    # Conditions cutting the table into parts (e.g. rowid ranges) that a scan reads at once,
    # one connection and thread each (``scan_all``).
    split: Callable[[], list[str]] | None = None
    # The listing from the objectId index alone, or None where the index cannot answer it
    # (``list_all`` then scans); SQLite's (``sql_arrow.sqlite_index_listing``).
    index_listing: Callable[[], tuple[np.ndarray, np.ndarray] | None] | None = None
    # Whether objectIds compare byte by byte in the server (SQLite's BINARY collation): a
    # scanned block's grouping (byte order) then needs no check against case- or
    # space-insensitive equality (``_fold_collides``).
    byte_ids: Callable[[], bool] | None = None


def literal(value: str) -> str:
    """An objectId as a SQL string literal; ids outside SAFE_ID are not put into SQL text."""
    if not SAFE_ID.match(value):
        raise ArrowFallback(f"objectId {value!r} needs a bound parameter")
    return f"'{value}'"


def select_sql(d: ArrowSql, first: str, last: str, scan: bool) -> str:
    """The block's rows: every column once, in storage order (scan) or ordered by object."""
    names = ", ".join(f"{d.quote}{c}{d.quote}" if c == "dec" else c for c in SELECTED)
    where = f"objectId BETWEEN {literal(first)} AND {literal(last)} AND candid IS NOT NULL"
    if scan:
        return f"SELECT {names} FROM {d.table} {d.no_index} WHERE {where}"
    return f"SELECT {names} FROM {d.table} WHERE {where} ORDER BY objectId, jd, candid"


def unclustered_share(rowids: list[int]) -> float:
    """Share of index neighbours (consecutive entries of the sampled index range) whose rows
    are not near each other in storage."""
    if len(rowids) < 2:
        return 0.0
    # In Python: the head's planner asks this (sqlite_decide) and otherwise needs no numpy
    # (lazynp); for the sample's few thousand rowids it takes well under a millisecond.
    far = sum(abs(b - a) > NEAR_ROWS for a, b in zip(rowids, rowids[1:]))
    return far / (len(rowids) - 1)


def choose(clustered: bool, block_rows: int, table_rows: int) -> str:
    """How to read a block: "seek" (Arrow, ordered) when the table is stored by object;
    "scan" (Arrow, whole table) when its rows are scattered and seeking them would cost more
    than scanning every row; else "rows": few scattered rows are read best by the row path,
    which looks each up once (connectorx runs its query more than once: a 20,000-row block of
    the 1.28M-row benchmark table took 1.2 s through it against 0.6 s row by row)."""
    if clustered:
        return "seek"
    return "scan" if block_rows * SEEK_OVER_SCAN > table_rows else "rows"


def scan_all(d: ArrowSql, sql: str):
    """A scan (its SQL ends with a WHERE clause) as one Arrow table: one query per part of the
    table (``d.split``), run at once on threads (connectorx releases the GIL) and joined in
    the parts' order, so the rows keep their storage order; one query when the dialect
    cannot cut the table."""
    parts = d.split() if d.split is not None else []
    if len(parts) < 2:
        return d.fetch(sql)
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa

    with ThreadPoolExecutor(len(parts)) as pool:
        tables = list(pool.map(d.fetch, [f"{sql} AND ({p})" for p in parts]))
    # An empty part types a column with no declared type (an expression: `positive`) as a
    # string, which its neighbours' integers would not join: only parts with rows are joined.
    return pa.concat_tables([t for t in tables if t.num_rows] or tables[:1])


def read_block(d: ArrowSql, first: str, last: str, scan: bool) -> Detections:
    """Detections of first <= objectId <= last through connectorx (raises ArrowFallback)."""
    try:
        sql = select_sql(d, first, last, scan)
        table = scan_all(d, sql) if scan else d.fetch(sql)
    except ArrowFallback:
        raise
    except Exception as e:  # connectorx raises RuntimeError/ValueError/... by driver
        raise ArrowFallback(f"{type(e).__name__}: {e}") from None
    # Each column is let go once converted, so the next column's gather reuses its memory:
    # the task's peak fell from 555-568 to 436-463 MB for the 1.28M-row benchmark table.
    columns = Columns(table)
    del table  # or this frame would hold every column to the end
    return to_detections(columns, scan, d.inf_is_null,
                         byte_ids=scan and d.byte_ids is not None and d.byte_ids())


class Columns:
    """A table's columns, each handed out once (``column``) and then no longer held here."""

    def __init__(self, table):
        self._cols = dict(zip(table.column_names, table.columns, strict=True))

    def column(self, name: str):
        return self._cols.pop(name)


def list_all(d: ArrowSql) -> tuple[np.ndarray, np.ndarray]:
    """(objectIds, detection counts) from one scan of the table, in listing order: the
    server's (GROUP BY ... ORDER BY in its collation) or, for SQLite's BINARY collation,
    code-point order (= UTF-8 byte order, Arrow's string order) sorted here."""
    where = "WHERE candid IS NOT NULL"
    try:
        if d.server_sorts:
            return _server_listing(d)
        listing = d.index_listing() if d.index_listing is not None else None
        if listing is not None:
            return listing
        base = f"SELECT objectId FROM {d.table} {d.no_index} {where}"
        t = scan_all(d, base)
        vc = arrow_np.compute("value_counts", t.column(0))
        names = vc.field("values")
        order = arrow_np.sort_indices(names)
        ids = np.asarray(arrow_np.compute("take", names, order).to_pylist(), dtype=object)
        counts = arrow_np.ints(arrow_np.compute("take", vc.field("counts"), order))[0]
    except ArrowFallback:
        raise
    except Exception as e:
        raise ArrowFallback(f"{type(e).__name__}: {e}") from None
    return ids, counts


def _server_listing(d: ArrowSql) -> tuple[np.ndarray, np.ndarray]:
    """The server's GROUP BY objectId ORDER BY objectId.  Counting only rows with a candid
    makes the server look each row up from the (objectId, jd) index, or sort the whole table
    (1.03 s for the 1.28M-row benchmark table in MariaDB); when no row lacks a candid (one scan,
    0.18 s, run at once on a second connection) every row counts and the index alone answers
    (0.24 s)."""
    from concurrent.futures import ThreadPoolExecutor

    t = d.table
    with ThreadPoolExecutor(2) as pool:
        nulls = pool.submit(d.fetch, f"SELECT COUNT(*) AS n FROM {t} WHERE candid IS NULL")
        listing = pool.submit(d.fetch, f"SELECT objectId, COUNT(*) AS n FROM {t} "
                                       "GROUP BY objectId ORDER BY objectId")
        if as_numpy(nulls.result(), "n", "i")[0] > 0:
            listing = pool.submit(d.fetch, f"SELECT objectId, COUNT(*) AS n FROM {t} "
                                           f"{d.no_index} WHERE candid IS NOT NULL "
                                           "GROUP BY objectId ORDER BY objectId")
        table = listing.result()
    return np.asarray(table.column(0).to_pylist(), dtype=object), as_numpy(table, "n", "i")


def as_numpy(table, name: str, kind: str, order: np.ndarray | None = None,
             inv: np.ndarray | None = None) -> np.ndarray:
    """One column as float64 or int64 (cast from any type Arrow can cast; TEXT columns too),
    its rows taken in ``order`` when given (``inv``: its inverse, when known)."""
    col = arrow_column(table, name, kind)
    if kind == "f":
        return arrow_np.floats(col, order, inv)  # nulls -> NaN
    v, null = arrow_np.ints(col, order, inv)
    if null:
        raise ValueError(f"{name} out of range (|{name}| >= 2**51) or NULL")  # as the row path
    return v


def arrow_column(table, name: str, kind: str):
    """One column as float64 ("f") or int64 Arrow data (an array, or a table's column in its
    chunks), cast from any type Arrow can cast (TEXT columns too); ArrowFallback when it
    cannot be."""
    import pyarrow as pa

    col = table.column(name)
    want = pa.float64() if kind == "f" else pa.int64()
    if col.type != want:
        try:
            col = arrow_np.cast(col, want)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise ArrowFallback(f"{name}: {e}") from None
    return col


def late_floats(table, name: str, inf_is_null: bool, perm: np.ndarray) -> Deferred:
    """A LATE_COLUMNS column of scanned rows, left in storage order: the rows ``perm`` puts
    in object order, taken when the features ask for them."""
    take, finite = arrow_np.float_taker(arrow_column(table, name, "f"), inf_is_null)
    return Deferred(take, perm, finite)


def stable_argsort(key: np.ndarray, n: int) -> np.ndarray:
    """``np.argsort(key, kind="stable")`` for integer keys in [0, n).  numpy radix-sorts
    16-bit keys only (others go to timsort: 47 ms for 638k rows against 12 ms here), so a
    key below 2**32 is sorted by its low then its high 16 bits (LSD radix, two passes)."""
    if n <= 1 << 16:
        return np.argsort(key.astype(np.uint16), kind="stable")
    if n <= 1 << 32:
        p = np.argsort((key & 0xFFFF).astype(np.uint16), kind="stable")
        return p[np.argsort((key[p] >> 16).astype(np.uint16), kind="stable")]
    return np.argsort(key, kind="stable")


def _fold_collides(ids: list[str]) -> bool:
    """Whether two ids are equal lowercased and without trailing whitespace (as a case- and
    pad-insensitive collation compares them).  One lower() of all ids joined (3x faster than
    one per id) when none holds a newline or ends in whitespace, else id by id."""
    joined = "\n".join(ids)
    if joined.count("\n") == len(ids) - 1 and not _TRAILING_SPACE.search(joined):
        return len(set(joined.lower().split("\n"))) != len(ids)
    return len({s.lower().rstrip() for s in ids}) != len(ids)


def _scan_order(names, codes: np.ndarray, jd: np.ndarray, candid: np.ndarray,
                byte_ids: bool = False):
    """Scanned rows grouped by objectId (byte order), each object's rows by (jd, candid):
    (ids, counts, row permutation, whether the rows are now in (jd, candid) order).
    ``names`` is the Arrow dictionary of the block's objectIds, ``codes`` each row's index;
    ``byte_ids``: the server compares ids by their bytes (no collision check needed)."""
    import pyarrow as pa

    if not (pa.types.is_string(names.type) or pa.types.is_large_string(names.type)):
        raise ArrowFallback(f"objectId of type {names.type}")
    listed = names.to_pylist()
    n = len(listed)
    if not byte_ids and _fold_collides(listed):  # 35-45 ms for 128,000 ids
        raise ArrowFallback("objectIds equal under a case/space-insensitive collation")
    order = arrow_np.values(arrow_np.sort_indices(names), np.uint64).astype(np.int64)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    key = rank[codes]
    perm = stable_argsort(key, n)  # rows keep their storage order within an object
    dj = jd[1:] - jd[:-1]
    if not np.all((dj > 0) | ((dj == 0) & (candid[1:] >= candid[:-1]))):
        # Not the whole table in (jd, candid) order, which would put each object's rows in
        # it (one sequential pass): check object by object, in the permutation's order.
        k, j, c = key[perm], jd[perm], candid[perm]
        same = k[1:] == k[:-1]
        back = same & ((j[1:] < j[:-1]) | ((j[1:] == j[:-1]) & (c[1:] < c[:-1])))
        if back.any():  # storage order was not arrival order: sort by (object, jd, candid)
            perm = np.lexsort((candid, jd, key))
    ok = not np.isnan(jd).any()  # NaN jd: the feature code orders them, as for any source
    ids = np.asarray(listed, dtype=object)[order]
    return ids, np.bincount(key, minlength=n).astype(np.int64), perm, ok


def _positive(table, perm: np.ndarray | None, inv: np.ndarray | None) -> np.ndarray:
    """The server's isdiffpos test (0 / 1, never NULL: POSITIVE_SQL) as bools."""
    return as_numpy(table, "positive", "i", perm, inv).astype(bool)


def _ssnames(values: list) -> np.ndarray:
    return clean_ssnamenr(values)


def _late_strings(col, perm: np.ndarray) -> Deferred:
    """ssnamenr of scanned rows (the features read the latest row's), taken when asked."""
    return Deferred(arrow_np.string_taker(col, _ssnames, None), perm)


def to_detections(table, scan: bool, inf_is_null: bool, byte_ids: bool = False) -> Detections:
    """A block's Arrow rows (a ``pyarrow.Table`` or its :class:`Columns`: each column is read
    once) -> Detections grouped by object.

    Ordered rows keep the server's object order (its collation); scanned rows are grouped by
    objectId in byte order, each object's rows sorted by (jd, candid) in numpy (a stable sort
    by object alone when the table is in arrival order, which it checks).
    """
    names, codes, null = arrow_np.encoded(table.column("objectId"))
    if null is not None:
        raise ArrowFallback("NULL objectId")
    jd, candid = as_numpy(table, "jd", "f"), as_numpy(table, "candid", "i")
    if scan:
        ids, counts, perm, in_order = _scan_order(names, codes, jd, candid, byte_ids)
    else:  # first appearance = the server's order; rows already grouped and sorted
        if np.any(np.diff(codes) < 0):  # codes follow first appearance: grouped = sorted
            raise ArrowFallback("ordered rows not grouped by object")
        ids = np.asarray(names.to_pylist(), dtype=object)
        counts = np.bincount(codes, minlength=len(ids)).astype(np.int64)
        perm, in_order = None, True
    # A column in chunks is scattered through the inverse permutation (arrow_np._joined).
    inv = None if perm is None else arrow_np.inverse(perm)

    def floats(c: str) -> np.ndarray:
        v = ((jd if perm is None else jd[perm]) if c == "jd"
             else as_numpy(table, c, "f", perm, inv))
        if inf_is_null and (v == -np.inf).any():  # one pass (np.isneginf makes three)
            v[v == -np.inf] = np.nan  # v is a new array (arrow_np copies or gathers)
        return v

    # Scanned rows: the columns the features read at one row per object are not gathered.
    late = perm is not None
    jobs: dict[str, Callable[[], np.ndarray | Deferred]] = {
        c: partial(late_floats, table, c, inf_is_null, perm) if late and c in LATE_COLUMNS
        else partial(floats, c) for c in FLOAT_COLUMNS}
    jobs.update({c: partial(as_numpy, table, c, "i", perm, inv) for c in ("fid", "nid")})
    jobs["positive"] = partial(_positive, table, perm, inv)
    jobs["ssnamenr"] = (partial(_late_strings, table.column("ssnamenr"), perm) if late else
                        partial(arrow_np.map_strings, table.column("ssnamenr"), _ssnames, None))
    # on two threads for a big block (base.THREADED_ROWS)
    cols = dict(zip(jobs, run_jobs(list(jobs.values()), two_threads(len(jd))),
                    strict=True))
    if not in_order:
        candid = candid if perm is None else candid[perm]
    ss = cols.pop("ssnamenr")
    return Detections(ids, counts, cols, ss, None if in_order else candid)

