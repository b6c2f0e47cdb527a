"""How the SQL sources read with Arrow: which read fits a block (query plan, index sample,
InnoDB's primary key) and connectorx connections built from the sources' logins.

The MySQL URL connectorx needs carries the password: it is built here, in-process, never
printed, logged or passed in argv, and scrubbed from any error message.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

from lasair_parallel.apps.rebuild_objects.lazynp import np
from lasair_parallel.apps.rebuild_objects.sources.arrow_read import (
    EVERY_ID,
    SAMPLE,
    SEEK_OVER_SCAN,
    ArrowFallback,
    ArrowSql,
    as_numpy,
    choose,
    unclustered_share,
)
from lasair_parallel.apps.rebuild_objects.sources.sqlite_blocks import (
    candid_never_null,
    collates,
)

if TYPE_CHECKING:
    from lasair_parallel.apps.rebuild_objects.sources.sql import SqlSource

# The most of the file SQLite may map for ``has_null_candid``'s scan, capped by its build's
# SQLITE_MAX_MMAP_SIZE (2 GB by default; the rest is read as usual).  The mapping shares the
# kernel's page cache: it reserves address space, no memory.
MMAP_BYTES = 1 << 40


def connectorx_module():
    """The connectorx module, or None (not installed, or pyarrow missing: the row path)."""
    try:
        import connectorx
        import pyarrow  # noqa: F401  (connectorx returns pyarrow tables)
    except ImportError:
        return None
    return connectorx


def connectorx_installed() -> bool:
    """Whether connectorx and pyarrow can be imported, without importing them: a block the
    row path reads (a small one) never pays their import (~50 ms, ``python -X importtime``);
    a failed import later is an ArrowFallback like any other."""
    from importlib.util import find_spec

    return find_spec("connectorx") is not None and find_spec("pyarrow") is not None


def lazy_read_sql(url_of: Callable[[], str]) -> Callable[[str], object]:
    """``fetch(sql)``: connectorx's Arrow read of ``url_of()``, imported on the first call."""
    def fetch(sql: str):
        cx = connectorx_module()
        if cx is None:
            raise ArrowFallback("connectorx or pyarrow cannot be imported")
        return cx.read_sql(url_of(), sql, return_type="arrow")

    return fetch


def scan_parts() -> int:
    """How many parts a scan is cut into: connectorx reads each on its own thread, and 2 threads
    halved a scan on this 2-core machine (0.61 s -> 0.31 s for half of the 1.28M-row benchmark
    table, 17 columns); more parts than cores only add connections."""
    return max(1, min(2, os.cpu_count() or 1))


def rowid_split(connect: Callable, table: str) -> list[str]:
    """Conditions cutting a SQLite table into ``scan_parts()`` rowid ranges of equal span
    (rowids of a table filled by inserts are dense).  The last range is open, so rows
    inserted meanwhile are still read; [] for a WITHOUT ROWID table or a tiny one."""
    import sqlite3

    parts = scan_parts()
    try:
        conn = connect()
        try:
            # two subqueries: SQLite answers a lone min() or max() from the b-tree's end,
            # but scans the table for both in one SELECT (0.1 s for 1.28M rows)
            lo, hi = conn.execute(f"SELECT (SELECT min(rowid) FROM {table}), "
                                  f"(SELECT max(rowid) FROM {table})").fetchone()
        finally:
            conn.close()
    except sqlite3.OperationalError:  # WITHOUT ROWID: no rowid to cut by
        return []
    if lo is None or parts < 2 or hi - lo < parts:
        return []
    cuts = [lo + (hi - lo + 1) * i // parts for i in range(1, parts)]
    conds = [f"rowid < {cuts[0]}"]
    conds += [f"rowid >= {a} AND rowid < {b}" for a, b in zip(cuts, cuts[1:], strict=False)]
    return [*conds, f"rowid >= {cuts[-1]}"]


def sqlite_index_listing(connect: Callable, fetch: Callable[[str], object], table: str):
    """(objectIds, counts) from SQLite's objectId index alone, or None where it cannot answer.

    Counting only rows with a candid makes SQLite look each row up (that is why the listing
    scans the table: 0.16 s for the 1.28M-row benchmark table).  When no row lacks a candid
    (declared NOT NULL, or one scan of that column, ``has_null_candid``: 0.06 s, run at
    once on this thread) every row counts, and the GROUP BY reads the covering index (0.08 s through connectorx, on its
    own thread).  None, and the caller scans, when the plan uses no covering index, a COLLATE
    clause is declared (the index's order would not be byte order), or an objectId is NULL."""
    import sqlite3
    from concurrent.futures import ThreadPoolExecutor

    grouped = f"SELECT objectId, COUNT(*) AS n FROM {table} GROUP BY objectId ORDER BY objectId"
    try:
        conn = connect()
    except sqlite3.Error:
        return None
    try:  # the index's answer, or None for any failure
        plan = " ".join(str(r[-1]) for r in conn.execute(f"EXPLAIN QUERY PLAN {grouped}"))
        if "COVERING INDEX" not in plan.upper() or collates(conn, table):
            return None
        never_null = candid_never_null(conn, table)
        if never_null is None:
            return None
        with ThreadPoolExecutor(1) as pool:
            listing = pool.submit(fetch, grouped)
            nulls = not never_null and has_null_candid(connect, table)
            result = listing.result()  # waited for even when unused: never left running
    except Exception:  # noqa: BLE001 - sqlite3's or connectorx's: the scan answers instead
        return None
    finally:
        conn.close()
    if nulls:
        return None
    ids = np.asarray(result.column(0).to_pylist(), dtype=object)
    if len(ids) and ids[0] is None:  # NULL objectIds: as the scan lists them
        return None
    return ids, as_numpy(result, "n", "i")


def has_null_candid(connect: Callable, table: str) -> bool:
    """Whether a row of ``table`` lacks a candid: one scan, on a connection of its own."""
    conn = connect()
    try:
        # Mapped pages instead of a read() a page: 0.07 s against 0.08 s for the benchmark
        # table; count(*) scans faster than a LIMIT 1 that finds nothing (0.08 against 0.10 s).
        conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
        return conn.execute(f"SELECT count(*) FROM {table} WHERE candid IS NULL"
                            ).fetchone()[0] > 0
    finally:
        conn.close()


def sqlite_byte_ids(connect: Callable, table: str) -> bool:
    """Whether objectId compares by its bytes in SQLite (BINARY, the default: no COLLATE
    declared); False when that cannot be told."""
    import sqlite3

    try:
        conn = connect()
        try:
            return not collates(conn, table)
        finally:
            conn.close()
    except sqlite3.Error:
        return False


def sqlite_decide(src: SqlSource, first: str, last: str) -> str:
    """"scan" when no index serves the block (query plan); else from a sample of the index:
    rows stored by object -> "seek", scattered -> ``choose`` by the block's share."""
    import sqlite3

    cur = src.conn().cursor()
    t = src.table
    plan = " ".join(str(r[-1]) for r in cur.execute(
        f"EXPLAIN QUERY PLAN SELECT candid FROM {t} WHERE objectId BETWEEN ? AND ?",
        (first, last)))
    if "INDEX" not in plan.upper():
        return "scan"  # the ordered read would scan (and sort) anyway
    try:
        rowids = [r[0] for r in cur.execute(
            f"SELECT rowid FROM {t} WHERE objectId BETWEEN ? AND ? ORDER BY objectId "
            f"LIMIT {SAMPLE}", (first, last))]
        table_rows = cur.execute(f"SELECT max(rowid) FROM {t}").fetchone()[0] or 0
    except sqlite3.OperationalError:  # WITHOUT ROWID: stored in primary-key order
        return "seek"
    clustered = unclustered_share(rowids) < 0.5
    if clustered:
        return "seek"
    if (first, last) == EVERY_ID:  # the whole table: scanning it beats seeking every row
        return "scan"
    # Counted up to the first row that decides for a scan: a whole-table block's count read
    # the whole index (50-90 ms of the 1.28M-row benchmark table's one task), this reads at
    # most 1 / SEEK_OVER_SCAN of it.
    cap = int(table_rows // SEEK_OVER_SCAN) + 1
    block_rows = cur.execute(f"SELECT count(*) FROM (SELECT 1 FROM {t} WHERE objectId BETWEEN "
                             f"? AND ? LIMIT {cap})", (first, last)).fetchone()[0]
    return choose(clustered, block_rows, table_rows)


def mysql_decide(src: SqlSource, first: str, last: str) -> str:
    """InnoDB stores rows in primary-key order: a table whose key starts with objectId is
    clustered ("seek"); otherwise ``choose`` by whether the block (the optimizer's estimate from
    index dives) is more than 1 / SEEK_OVER_SCAN of the table (its row estimate)."""
    with src.conn().cursor() as cur:
        cur.execute("SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA"
                    " = DATABASE() AND TABLE_NAME = %s AND INDEX_NAME = 'PRIMARY' ORDER BY "
                    "SEQ_IN_INDEX LIMIT 1", (src.table,))
        row = cur.fetchone()
        if row and str(row[0]).lower() == "objectid":
            return "seek"
        cur.execute(f"EXPLAIN SELECT candid FROM {src.table} WHERE objectId BETWEEN %s AND %s",
                    (first, last))
        names = [d[0].lower() for d in cur.description]
        plan = cur.fetchone()
        if plan is None or plan[names.index("key")] is None:
            return "scan"  # no index serves the block: the ordered read would scan and sort
        block_rows = int(plan[names.index("rows")] or 0)
        cur.execute("SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
                    "DATABASE() AND TABLE_NAME = %s", (src.table,))
        table_rows = int((cur.fetchone() or (0,))[0] or 0)
    return choose(False, block_rows, table_rows)


def option_file_client(path: str) -> dict:
    """The [client] section of a MySQL option file (user, password, host, port), or {}."""
    cp = configparser.ConfigParser(allow_no_value=True, interpolation=None, strict=False)
    try:
        cp.read(path)
    except configparser.Error:
        return {}
    if not cp.has_section("client"):
        return {}
    return {k: (v or "").strip().strip("'\"") for k, v in cp.items("client")}


def mysql_arrow(kw: dict, table: str) -> ArrowSql | None:
    """connectorx over TCP with the pymysql connection's login.  The URL (which must carry the
    password) is built here, handed to connectorx in-process and never printed: errors are
    scrubbed of it.  The driver (Rust `mysql` crate) answers a server's LOCAL INFILE request
    with an error when no handler is set, and connectorx sets none."""
    if not connectorx_installed() or "unix_socket" in kw:
        return None
    conf = option_file_client(kw["read_default_file"]) if "read_default_file" in kw else {}
    password = kw.get("password", conf.get("password", ""))
    user = kw.get("user", conf.get("user", ""))
    host = kw.get("host", conf.get("host", "localhost"))
    port = int(kw.get("port", conf.get("port", 3306)))
    db = kw.get("database")
    if not db:
        return None
    url = (f"mysql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/"
           f"{quote(db, safe='')}?cxprotocol=text")
    secrets = [s for s in (password, quote(password, safe=""), url) if s]
    read = lazy_read_sql(lambda: url)

    def fetch(sql: str):
        try:
            return read(sql)
        except ArrowFallback:
            raise
        except Exception as e:
            msg = str(e)
            for s in secrets:
                msg = msg.replace(s, "***")
            raise ArrowFallback(f"connectorx: {type(e).__name__}: {msg}") from None

    return ArrowSql(fetch, table, "`", "USE INDEX ()", server_sorts=True)
