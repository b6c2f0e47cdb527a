"""A MySQL/MariaDB table cut into blocks by walking its objectId index, without listing every
object: ``sqlite_blocks.walk_index``, the same walk, on the server's index and collation.

Listing the 1.28M-row benchmark table took 0.47 s of the head's plan in MariaDB (the GROUP BY
and a count of the rows without a candid, on two connections through connectorx, whose import
and pyarrow's came on top) of a ~2.8 s run.  The walk's count(*) over the (objectId, jd) index
takes 0.21 s, and a plan of one block needs nothing more; a further block costs a walk of
``LIMIT 1 OFFSET`` over its part of the index (0.09 s for half of it) and a count of its rows
(2026-12-03, pymysql on the benchmark's server).

The blocks are ranges in the server's collation, as the listing's are (it is sorted by the
server): each task reads ``objectId BETWEEN first AND last`` with the same comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from lasair_parallel.apps.rebuild_objects.sources.sqlite_blocks import (
    Block,
    first_value,
    heaviest_first,
    walk_index,
)

if TYPE_CHECKING:
    import pymysql

SNAPSHOT = "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"


def walk_blocks(connect: Callable[[], pymysql.connections.Connection], table: str,
                max_rows_of: Callable[[int], float]) -> list[Block] | None:
    """The table's objects cut into blocks of about ``max_rows_of(total rows)`` rows,
    heaviest first (see ``sqlite_blocks.walk_blocks``: a block's weight is its rows in the
    index), or None when the walk would not read an index alone (each step would sort the
    table) or the server refuses a query (the caller lists the objects then)."""
    import pymysql

    try:
        conn = connect()
    except pymysql.Error:
        return None
    try:
        with conn.cursor() as cur:
            def execute(sql: str, args: tuple = ()):
                cur.execute(sql, args or None)  # None: no %-interpolation of the text
                return cur

            if not _walks_index(execute, table):
                return None
            blocks = walk_index(first_value(execute), table, "%s", SNAPSHOT, max_rows_of)
    except pymysql.Error:
        return None
    finally:
        conn.close()
    return heaviest_first(blocks)


def _walks_index(execute: Callable, table: str) -> bool:
    """Whether the server answers the walk's step from an index alone, in its order."""
    cur = execute(f"EXPLAIN SELECT objectId FROM {table} WHERE objectId >= %s ORDER BY "
                  "objectId LIMIT 1 OFFSET 0", ("",))
    names = [d[0].lower() for d in cur.description]
    rows = cur.fetchall()
    if len(rows) != 1:
        return False
    plan = dict(zip(names, rows[0], strict=True))
    extra = str(plan.get("extra") or "").lower()
    return plan.get("key") is not None and "using index" in extra and "filesort" not in extra
