"""The parent's side of SQLite's ADBC loader process (``sqlite_child`` runs in the process).

Why a process: adbc-driver-sqlite links its own copy of SQLite, and two copies of SQLite in one
process do not see each other's POSIX locks (https://www.sqlite.org/howtocorrupt.html, 2.2.2;
seen here as "disk I/O error" on COMMIT with three loader threads).  In its own process the
ADBC copy is one more client of the file, locked against every other process as usual.  This
process never imports ADBC, and a loader closes its own sqlite3 connection before it hands a
shard to the child.

One child per database file serves every loader thread of this process (shared, counted): it
parses the shards it is sent while it inserts earlier ones, one transaction per shard, so
with ``--parallel 2`` the inserts follow each other without waiting on SQLite's busy handler.
A child that dies fails the shards it had in flight with one line; its open transaction is
rolled back by SQLite, and the next shard starts a new child.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import Future

from lasair_parallel.csv_to_database.errors import LoadError, ShardError
from lasair_parallel.csv_to_database.shard import Shard

START_FAILED = 3  # the child's exit status when it could not import ADBC or open the file


class ChildUnavailable(LoadError):
    """The loader process could not start (ADBC broken, file not openable by it): nothing was
    written; the caller loads in this process instead."""


_shared: dict[str, ChildLoader] = {}  # database path -> its live child, shared by loaders
_shared_lock = threading.Lock()


def available() -> bool:
    """Whether pyarrow and adbc-driver-sqlite are installed (looked up, not imported: this
    process must not load the ADBC copy of SQLite)."""
    try:
        return all(importlib.util.find_spec(m) is not None
                   for m in ("pyarrow", "adbc_driver_sqlite"))
    except (ImportError, ValueError):  # a module blocked as None in sys.modules
        return False


def acquire(path: str) -> ChildLoader:
    """The live child for SQLite file ``path`` (started if there is none), counted once more."""
    with _shared_lock:
        child = _shared.get(path)
        if child is None or not child.alive():
            child = _shared[path] = ChildLoader(path)
        child.users += 1
        return child


def release(child: ChildLoader) -> None:
    """One user less; the last one ends the child (it finishes what it was sent first)."""
    with _shared_lock:
        child.users -= 1
        if child.users > 0:
            return
        if _shared.get(child.path) is child:
            del _shared[child.path]
    child.close()


class ChildLoader:
    """One loader process for the SQLite file ``path``: requests by id, replies by id."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.users = 0
        self.pending: dict[int, Future] = {}
        self.lock = threading.Lock()  # the request pipe, ``pending`` and ``next_id``
        self.next_id = 0
        self.death: str | None = None
        self.start_failed = False
        self.proc: subprocess.Popen | None = None
        started = threading.Event()
        # The reader thread starts the child: Linux's parent-death signal (the child asks for
        # SIGKILL) follows the thread that forked it, and this one lives as long as the child.
        self.reader = threading.Thread(target=self._read, args=(started,), daemon=True,
                                       name="sqlite-child-reader")
        self.reader.start()
        started.wait()
        if self.proc is None:  # no interpreter to run it: load in this process instead
            raise ChildUnavailable(self.death or "cannot start the SQLite loader process")

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    def alive(self) -> bool:
        """Whether the child can still take shards."""
        return self.death is None

    def load(self, shard: Shard, table: str, mode: str, reload: bool) -> str:
        """Load ``shard`` (header already checked: ``shard.columns``) in the child.

        Returns ``"loaded"``, ``"skipped"`` (``shard.rows`` set) or ``"fallback"`` (nothing
        written); raises ShardError (the ledger refuses) or LoadError (the child failed).
        """
        fut: Future = Future()
        with self.lock:
            if self.death:
                raise (ChildUnavailable if self.start_failed else LoadError)(self.death)
            rid = self.next_id = self.next_id + 1
            req = {"id": rid, "table": table, "mode": mode, "reload": reload,
                   "path": str(shard.path), "size": shard.size, "sha256": shard.sha256,
                   "stat": list(shard.stat),
                   "columns": [[c.name, c.kind, c.pk, c.notnull, c.auto] for c in shard.columns]}
            self.pending[rid] = fut
            try:
                self.proc.stdin.write(json.dumps(req).encode() + b"\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError):  # dying: the reader fails ``fut``
                pass
        try:
            reply = fut.result()
        except LoadError:
            if self.start_failed:
                raise ChildUnavailable(self.death) from None
            raise
        if reply["status"] == "error":
            if reply.get("shard"):
                raise ShardError(shard.path, reply.get("line"), reply["message"], reply.get("fix"))
            raise LoadError(f"SQLite refused it: {reply['message']}")
        shard.rows = reply.get("rows", 0)
        return reply["status"]

    def _read(self, started: threading.Event) -> None:
        # stderr to an unlinked file, read only if the child dies: a pipe nobody reads could
        # fill up and stop the child
        self.err = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lasair_parallel.csv_to_database.sqlite_child",
                 self.path, str(os.getpid())],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err)
        except OSError as e:
            self.death = f"cannot start the SQLite loader process: {e.strerror}"
            self.err.close()
            return
        finally:
            started.set()
        for line in self.proc.stdout:
            try:
                reply = json.loads(line)
                with self.lock:
                    fut = self.pending.pop(reply["id"])
            except (ValueError, KeyError, TypeError):
                continue  # not a reply (the child sends its own stdout to stderr)
            fut.set_result(reply)
        self.proc.stdout.close()
        death = self._death()
        with self.lock:
            self.death = death
            pending, self.pending = self.pending, {}
        for fut in pending.values():
            fut.set_exception(LoadError(death))

    def _death(self) -> str:
        """One line on how the child ended (its stdout is closed: reap it)."""
        rc = self.proc.wait()
        self.err.seek(0, os.SEEK_END)
        self.err.seek(max(self.err.tell() - 4096, 0))  # the last line is all we show
        err = self.err.read().decode(errors="replace").strip().splitlines()
        self.err.close()
        self.start_failed = rc == START_FAILED
        if rc == 0 and not err:
            return "the SQLite loader process has ended"
        how = f"was killed by {signal.Signals(-rc).name}" if rc < 0 else f"exited with {rc}"
        last = f": {err[-1][:200]}" if err else ""  # 200: keeps the message to one line
        return (f"the SQLite loader process (pid {self.proc.pid}) {how}{last}; whatever it had "
                "not committed was rolled back: rerun, the ledger loads each shard once")

    def close(self) -> None:
        """End the child: EOF on its stdin; it finishes the shards it was sent, then exits."""
        with self.lock:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        self.reader.join(timeout=60)  # the last user has no shard in flight: it only exits
        if self.reader.is_alive():  # stuck (a lock it cannot get?): stop it, by its pid
            self.proc.kill()
            self.reader.join()
