"""SQLite's ADBC loader process: binds pyarrow's columns into SQLite through ADBC.

Started and fed by ``sqlite_proc`` (read its docstring for why this is a process).  It serves
one SQLite file: for each shard it is sent, the main thread checks the ledger (a read on its
own connection) and queues the shard's pieces for parsing (``sqlite_arrow``, one after
another); the writer thread takes the shards in order and for each, in ONE transaction
(BEGIN IMMEDIATE), claims the ledger row, inserts the parsed pieces with ``executemany`` over
Arrow data and records the row count, then COMMIT.  Parsing runs ahead of inserting, so
while one shard goes in the next is parsed.

Protocol: one JSON request per line on stdin, one JSON reply per line on stdout (which
carries nothing else: fd 1 is pointed at stderr for any library that prints), matched by
``id``.  Replies: ``loaded``/``skipped`` (with ``rows``), ``fallback`` (Arrow does not decide
this shard or --insert met a duplicate: nothing was written, the parent's other paths load
it), ``error`` (one line; ``shard`` when the ledger refused it).  EOF on stdin: finish the
shards sent, exit.  If the parent dies, Linux kills this process (PR_SET_PDEATHSIG): a killed
loader leaves nothing committing behind it, and SQLite rolls back the open transaction.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lasair_parallel.csv_to_database.errors import ShardError
from lasair_parallel.csv_to_database.ledger import Ledger
from lasair_parallel.csv_to_database.shard import Column, Shard

BUSY_MS = 600_000  # wait for another loader's write lock as long as connect_sqlite does (10 min)
VERBS = {"replace": "INSERT OR REPLACE", "ignore": "INSERT OR IGNORE", "insert": "INSERT"}


def insert_sql(mode: str, table: str, cols: list[Column], marks: list[str] | None = None) -> str:
    """The INSERT of one row of ``cols`` for ``mode``; ``marks`` are the value expressions
    (one ``?`` per column unless given)."""
    names = ", ".join(f'"{c.name}"' for c in cols)
    values = ", ".join(marks if marks is not None else ["?"] * len(cols))
    return f'{VERBS[mode]} INTO "{table}" ({names}) VALUES ({values})'


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the thread that started it ends (the parent's
    reader thread, which lives as long as the parent needs this process)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the loop still ends on EOF from the parent


class _Cursor:
    """Just enough of a DB-API cursor over ADBC's low-level statements for the ledger and the
    inserts (the ``dbapi`` module would import pandas: +0.25 s per child start here)."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self.rows: list[tuple] = []

    def _run(self, sql: str, bind=None, stream=None, query: bool = False):
        import adbc_driver_manager
        import pyarrow as pa

        stmt = adbc_driver_manager.AdbcStatement(self.conn)
        try:
            stmt.set_sql_query(sql)
            if bind is not None or stream is not None:
                stmt.prepare()
                stmt.bind(bind) if bind is not None else stmt.bind_stream(stream)
            if not query:
                stmt.execute_update()
                return None
            handle, _ = stmt.execute_query()
            return pa.RecordBatchReader.from_stream(handle).read_all()
        finally:
            stmt.close()

    def execute(self, sql: str, params: tuple = ()) -> None:
        """Run one statement; a SELECT's rows are kept for :meth:`fetchone`."""
        import pyarrow as pa

        bind = (pa.record_batch([pa.array([v]) for v in params],
                                names=[str(k) for k in range(len(params))]) if params else None)
        if sql.lstrip()[:6].upper() == "SELECT":
            t = self._run(sql, bind, query=True)
            self.rows = list(zip(*(t.column(k).to_pylist() for k in range(t.num_columns))))
        else:
            self._run(sql, bind)

    def fetchone(self) -> tuple | None:
        """The next row of the last SELECT, or None."""
        return self.rows.pop(0) if self.rows else None

    def executemany(self, sql: str, table) -> None:
        """Run ``sql`` once per row of the Arrow ``table``, bound from its columns in C."""
        self._run(sql, stream=table)


class _Child:
    """Two ADBC connections on one file: the writer's (transactions) and one for the main
    thread's ledger checks; a parse thread; the queue of shards for the writer."""

    def __init__(self, path: str, out) -> None:
        import adbc_driver_manager
        import adbc_driver_sqlite
        import pyarrow as pa

        # One parse at a time, single-threaded: the other core inserts.  (pyarrow's own
        # threads here cost 0.34 CPU-s per benchmark shard against 0.22 s in one thread.)
        pa.set_cpu_count(1)
        self.errors = adbc_driver_manager
        self.db = adbc_driver_sqlite.connect(path)
        # autocommit (ADBC's default): the transactions are ours, BEGIN IMMEDIATE ... COMMIT
        self.cur, self.check = (_Cursor(adbc_driver_manager.AdbcConnection(self.db))
                                for _ in range(2))
        for c in (self.cur, self.check):
            c.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
        self.ledger = Ledger("sqlite")
        self.pool = ThreadPoolExecutor(1)
        self.jobs: queue.Queue = queue.Queue()
        self.out_lock = threading.Lock()
        self.out = out

    def reply(self, rid: int, reply: dict) -> None:
        """Send ``reply`` to request ``rid`` (from either thread)."""
        with self.out_lock:
            self.out.write(json.dumps(dict(reply, id=rid)).encode() + b"\n")
            self.out.flush()

    def serve(self) -> None:
        """Read requests until EOF; the writer thread answers those it is given."""
        writer = threading.Thread(target=self._write, name="writer")
        writer.start()
        for line in sys.stdin.buffer:
            req = json.loads(line)
            job = _guard(self.start, req)
            if isinstance(job, dict):
                self.reply(req["id"], job)
            else:
                self.jobs.put(job)
        self.jobs.put(None)
        writer.join()

    def start(self, req: dict):
        """A reply now (skipped, fallback, error), or the shard with its pieces queued for
        parsing, for the writer.  (A skipped shard may have had a piece parsed for nothing.)"""
        from lasair_parallel.csv_to_database import sqlite_arrow

        cols = [Column(*c) for c in req["columns"]]
        shard = Shard(Path(req["path"]), req["size"], req["sha256"], columns=cols,
                      stat=tuple(req["stat"]))
        data = sqlite_arrow.read_bytes(shard)
        parts = sqlite_arrow.pieces(data) if data is not None else []
        todo = []
        if parts:  # parsing starts before the ledger check, which may wait for the writer
            import pyarrow as pa

            buf = pa.py_buffer(data)
            todo = [self.pool.submit(sqlite_arrow.parse_piece, buf[a:b], cols) for a, b in parts]
        try:
            entry = self.ledger.lookup(self.check, req["table"], shard.name)  # cheap, no lock
            skip = self.ledger.decide(shard, entry, req["reload"]) == "skip"
        except BaseException:  # e.g. changed since loaded, without --reload
            _cancel(todo)
            raise
        if skip or not todo:
            _cancel(todo)  # not for the writer: stop parsing it
            return {"status": "skipped", "rows": entry.nrows} if skip else {"status": "fallback"}
        return req, shard, todo

    def _write(self) -> None:
        while (job := self.jobs.get()) is not None:
            req, shard, todo = job
            self.reply(req["id"], _guard(self.insert, req, shard, todo))
            _cancel(todo)  # after a fallback: the rest need not be parsed

    def insert(self, req: dict, shard: Shard, todo: list) -> dict:
        """The shard's transaction: ledger row, every piece, row count; or nothing."""
        if todo[0].result() is None:
            return {"status": "fallback"}
        table, cur = req["table"], self.cur
        sql = insert_sql(req["mode"], table, shard.columns)
        cur.execute("BEGIN IMMEDIATE")  # the write lock: another process's loader waits here
        try:
            if self.ledger.claim(cur, table, shard, req["reload"],
                                 self.errors.IntegrityError) == "skip":
                cur.execute("ROLLBACK")
                entry = self.ledger.lookup(cur, table, shard.name)
                return {"status": "skipped", "rows": entry.nrows if entry else 0}
            for f in todo:
                piece = f.result()
                if piece is None:
                    cur.execute("ROLLBACK")
                    return {"status": "fallback"}
                try:
                    cur.executemany(sql, piece)
                except self.errors.IntegrityError:  # a duplicate under --insert: the row
                    cur.execute("ROLLBACK")          # path names its line
                    return {"status": "fallback"}
                shard.rows += piece.num_rows
            self.ledger.finish(cur, table, shard)
            cur.execute("COMMIT")
        except BaseException:
            try:
                cur.execute("ROLLBACK")
            except self.errors.Error:
                pass  # no transaction left to roll back
            raise
        return {"status": "loaded", "rows": shard.rows}


def _cancel(todo: list) -> None:
    for f in todo:
        f.cancel()


def _guard(step, *args) -> dict | object:
    """``step(*args)``, or its failure as an error reply (one line)."""
    try:
        return step(*args)
    except ShardError as e:
        return {"status": "error", "shard": True, "line": e.line, "message": e.message,
                "fix": e.fix}
    except Exception as e:  # noqa: BLE001 - any failure is one line for the parent
        return {"status": "error", "message": " ".join(str(e).split()) or type(e).__name__}


def main(argv: list[str]) -> int:
    """Serve load requests for the SQLite file ``argv[0]`` until stdin closes; ``argv[1]`` is
    the parent's pid (if it is gone already, no death signal will come: stop)."""
    _die_with_parent()
    if os.getppid() != int(argv[1]):
        return 1
    out = os.fdopen(os.dup(1), "wb")  # the replies keep fd 1 to themselves:
    os.dup2(2, 1)  # whatever else is printed goes to stderr
    try:
        child = _Child(argv[0], out)
    except Exception as e:  # noqa: BLE001 - e.g. ADBC cannot open the file: one line
        print(f"cannot start: {' '.join(str(e).split()) or type(e).__name__}", file=sys.stderr)
        return 3  # sqlite_proc.START_FAILED: the parent loads in-process instead
    child.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
