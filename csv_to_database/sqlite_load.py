"""Load shards into SQLite: BEGIN IMMEDIATE (one writer at a time), rows and ledger row in
one transaction.  Simple shards go through pyarrow's parser (``sqlite_arrow``) when installed,
then the column-wise fast path, then the row path: each later one accepts or refuses what the
earlier one left to it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from lasair_parallel.csv_to_database import sqlite_arrow
from lasair_parallel.csv_to_database.errors import ShardError, UsageError
from lasair_parallel.csv_to_database.ledger import Ledger
from lasair_parallel.csv_to_database.schema import sqlite_columns, sqlite_statements
from lasair_parallel.csv_to_database.shard import (
    Column,
    NotSimple,
    Shard,
    ShardReader,
    simple_chunks,
    sqlite_rows,
)
from lasair_parallel.csv_to_database.targets import Target, connect_sqlite

VERBS = {"replace": "INSERT OR REPLACE", "ignore": "INSERT OR IGNORE", "insert": "INSERT"}


class SQLiteLoader:
    """One SQLite connection loading shards into ``table``."""

    def __init__(self, target: Target, table: str, mode: str, reload: bool) -> None:
        self.target = target
        self.table = table
        self.mode = mode
        self.reload = reload
        self.conn: sqlite3.Connection | None = None
        self.ledger = Ledger("sqlite")
        self.columns: dict[str, Column] = {}
        self.arrow = sqlite_arrow.available()

    def connect(self) -> None:
        try:
            self.conn = connect_sqlite(self.target)
            self.conn.execute("SELECT 1 FROM sqlite_master LIMIT 1")
        except sqlite3.Error as e:
            raise UsageError(f"cannot open {self.target.display()}: {e} "
                             "(check the path in --db)") from None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def prepare(self, create_sql: str | None) -> dict[str, Column]:
        """Ensure the ledger (and with ``create_sql`` the table) exist; return the table's columns."""
        if self.conn is None:
            self.connect()
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(self.ledger.ddl())
            cols = sqlite_columns(conn, self.table)
            if not cols and create_sql:
                try:
                    for statement in sqlite_statements(create_sql, self.table):
                        conn.execute(statement)
                except sqlite3.Error as e:
                    raise UsageError(f"--create failed: {e} (fix the schema)") from None
                cols = sqlite_columns(conn, self.table)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if not cols:
            raise UsageError(f"table {self.table} does not exist in {self.target.display()} "
                             "(add --create, with --schema FILE.sql if no app ships it)")
        self.columns = cols
        return cols

    def load(self, shard: Shard, progress: Callable[[int], None] | None = None) -> str:
        """Load one shard exactly once: returns ``"loaded"`` or ``"skipped"``; raises ShardError."""
        if self.conn is None:
            self.connect()
        conn = self.conn
        cur = conn.cursor()
        entry = self.ledger.lookup(cur, self.table, shard.name)  # cheap check, no lock
        if self.ledger.decide(shard, entry, self.reload) == "skip":
            shard.rows = entry.nrows
            return "skipped"
        conn.execute("BEGIN IMMEDIATE")  # the write lock: a concurrent loader waits here
        try:
            if self.ledger.claim(cur, self.table, shard, self.reload,
                                 sqlite3.IntegrityError) == "skip":
                conn.execute("ROLLBACK")
                entry = self.ledger.lookup(cur, self.table, shard.name)
                shard.rows = entry.nrows if entry else 0
                return "skipped"
            progress = _Once(progress)
            if not (shard.simple and (self._load_arrow(cur, shard, progress)
                                      or self._load_simple(cur, shard, progress))):
                progress.restart()
                self._load_rows(cur, shard, progress)
            self.ledger.finish(cur, self.table, shard)
            conn.execute("COMMIT")
            return "loaded"
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _load_arrow(self, cur, shard: Shard, progress: _Once) -> bool:
        """The Arrow path (``sqlite_arrow``); False if the shard needs another path.  Runs in a
        savepoint, like the fast path."""
        if not self.arrow:
            return False
        table = sqlite_arrow.parse(shard, self.table, self.columns)
        if table is None:
            return False
        cur.execute("SAVEPOINT arrow")
        try:
            cols = sqlite_arrow.columns(table, shard.columns)
            sql = self._insert_sql(shard, ["?"] * len(shard.columns))
            cur.executemany(sql, zip(*cols))
        except sqlite3.IntegrityError:  # a duplicate under --insert: the row path names it
            cur.execute("ROLLBACK TO arrow")
            cur.execute("RELEASE arrow")
            return False
        except BaseException:
            cur.execute("ROLLBACK TO arrow")
            cur.execute("RELEASE arrow")
            raise
        cur.execute("RELEASE arrow")
        shard.rows = table.num_rows
        progress(shard.size)
        return True

    def _insert_sql(self, shard: Shard, marks: list[str]) -> str:
        cols = ", ".join(f'"{c.name}"' for c in shard.columns)
        return f'{VERBS[self.mode]} INTO "{self.table}" ({cols}) VALUES ({", ".join(marks)})'

    def _load_simple(self, cur, shard: Shard, progress: _Once) -> bool:
        """The fast path (see :func:`simple_chunks`); False if the shard needs the row path.

        Runs inside a savepoint: whatever it inserted is undone before the row path starts.
        """
        cur.execute("SAVEPOINT simple")
        try:
            sql = None
            for columns in simple_chunks(shard, self.table, self.columns, progress):
                if sql is None:
                    # floats arrive parsed (None = NULL); int and text columns as the CSV
                    # strings: '' is NULL, INTEGER affinity stores digits as integers
                    sql = self._insert_sql(shard, ["?" if c.kind == "float" else "NULLIF(?, '')"
                                                   for c in shard.columns])
                cur.executemany(sql, zip(*columns))
        except (NotSimple, sqlite3.IntegrityError):
            # a bad value, or a duplicate under --insert: the row path names the line
            cur.execute("ROLLBACK TO simple")
            cur.execute("RELEASE simple")
            shard.rows = 0
            return False
        except BaseException:
            cur.execute("ROLLBACK TO simple")
            cur.execute("RELEASE simple")
            raise
        cur.execute("RELEASE simple")
        return True

    def _load_rows(self, cur, shard: Shard, progress) -> None:
        """The row path: Python's csv module and a converter per value (any shard)."""
        rows = sqlite_rows(ShardReader(shard, self.table, self.columns, progress))
        first = next(rows, None)  # parses the header, so shard.columns is known
        if first is None:
            return
        sql = self._insert_sql(shard, ["?"] * len(shard.columns))
        try:
            cur.execute(sql, first)
            cur.executemany(sql, rows)
        except sqlite3.IntegrityError as e:
            raise ShardError(shard.path, shard.line_of(len(shard.lines)),
                             f"refused by SQLite: {e}",
                             "--insert refuses duplicates; use --replace or --ignore"
                             if "UNIQUE" in str(e) else "fix the value") from None


class _Once:
    """A progress callback that forwards each byte once: when the fast path gives up, the
    row path reads the shard again from the start."""

    def __init__(self, progress: Callable[[int], None] | None) -> None:
        self.progress = progress
        self.total = 0  # bytes seen
        self.sent = 0  # bytes forwarded

    def __call__(self, nbytes: int) -> None:
        self.total += nbytes
        if self.progress and self.total > self.sent:
            self.progress(self.total - self.sent)
            self.sent = self.total

    def restart(self) -> None:
        self.total = 0
