"""SQLite and MySQL/MariaDB `candidates` tables: keyset listing, batched block reads.

Listing pages through ``GROUP BY objectId ORDER BY objectId`` with ``WHERE objectId > last``
(keyset pagination: stable under concurrent inserts, never OFFSET).  A block (a contiguous
objectId range of the listing) is read in one read-only transaction with three queries: the
per-object counts, the numeric columns ordered by (objectId, jd, candid), and the few
ssnamenr values.  Selecting numbers only lets numpy convert the rows in C; objectId strings
are not fetched per row.  Password for MySQL: environment MYSQL_PWD or an option file, never
the URL or argv.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlparse

import numpy as np

from apps.rebuild_objects.sources.base import FLOAT_COLUMNS, Detections, clean_ssnamenr, concat

PAGE = 50_000  # objects per listing page: one round trip per ~1 MB of ids
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Numeric select list: booleans and the "has a name" flag computed by the server.
# `dec` is a reserved word in MySQL: quoted with the dialect's identifier quote ({q}).
_NUMERIC = ("jd, fid, magpsf, sigmapsf, (isdiffpos IN ('t', '1')), ra, {q}dec{q}, nid, rb, drb, "
            "sgmag1, srmag1, sgscore1, distpsnr1, "
            "(ssnamenr IS NOT NULL AND ssnamenr NOT IN ('', 'null'))")
_NUM_INDEX = {"jd": 0, "fid": 1, "magpsf": 2, "sigmapsf": 3, "positive": 4, "ra": 5, "dec": 6,
              "nid": 7, "rb": 8, "drb": 9, "sgmag1": 10, "srmag1": 11, "sgscore1": 12,
              "distpsnr1": 13, "has_ss": 14}


class SqlSource:
    """A DB-API connection factory plus the table name and the driver's placeholder."""

    ranges = True

    def __init__(self, connect: Callable, table: str, mark: str, begin: str, name: str,
                 quote_char: str = '"'):
        if not IDENT.match(table):
            raise ValueError(f"bad table name {table!r}")
        self._connect, self.table, self.mark, self.begin, self.name = (
            connect, table, mark, begin, name)
        self.numeric = _NUMERIC.format(q=quote_char)
        self._conn = None

    def conn(self):
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def list_objects(self) -> tuple[np.ndarray, np.ndarray]:
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

    def read_range(self, first: str, last: str) -> Detections:
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
            rows = cur.fetchall()
            cur.execute(f"SELECT ssnamenr FROM {self.table} WHERE {where} AND ssnamenr IS NOT "
                        "NULL AND ssnamenr NOT IN ('', 'null') ORDER BY objectId, jd, candid",
                        (first, last))
            names = [r[0] for r in cur.fetchall()]
        finally:
            cur.execute("COMMIT")
            cur.close()
        return _to_detections(listing, rows, names)

    def read_ids(self, ids: list[str]) -> Detections:
        # Blocks are contiguous in the server's listing order, so its first and last id bound
        # exactly these objects (compared with the server's collation, not Python's).
        if not ids:
            return concat([])
        return self.read_range(ids[0], ids[-1])


def _to_detections(listing: list, rows: list, names: list) -> Detections:
    """Server rows -> Detections (rows already ordered by objectId, jd, candid)."""
    ids = np.array([r[0] for r in listing], dtype=object)
    counts = np.array([r[1] for r in listing], dtype=np.int64)
    a = np.array(rows, dtype=float).reshape(len(rows), len(_NUM_INDEX))  # NULL -> NaN
    cols = {c: np.ascontiguousarray(a[:, _NUM_INDEX[c]]) for c in FLOAT_COLUMNS}
    cols["fid"] = a[:, 1].astype(np.int64)
    cols["nid"] = a[:, 7].astype(np.int64)
    cols["positive"] = a[:, 4] > 0
    ss = np.full(len(rows), None, dtype=object)
    flagged = np.flatnonzero(a[:, 14] > 0)
    if flagged.size != len(names):
        raise RuntimeError("ssnamenr rows changed between queries of one snapshot")
    ss[flagged] = clean_ssnamenr(names)
    return Detections(ids, counts, cols, ss, None)


def sqlite_source(spec: str) -> SqlSource:
    """``sqlite:///abs/path.db`` or ``sqlite:relative.db`` (``?table=`` optional)."""
    import sqlite3

    u = urlparse(spec)
    path = unquote(u.path if u.netloc == "" else u.netloc + u.path)
    if path.startswith("/"):
        path = "/" + path.lstrip("/")  # sqlite:////abs/path.db (four slashes) too
    table = parse_qs(u.query).get("table", ["candidates"])[0]
    if not Path(path).exists():
        raise FileNotFoundError(f"no SQLite database at {path}")

    def connect():
        uri = f"file:{quote(str(Path(path).resolve()))}?mode=ro"  # read-only: never writes
        return sqlite3.connect(uri, uri=True, isolation_level=None)

    return SqlSource(connect, table, "?", "BEGIN", spec)


def mysql_source(spec: str) -> SqlSource:
    """``mysql://user@host:port/db`` (``?table=``, ``?unix_socket=``, ``?option_file=``).

    The password comes from MYSQL_PWD or the option file (default ~/.my.cnf, [client]); a
    password in the URL is refused so it never reaches argv or the run journal.
    """
    import pymysql

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

    def connect():
        return pymysql.connect(**kw)

    return SqlSource(connect, q.get("table", "candidates"), "%s",
                     "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY", spec, "`")
