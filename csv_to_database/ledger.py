"""The ledger: one row per loaded shard, committed in the same transaction as its rows.

The primary key (table, file name) is what makes loading exactly-once under concurrency:
the first loader's INSERT holds the key until it commits; a second loader's INSERT waits
and then fails with a duplicate key, and it skips the shard. Under Galera (no cluster-wide
row locks) the loser fails certification at commit instead and retries, finding the row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from lasair_parallel.csv_to_database.errors import ShardError
from lasair_parallel.csv_to_database.shard import Shard

LEDGER = "csv_to_database_ledger"

DDL = (f"CREATE TABLE IF NOT EXISTS {LEDGER} ("
       " tbl VARCHAR(64) NOT NULL,"        # 64 = MySQL identifier limit
       " name VARCHAR(255) NOT NULL,"      # 255 = Linux file-name limit
       " size BIGINT NOT NULL,"
       " sha256 CHAR(64) NOT NULL,"
       " nrows BIGINT NOT NULL,"
       " loaded_at VARCHAR(32) NOT NULL,"  # ISO 8601 UTC: portable across both dialects
       " PRIMARY KEY (tbl, name))")


@dataclass
class Entry:
    """A ledger row."""

    size: int
    sha256: str
    nrows: int
    loaded_at: str


def now() -> str:
    """Current UTC time as ISO 8601 text."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Ledger:
    """Ledger operations for one dialect: ``"mysql"`` (%s params) or ``"sqlite"`` (? params)."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.p = "%s" if dialect == "mysql" else "?"

    def ddl(self) -> str:
        return DDL + (" ENGINE=InnoDB" if self.dialect == "mysql" else "")

    def lookup(self, cur, table: str, name: str, lock: bool = False) -> Entry | None:
        """The ledger row of shard ``name``, or None. ``lock`` = FOR UPDATE (MySQL)."""
        p = self.p
        sql = f"SELECT size, sha256, nrows, loaded_at FROM {LEDGER} WHERE tbl = {p} AND name = {p}"
        if lock and self.dialect == "mysql":
            sql += " FOR UPDATE"
        cur.execute(sql, (table, name))
        row = cur.fetchone()
        return Entry(*row) if row else None

    def decide(self, shard: Shard, entry: Entry | None, reload: bool) -> str:
        """``"load"``, ``"skip"`` (same content already in) or raise: changed without --reload."""
        if entry is None:
            return "load"
        if entry.sha256 == shard.sha256 and entry.size == shard.size:
            return "skip"
        if reload:
            return "reload"
        raise ShardError(shard.path, None,
                         f"changed since it was loaded at {entry.loaded_at} "
                         f"({entry.nrows} rows, sha256 {entry.sha256[:12]}...)",
                         "rerun with --reload to load the new version")

    def claim(self, cur, table: str, shard: Shard, reload: bool, integrity_error) -> str:
        """Inside the load's transaction: insert (or, for --reload, update) the shard's row.

        Returns ``"load"`` or ``"skip"``. ``integrity_error`` is the driver's duplicate-key
        exception class.
        """
        p = self.p
        try:
            cur.execute(f"INSERT INTO {LEDGER} (tbl, name, size, sha256, nrows, loaded_at)"
                        f" VALUES ({p}, {p}, {p}, {p}, {p}, {p})",
                        (table, shard.name, shard.size, shard.sha256, shard.rows, now()))
            return "load"
        except integrity_error:
            pass
        entry = self.lookup(cur, table, shard.name, lock=True)
        action = self.decide(shard, entry, reload)
        if action == "reload":
            self.finish(cur, table, shard)
            return "load"
        return action

    def finish(self, cur, table: str, shard: Shard) -> None:
        """Record the final size, digest, row count and time of the shard's row."""
        p = self.p
        cur.execute(f"UPDATE {LEDGER} SET size = {p}, sha256 = {p}, nrows = {p}, loaded_at = {p}"
                    f" WHERE tbl = {p} AND name = {p}",
                    (shard.size, shard.sha256, shard.rows, now(), table, shard.name))
