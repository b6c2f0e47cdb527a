"""Load shards into SQLite: BEGIN IMMEDIATE (one writer at a time), rows and ledger row in
one transaction.  Simple shards go to the ADBC loader process (``sqlite_child``) when pyarrow
and adbc-driver-sqlite are installed, else through pyarrow's parser in this process
(``sqlite_arrow``); then the column-wise fast path, then the row path: each later one accepts
or refuses what the earlier one left to it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from lasair_parallel.csv_to_database import sqlite_arrow, sqlite_child, sqlite_proc
from lasair_parallel.csv_to_database.errors import ShardError, UsageError
from lasair_parallel.csv_to_database.ledger import Ledger
from lasair_parallel.csv_to_database.schema import sqlite_columns, sqlite_statements
from lasair_parallel.csv_to_database.shard import (
    Column,
    NotSimple,
    Shard,
    ShardReader,
    read_header,
    simple_chunks,
    sqlite_rows,
)
from lasair_parallel.csv_to_database.targets import Target, connect_sqlite

# The first shard at least this big starts the ADBC loader process; later shards of any size
# then use it.  Measured with benchmarks/load_sqlite.py (2 cores): the process costs ~0.25 s
# to start (exec, pyarrow and ADBC imports) and saves ~13 ms per MB against the in-process
# Arrow path (8.81 s against 4.40 s for 332 MB), so a lone shard pays from ~19 MB and a load
# of 8 MiB shards from its second shard on; a small streamed task output is not worth it.
CHILD_MIN = 8 << 20


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
        self.use_child = sqlite_proc.available()
        self.child: sqlite_proc.ChildLoader | None = None

    def connect(self) -> None:
        try:
            self.conn = connect_sqlite(self.target)
            self.conn.execute("SELECT 1 FROM sqlite_master LIMIT 1")
        except sqlite3.Error as e:
            raise UsageError(f"cannot open {self.target.display()}: {e} "
                             "(check the path in --db)") from None

    def close(self) -> None:
        """Close the connection and end the loader process, if any."""
        self._close_conn()
        if self.child is not None:
            sqlite_proc.release(self.child)
            self.child = None

    def _close_conn(self) -> None:
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
        """Load one shard exactly once: returns ``"loaded"`` or ``"skipped"``; raises ShardError
        (or LoadError when the loader process died: nothing of the shard is half-written)."""
        progress = _Once(progress)
        arrow = self.arrow
        if shard.simple and self._load_child_wanted(shard):
            try:
                status = self._load_child(shard)
            except sqlite_proc.ChildUnavailable:
                self.use_child = False  # nothing written: load here, as without ADBC
                status = "unavailable"
            if status in ("loaded", "skipped"):
                progress(shard.size)
                return status
            arrow = arrow and status != "fallback"  # the same parse refused it
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
            if not (shard.simple and (arrow and self._load_arrow(cur, shard, progress)
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

    def _load_child_wanted(self, shard: Shard) -> bool:
        return self.use_child and (self.child is not None or shard.size >= CHILD_MIN)

    def _load_child(self, shard: Shard) -> str:
        """The shard through the ADBC loader process: ``"loaded"``, ``"skipped"`` or
        ``"fallback"`` (nothing written: another path decides)."""
        read_header(shard, self.table, self.columns)  # header problems: ShardError, as before
        if self.child is not None and not self.child.alive():
            sqlite_proc.release(self.child)  # died with earlier shards (reported): a new one
            self.child = None
        if self.child is None:
            self.child = sqlite_proc.acquire(self.target.path)
        self._close_conn()  # none open here on the file while the loader process writes
        return self.child.load(shard, self.table, self.mode, self.reload)

    def _load_arrow(self, cur, shard: Shard, progress: _Once) -> bool:
        """The in-process Arrow path (``sqlite_arrow``), when ADBC is not installed; False if
        the shard needs another path.  Runs in a savepoint, like the fast path."""
        try:
            table = sqlite_arrow.parse(shard, self.table, self.columns)
        except ImportError:  # found but broken (``available`` only looks it up)
            self.arrow = False
            return False
        if table is None:
            return False
        cols = sqlite_arrow.columns(table, shard.columns)
        sql = self._insert_sql(shard, ["?"] * len(shard.columns))
        if not _in_savepoint(cur, "arrow", (sqlite3.IntegrityError,),  # --insert duplicate
                             lambda: cur.executemany(sql, zip(*cols))):
            return False
        shard.rows = table.num_rows
        progress(shard.size)
        return True

    def _insert_sql(self, shard: Shard, marks: list[str]) -> str:
        return sqlite_child.insert_sql(self.mode, self.table, shard.columns, marks)

    def _load_simple(self, cur, shard: Shard, progress: _Once) -> bool:
        """The fast path (see :func:`simple_chunks`); False if the shard needs the row path.

        Runs inside a savepoint: whatever it inserted is undone before the row path starts.
        """
        def insert() -> None:
            sql = None
            for columns in simple_chunks(shard, self.table, self.columns, progress):
                if sql is None:
                    # floats arrive parsed (None = NULL); int and text columns as the CSV
                    # strings: '' is NULL, INTEGER affinity stores digits as integers
                    sql = self._insert_sql(shard, ["?" if c.kind == "float" else "NULLIF(?, '')"
                                                   for c in shard.columns])
                cur.executemany(sql, zip(*columns))

        # a bad value, or a duplicate under --insert: the row path names the line
        if not _in_savepoint(cur, "simple", (NotSimple, sqlite3.IntegrityError), insert):
            shard.rows = 0
            return False
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


def _in_savepoint(cur, name: str, give_up: tuple[type[BaseException], ...],
                  insert: Callable[[], object]) -> bool:
    """Run ``insert()`` in savepoint ``name``: False (all of it undone) if it raised one of
    ``give_up``, so that a later path can start clean; other errors undo it and propagate."""
    cur.execute(f"SAVEPOINT {name}")
    done = False
    try:
        insert()
        done = True
    except give_up:
        pass
    finally:
        if not done:
            cur.execute(f"ROLLBACK TO {name}")
        cur.execute(f"RELEASE {name}")
    return done


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
