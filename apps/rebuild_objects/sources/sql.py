"""SQLite and MySQL/MariaDB `candidates` tables: keyset listing, batched block reads.

Listing pages through ``GROUP BY objectId ORDER BY objectId`` with ``WHERE objectId > last``
(keyset pagination: stable under concurrent inserts, never OFFSET).  A block (a contiguous
objectId range of the listing) is read in one read-only transaction with three queries: the
per-object counts, the numeric columns ordered by (objectId, jd, candid) (an index on those
columns, as dbwrite creates, saves the sort), and the few ssnamenr values.  Selecting numbers
only lets numpy convert the rows in C; objectId strings are not fetched per row.  Rows are fetched
and converted in chunks straight into preallocated columns, so the block never exists as one big
list of Python tuples (most of the old peak memory).  Password for MySQL: environment MYSQL_PWD or
an option file, never the URL or argv.

When connectorx and pyarrow are installed, a block is read as Arrow columns instead
(``arrow_read``): a full table scan when the table is not clustered by object and the block is a
large part of it, else an ordered read; the row-by-row reads above are the fallback.  The spec's
``?reader=auto|scan|seek|rows`` forces one (default auto).
"""

from __future__ import annotations

import itertools
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlparse

from lasair_parallel.apps.rebuild_objects.lazynp import np
from lasair_parallel.apps.rebuild_objects.sources.arrow_read import (
    EVERY_ID,
    ArrowFallback,
    ArrowSql,
    list_all,
    read_block,
)
from lasair_parallel.apps.rebuild_objects.sources.base import (
    FLOAT_COLUMNS,
    POSITIVE_SQL,
    Detections,
    clean_ssnamenr,
    concat,
)
from lasair_parallel.apps.rebuild_objects.sources.mysql_blocks import walk_blocks as mysql_walk
from lasair_parallel.apps.rebuild_objects.sources.sql_arrow import (
    connectorx_installed,
    lazy_read_sql,
    mysql_arrow,
    mysql_decide,
    rowid_split,
    sqlite_byte_ids,
    sqlite_decide,
    sqlite_index_listing,
)
from lasair_parallel.apps.rebuild_objects.sources.sqlite_blocks import Block, walk_blocks

PAGE = 50_000  # objects per listing page: one round trip per ~1 MB of ids
FETCH_ROWS = 32_768  # rows converted at a time (~4 MB of tuples)
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Numeric select list: the float columns, then nid and fid packed with two flags computed by the
# server, 4 * fid + positive + 2 * has_ssnamenr (one small integer instead of three values: the
# fetch costs per value).  `dec` is a reserved word in MySQL: quoted with the dialect's
# identifier quote.
_NUM_INDEX = {c: i for i, c in enumerate(FLOAT_COLUMNS)}
_NUM_INDEX.update({"nid": len(FLOAT_COLUMNS), "fid_flags": len(FLOAT_COLUMNS) + 1})
# A NULL isdiffpos is "not positive" (COALESCE), not a NULL flag word.
_FLAGS = (f"nid, 4 * fid + {POSITIVE_SQL} "
          "+ 2 * (ssnamenr IS NOT NULL AND ssnamenr NOT IN ('', 'null'))")
_SAFE_INT = 2.0 ** 53  # integers up to this travel exactly through a float64 array
READERS = ("auto", "scan", "seek", "rows")
_PATH_OK = re.compile(r"^[A-Za-z0-9_./+-]+$")  # paths connectorx's sqlite:// URL takes as they are


def numeric_select(quote_char: str, missing: str | None) -> str:
    """The numeric select list.  With ``missing`` (a SQL literal for -inf), NULL floats come back
    as -inf instead of None, so a chunk converts with np.fromiter (no None: 2-3x faster than
    np.array over tuples); -inf is turned into NaN again, i.e. a stored -inf reads as NULL,
    which is what the features make of any non-finite value anyway."""
    cols = []
    for c in FLOAT_COLUMNS:
        name = f"{quote_char}{c}{quote_char}" if c == "dec" else c
        cols.append(f"COALESCE({name}, {missing})" if missing else name)
    return ", ".join(cols) + ", " + _FLAGS


class SqlSource:
    """A DB-API connection factory plus the table name and the driver's placeholder."""

    ranges = True

    def __init__(self, connect: Callable, table: str, mark: str, begin: str, name: str,
                 quote_char: str = '"', missing: str | None = None,
                 arrow: ArrowSql | None = None, reader: str = "auto",
                 decide: Callable[[SqlSource, str, str], str] | None = None,
                 walk: Callable[[Callable[[int], float]], list[Block] | None] | None = None):
        if not IDENT.match(table):
            raise ValueError(f"bad table name {table!r}")
        if reader not in READERS:
            raise ValueError(f"reader={reader!r}: use one of {', '.join(READERS)}")
        self._connect, self.table, self.mark, self.begin, self.name = (
            connect, table, mark, begin, name)
        self.numeric = numeric_select(quote_char, missing)
        self.missing = missing
        self._conn = None
        self.arrow, self.reader, self.decide, self.walk = arrow, reader, decide, walk
        self.scans_blocks = False  # set by list_objects: blocks are read by whole-table scans
        self._modes: dict[tuple[str, str], str] = {}  # read_mode's answers
        self.last_read = ""  # how the last block was read: "scan", "seek" or "rows" (reports)

    def conn(self):
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def list_objects(self) -> tuple[np.ndarray, np.ndarray]:
        """Objects and counts: one Arrow scan when the table is unclustered (its index does
        not hold candid, so a GROUP BY over it seeks every row), else keyset pages."""
        try:
            if self.read_mode(*EVERY_ID) == "scan":  # "rows" without connectorx
                listing = list_all(self.arrow)
                self.scans_blocks = True  # the planner sizes blocks by it
                return listing
        except ArrowFallback as e:
            print(f"rebuild_objects: Arrow listing not possible ({e}); paging",
                  file=sys.stderr)
        return self.list_rows()

    def scanned_blocks(self, max_rows_of: Callable[[int], float]) -> list[Block] | None:
        """Blocks of about ``max_rows_of(total rows)`` rows, heaviest first, cut from the
        objectId index without listing the objects (``sqlite_blocks``, ``mysql_blocks``),
        when every block is read by a scan of the whole table (the planner's one block per
        slot); None when that does not hold or the index cannot tell (the planner lists the
        objects)."""
        # read_mode keeps its answer: the listing, when this cannot cut, does not ask again
        if self.walk is None or self.read_mode(*EVERY_ID) != "scan":
            return None
        blocks = self.walk(max_rows_of)
        if blocks is not None:
            self.scans_blocks = True
        return blocks

    def list_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Keyset pages of GROUP BY objectId."""
        t, m = self.table, self.mark
        ids: list = []
        counts: list = []
        cur = self.conn().cursor()
        last = None
        while True:
            where = "candid IS NOT NULL" + ("" if last is None else f" AND objectId > {m}")
            cur.execute(f"SELECT objectId, COUNT(*) FROM {t} WHERE {where} "
                        f"GROUP BY objectId ORDER BY objectId LIMIT {PAGE}",
                        () if last is None else (last,))
            page = cur.fetchall()
            if not page:
                break
            ids.extend(r[0] for r in page)
            counts.extend(r[1] for r in page)
            last = page[-1][0]
            if len(page) < PAGE:
                break
        cur.close()
        return np.array(ids, dtype=object), np.array(counts, dtype=np.int64)

    def read_mode(self, first: str, last: str) -> str:
        """How ``read_range`` reads the block: "scan", "seek" or "rows" (``reader``, or for
        "auto" ``decide``'s answer, asked once per block: the splitter asks first)."""
        if self.arrow is None or self.reader == "rows":
            return "rows"
        if self.reader != "auto":
            return self.reader
        if (first, last) not in self._modes:
            self._modes[(first, last)] = self.decide(self, first, last) if self.decide else "seek"
        return self._modes[(first, last)]

    def read_range(self, first: str, last: str) -> Detections:
        """The block's detections: Arrow (scan or ordered) when possible, else row by row."""
        if self.arrow is not None and self.reader != "rows":
            try:
                mode = self.read_mode(first, last)
                if mode != "rows":
                    det = read_block(self.arrow, first, last, mode == "scan")
                    self.last_read = mode
                    return det
            except ArrowFallback as e:
                print(f"rebuild_objects: Arrow read not possible ({e}); reading rows",
                      file=sys.stderr)
        self.last_read = "rows"
        return self.read_rows(first, last)

    def read_rows(self, first: str, last: str) -> Detections:
        """The row path: three queries in one snapshot, rows converted chunk by chunk."""
        m = self.mark
        where = f"objectId BETWEEN {m} AND {m} AND candid IS NOT NULL"
        conn = self.conn()
        cur = conn.cursor()
        cur.execute(self.begin)  # one snapshot for the three queries
        try:
            cur.execute(f"SELECT objectId, COUNT(*) FROM {self.table} WHERE {where} "
                        "GROUP BY objectId ORDER BY objectId", (first, last))
            listing = cur.fetchall()
            cur.execute(f"SELECT {self.numeric} FROM {self.table} WHERE {where} "
                        "ORDER BY objectId, jd, candid", (first, last))
            a = _fetch_numeric(cur, sum(r[1] for r in listing))
            cur.execute(f"SELECT ssnamenr FROM {self.table} WHERE {where} AND ssnamenr IS NOT "
                        "NULL AND ssnamenr NOT IN ('', 'null') ORDER BY objectId, jd, candid",
                        (first, last))
            names = [r[0] for r in cur.fetchall()]
        finally:
            cur.execute("COMMIT")
            cur.close()
        return _to_detections(listing, a, names, self.missing is not None)

    def read_ids(self, ids: list[str]) -> Detections:
        # Blocks are contiguous in the server's listing order, so its first and last id bound
        # exactly these objects (compared with the server's collation, not Python's).
        if not ids:
            return concat([])
        return self.read_range(ids[0], ids[-1])


def _fetch_numeric(cur, n_rows: int) -> np.ndarray:
    """The executed numeric query's rows as a (columns, rows) float array, chunk by chunk."""
    width = len(_NUM_INDEX)
    out = np.empty((width, n_rows))
    i = 0
    while True:
        rows = cur.fetchmany(FETCH_ROWS)
        if not rows:
            break
        k = len(rows)
        if i + k > n_rows:
            raise RuntimeError("rows changed between queries of one snapshot")
        try:
            flat = np.fromiter(itertools.chain.from_iterable(rows), float, count=k * width)
            out[:, i:i + k] = flat.reshape(k, width).T
        except (TypeError, ValueError):  # a NULL the select list does not map (nid, fid)
            out[:, i:i + k] = np.array(rows, dtype=float).reshape(k, width).T  # None -> NaN
        i += k
    if i != n_rows:
        raise RuntimeError("rows changed between queries of one snapshot")
    return out


def _to_detections(listing: list, a: np.ndarray, names: list, inf_is_null: bool) -> Detections:
    """Server rows (as columns, ordered by objectId, jd, candid) -> Detections."""
    ids = np.array([r[0] for r in listing], dtype=object)
    counts = np.array([r[1] for r in listing], dtype=np.int64)
    cols = {}
    for c in FLOAT_COLUMNS:
        v = a[_NUM_INDEX[c]]
        if inf_is_null:
            v[v == -np.inf] = np.nan
        cols[c] = v
    nid, fid_flags = a[_NUM_INDEX["nid"]], a[_NUM_INDEX["fid_flags"]]
    for c, v in (("nid", nid), ("fid", fid_flags)):
        if v.size and not np.abs(v).max() < _SAFE_INT:
            raise ValueError(f"{c} out of range (|{c}| >= 2**51) or NULL")
    cols["nid"] = nid.astype(np.int64)
    packed = fid_flags.astype(np.int64)
    cols["fid"] = packed >> 2  # floor division: exact for negative fid too
    cols["positive"] = (packed & 1) > 0
    has_ss = (packed & 2) > 0
    ss = np.full(a.shape[1], None, dtype=object)
    flagged = np.flatnonzero(has_ss)
    if flagged.size != len(names):
        raise RuntimeError("ssnamenr rows changed between queries of one snapshot")
    ss[flagged] = clean_ssnamenr(names)
    return Detections(ids, counts, cols, ss, None)


def sqlite_source(spec: str) -> SqlSource:
    """``sqlite:///abs/path.db`` or ``sqlite:relative.db`` (``?table=``, ``?reader=``)."""
    import sqlite3

    u = urlparse(spec)
    path = unquote(u.path if u.netloc == "" else u.netloc + u.path)
    if path.startswith("/"):
        path = "/" + path.lstrip("/")  # sqlite:////abs/path.db (four slashes) too
    q = {k: v[0] for k, v in parse_qs(u.query).items()}
    table = q.get("table", "candidates")
    if not Path(path).exists():
        raise FileNotFoundError(f"no SQLite database at {path}")
    resolved = str(Path(path).resolve())

    def connect():
        uri = f"file:{quote(resolved)}?mode=ro"  # read-only: never writes
        return sqlite3.connect(uri, uri=True, isolation_level=None)

    arrow = None
    if connectorx_installed() and _PATH_OK.match(resolved) and IDENT.match(table):
        # connectorx opens the file itself (it exists: checked above); its SELECTs never write
        fetch = lazy_read_sql(lambda: f"sqlite://{resolved}")
        arrow = ArrowSql(fetch, table, '"', "NOT INDEXED", inf_is_null=True,
                         split=lambda: rowid_split(connect, table),
                         index_listing=lambda: sqlite_index_listing(connect, fetch, table),
                         byte_ids=lambda: sqlite_byte_ids(connect, table))
    # SQLite reads the literal 1e999 as +inf: NULL floats come back as -inf (see numeric_select).
    return SqlSource(connect, table, "?", "BEGIN", spec, missing="-1e999", arrow=arrow,
                     reader=q.get("reader", "auto"), decide=sqlite_decide,
                     walk=lambda max_rows_of: walk_blocks(connect, table, max_rows_of))


def mysql_source(spec: str) -> SqlSource:
    """``mysql://user@host:port/db`` (``?table=``, ``?unix_socket=``, ``?option_file=``).

    The password comes from MYSQL_PWD or the option file (default ~/.my.cnf, [client]); a
    password in the URL is refused so it never reaches argv or the run journal.
    """
    from lasair_parallel.csv_to_database.targets import connect_untrusted, tls_asked

    u = urlparse(spec)
    if u.password:
        raise ValueError("put the MySQL password in MYSQL_PWD or ~/.my.cnf, not in the URL")
    q = {k: v[0] for k, v in parse_qs(u.query).items()}
    kw: dict = {"database": u.path.lstrip("/") or None, "charset": "utf8mb4"}
    if u.username:
        kw["user"] = unquote(u.username)
    if u.hostname:
        kw["host"] = u.hostname
    if u.port:
        kw["port"] = u.port
    if "unix_socket" in q:
        kw["unix_socket"] = q["unix_socket"]
    option_file = q.get("option_file") or os.path.expanduser("~/.my.cnf")
    if os.path.exists(option_file):
        kw["read_default_file"] = option_file
    if "MYSQL_PWD" in os.environ:
        kw["password"] = os.environ["MYSQL_PWD"]

    # LOAD DATA LOCAL stays off (pymysql's default, kept explicit): a rogue or compromised
    # server could otherwise ask this worker for any file it can read.
    kw["local_infile"] = False

    def connect():
        # csv_to_database's guarded connection: refuses any LOCAL INFILE request even if a
        # server sends one, and takes ssl-mode/ssl-ca/ssl-cert/ssl-key from ?... or the file.
        return connect_untrusted(q, kw.get("read_default_file"), **kw)

    table = q.get("table", "candidates")
    # connectorx opens its own connections and honours no TLS option: when the user asked for
    # TLS, every read goes through the guarded pymysql connection instead.
    use_arrow = IDENT.match(table) and not tls_asked(q, kw.get("read_default_file"))
    return SqlSource(connect, table, "%s",
                     "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY", spec, "`",
                     arrow=mysql_arrow(kw, table) if use_arrow else None,
                     reader=q.get("reader", "auto"), decide=mysql_decide,
                     walk=lambda max_rows_of: mysql_walk(connect, table, max_rows_of))
