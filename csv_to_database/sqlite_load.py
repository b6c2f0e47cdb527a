"""Load shards into SQLite: BEGIN IMMEDIATE (one writer at a time), rows and ledger row in
one transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from csv_to_database.errors import ShardError, UsageError
from csv_to_database.ledger import Ledger
from csv_to_database.schema import sqlite_columns, sqlite_statements
from csv_to_database.shard import Column, Shard, ShardReader, sqlite_rows
from csv_to_database.targets import Target, connect_sqlite

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
            reader = ShardReader(shard, self.table, self.columns, progress)
            rows = sqlite_rows(reader)
            first = next(rows, None)  # parses the header, so shard.columns is known
            if first is not None:
                cols = ", ".join(f'"{c.name}"' for c in shard.columns)
                marks = ", ".join("?" * len(shard.columns))
                sql = f'{VERBS[self.mode]} INTO "{self.table}" ({cols}) VALUES ({marks})'
                try:
                    cur.execute(sql, first)
                    cur.executemany(sql, rows)
                except sqlite3.IntegrityError as e:
                    raise ShardError(shard.path, shard.line_of(len(shard.lines)),
                                     f"refused by SQLite: {e}",
                                     "--insert refuses duplicates; use --replace or --ignore"
                                     if "UNIQUE" in str(e) else "fix the value") from None
            self.ledger.finish(cur, self.table, shard)
            conn.execute("COMMIT")
            return "loaded"
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
