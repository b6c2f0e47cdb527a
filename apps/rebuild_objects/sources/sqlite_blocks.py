"""A SQLite table cut into blocks by walking its objectId index, without listing every object.

A table not stored by object has every block read by a scan of the whole table, so the planner
gives it one block per slot (``app.plan``).  For that it needs where each block starts and ends
and how many rows it holds, not the listing of every object: listing the 1.28M-row benchmark
table took 0.19 s of its 2.1 s run (connectorx's and pyarrow's imports, the GROUP BY, 128,000
ids converted).  SQLite steps through a covering index at ~20 ns an entry (``count(*)`` of the
1.28M entries: 0.025 s), so a block's end is found by ``LIMIT 1 OFFSET n`` from its start and
its rows by ``count(*)``: about two walks of the index whatever the number of blocks (0.05-0.07 s
for that table, ``python benchmarks/rebuild_live.py``).  The walk itself (``walk_index``) is
plain SQL, MySQL's too (``mysql_blocks``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: a MySQL task never loads sqlite3
    import sqlite3


@dataclass(frozen=True)
class Block:
    """Objects first <= objectId <= last (the index's order) and their rows in the index."""

    first: str
    last: str
    rows: int


def walk_blocks(connect: Callable[[], sqlite3.Connection], table: str,
                max_rows_of: Callable[[int], float]) -> list[Block] | None:
    """The table's objects cut into blocks of about ``max_rows_of(total rows)`` rows,
    heaviest first (as ``tasks.weights.split_by_weight`` orders them), or None where the index
    cannot answer (the caller lists the objects then).

    A block ends with the object that holds its ceil(max_rows)-th row, so no object is split,
    every block but the last holds at least max_rows rows and fewer than max_rows plus that
    object's rows, and a table of total rows cut at total / k gives at most k blocks (no
    remainder block of a few objects).  None when the walk would not use a covering index,
    a COLLATE clause is declared (objectIds would not compare by their bytes, as the scan
    groups them) or the table has no candid column.

    The counts are the index's: a row without a candid (no detection: the task's scan skips
    it) weighs as much as a detection.  The listing counts detections only, but telling
    whether any row lacks a candid takes a scan of the whole table (candid is in no index):
    0.07-0.09 s of the 1.28M-row benchmark table's ~2.5 s run, on two threads, to make the
    weights of a malformed table exact.  Weights only balance and size the blocks; every
    block is read with ``candid IS NOT NULL``, so the shards are the same either way.
    """
    import sqlite3

    conn = connect()
    try:
        if (candid_never_null(conn, table) is None or collates(conn, table)
                or not _walks_index(conn, table)):
            return None
        blocks = walk_index(first_value(conn.execute), table, "?", "BEGIN", max_rows_of)
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return heaviest_first(blocks)


def first_value(execute: Callable) -> Callable[..., object]:
    """``one(sql, args)`` over a DB-API ``execute`` that returns its cursor: the first column
    of the first row, or None (no row: BEGIN, COMMIT)."""
    def one(sql: str, args: tuple = ()) -> object:
        row = execute(sql, args).fetchone()
        return None if row is None else row[0]

    return one


def heaviest_first(blocks: list[Block]) -> list[Block]:
    """As ``tasks.weights.split_by_weight`` orders blocks (stable: index order among equals)."""
    return sorted(blocks, key=lambda b: -b.rows)


def walk_index(one: Callable[..., object], table: str, mark: str, begin: str,
               max_rows_of: Callable[[int], float]) -> list[Block]:
    """The cut, in index order, in one read transaction (``begin``: one snapshot of a table
    that is being filled).  ``one(sql, args)``: the first column of the first row of a query
    whose parameters are written ``mark``; the dialect's walk is the same (SQLite, MySQL)."""
    t, m = table, mark
    one(begin)
    try:
        total = one(f"SELECT count(*) FROM {t} WHERE objectId IS NOT NULL")
        if not total:
            return []
        step = max(1, math.ceil(max_rows_of(int(total))))
        blocks = []
        left = int(total)  # rows from ``first`` on
        first = one(f"SELECT min(objectId) FROM {t}")
        while left > step:
            last = one(f"SELECT objectId FROM {t} WHERE objectId >= {m} ORDER BY objectId "
                       f"LIMIT 1 OFFSET {int(step - 1)}", (first,))
            rows = int(one(f"SELECT count(*) FROM {t} WHERE objectId BETWEEN {m} AND {m}",
                           (first, last)))
            blocks.append(Block(str(first), str(last), rows))
            left -= rows
            first = one(f"SELECT min(objectId) FROM {t} WHERE objectId > {m}", (last,))
        if left:  # the rest is one block: no walk needed to find its end or count it
            last = one(f"SELECT max(objectId) FROM {t}")
            blocks.append(Block(str(first), str(last), left))
        return blocks
    finally:
        one("COMMIT")


def collates(conn: sqlite3.Connection, table: str) -> bool:
    """Whether the table's or its indexes' DDL declares a COLLATE clause (then objectId may
    not compare by its bytes)."""
    return any("COLLATE" in str(r[0]).upper() for r in conn.execute(
        "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL", (table,)))


def candid_never_null(conn: sqlite3.Connection, table: str) -> bool | None:
    """Whether candid is declared never NULL (NOT NULL, or the INTEGER PRIMARY KEY that is
    the rowid); None when the table has no candid column."""
    # PRAGMA table_info: (cid, name, type, notnull, default, pk)
    info = {str(r[1]).lower(): r for r in conn.execute(f"PRAGMA table_info({table})")}
    cand = info.get("candid")
    if cand is None:
        return None
    return bool(cand[3]) or (cand[5] == 1 and str(cand[2]).upper() == "INTEGER"
                             and sum(1 for r in info.values() if r[5]) == 1)


def _walks_index(conn: sqlite3.Connection, table: str) -> bool:
    """Whether SQLite answers the walk's step from a covering index (else each step would
    scan and sort the table)."""
    plan = " ".join(str(r[-1]) for r in conn.execute(
        f"EXPLAIN QUERY PLAN SELECT objectId FROM {table} WHERE objectId >= ? "
        "ORDER BY objectId LIMIT 1 OFFSET ?", ("", 0)))
    return "COVERING INDEX" in plan.upper() and "TEMP B-TREE" not in plan.upper()
