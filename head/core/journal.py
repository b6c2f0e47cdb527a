"""The run journal: every task and every attempt, in SQLite, plus a GNU parallel joblog.

One SQLite file per run directory (WAL mode).  Each state change is committed as it happens:
a head killed with SIGKILL loses nothing that was committed, and the next run of the same
command reads here which tasks are done.  ``synchronous=NORMAL`` in WAL mode makes a commit
cost tens of microseconds (no fsync per commit) while staying safe against a process crash;
only a power cut can lose the last commits, and then a task runs once more (outputs are
atomic, so the result is still exact).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from lasair_parallel.head.core.dynjournal import extend_schema
from lasair_parallel.tasks import Task
from lasair_parallel.tasks.errors import ParallelError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    command TEXT NOT NULL,
    weight REAL NOT NULL DEFAULT 1,
    outputs TEXT NOT NULL DEFAULT '[]',
    inputs TEXT NOT NULL DEFAULT '[]',
    stream TEXT,
    timeout REAL,
    env TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL DEFAULT 'pending',   -- pending | running | done | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    done_at REAL
);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES tasks(id),
    attempt INTEGER NOT NULL,
    host TEXT NOT NULL,
    slot INTEGER NOT NULL,
    queued REAL,
    start REAL NOT NULL,
    end REAL,
    exit_code INTEGER,
    signal INTEGER,
    -- running | ok | failed | timeout | lost (host went down) | killed (run interrupted)
    outcome TEXT NOT NULL DEFAULT 'running',
    reason TEXT,
    maxrss_kb INTEGER,
    out_size INTEGER,
    err_size INTEGER,
    out_tail TEXT,
    err_tail TEXT,
    out_path TEXT,
    err_path TEXT,
    UNIQUE (task_id, attempt)
);
CREATE INDEX IF NOT EXISTS attempts_task ON attempts(task_id);
CREATE TABLE IF NOT EXISTS host_events (
    t REAL NOT NULL, host TEXT NOT NULL, event TEXT NOT NULL, detail TEXT
);
CREATE TABLE IF NOT EXISTS hosts (
    host TEXT PRIMARY KEY, slots INTEGER, state TEXT, hostname TEXT, cores INTEGER,
    python TEXT, version TEXT, memfree INTEGER, load REAL, last_seen REAL
);
"""

# Test-only fault injection: the head exits (os._exit, like a SIGKILL) between the two writes
# of the named transaction, to prove they commit together or not at all.
FAULT_ENV = "PARALLEL_FAULT_EXIT_IN"



class JournalError(ParallelError):
    """The journal cannot be written (a full disk, say); the message names the file."""


def _writes(method):
    """A journal write: a failure to write (disk full, I/O error) is fatal for the run.

    The first failure goes to ``on_fatal`` (the scheduler stops the run: kills the remote
    tasks and ends), or is raised as :class:`JournalError` when nothing is listening; every
    later write is skipped, so no greenlet dies half-way through a handler with a traceback.
    What was committed stays committed: a rerun resumes from it once space is freed.
    """
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if self.broken:
            return None
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.OperationalError, OSError) as e:
            self.broken = (f"{self.path}: cannot write the journal ({e}); free space there, "
                           "then rerun the same command to resume")
            if self.on_fatal is None:
                raise JournalError(self.broken) from None
            self.on_fatal(self.broken)
            return None
    return wrapper


JOBLOG_HEADER = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"


class Journal:
    """The SQLite journal of one run directory."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "journal.sqlite"
        self.broken = ""  # why writing failed, once it has
        self.on_fatal: Callable[[str], None] | None = None
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=5000")
            self.db.executescript(SCHEMA)
            extend_schema(self.db)  # dependencies, spawns, backups (head.core.dynjournal)
        except sqlite3.DatabaseError as e:
            hint = ("free space there" if "full" in str(e) else
                    "move it away (it is not a journal this program wrote) or give another "
                    "--run-dir")
            raise JournalError(f"{self.path}: cannot use the journal ({e}); {hint}") from None
        self._seq: dict[str, int] = {}
        joblog = self.run_dir / "joblog.tsv"
        new = not joblog.exists() or joblog.stat().st_size == 0
        self.joblog = open(joblog, "a", buffering=1)  # noqa: SIM115 - lives as long as the run
        if new:
            self.joblog.write(JOBLOG_HEADER)

    def close(self) -> None:
        self.joblog.close()
        self.db.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction.  ``with db:`` opens none under ``isolation_level=None`` (each
        statement then commits on its own), so writes that belong together say BEGIN."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            if self.db.in_transaction:  # SQLite rolls back by itself on some errors (disk full)
                self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @staticmethod
    def _fault(point: str) -> None:
        if os.environ.get(FAULT_ENV) == point:
            os._exit(99)

    # -- run metadata
    @_writes
    def set_meta(self, **kv: object) -> None:
        with self._tx():
            self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                [(k, json.dumps(v)) for k, v in kv.items()])

    def meta(self) -> dict:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    # -- tasks
    @_writes
    def register(self, tasks: Iterable[Task]) -> None:
        """Record the run's tasks; tasks known from an earlier run keep their state."""
        rows = [(t.id, t.command, t.weight, json.dumps(list(t.outputs)), json.dumps(list(t.inputs)),
                 t.stream, t.timeout, json.dumps(dict(t.env))) for t in tasks]
        with self._tx():
            self.db.executemany(
                "INSERT INTO tasks (id, command, weight, outputs, inputs, stream, timeout, env) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "command=excluded.command, weight=excluded.weight, outputs=excluded.outputs, "
                "inputs=excluded.inputs, stream=excluded.stream, timeout=excluded.timeout, "
                "env=excluded.env", rows)
        self._seq = dict(self.db.execute("SELECT id, seq FROM tasks"))

    def done_ids(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT id FROM tasks WHERE state = 'done'")}

    def attempts_so_far(self, task_id: str) -> int:
        return self.db.execute("SELECT attempts FROM tasks WHERE id = ?", (task_id,)).fetchone()[0]

    @_writes
    def recover(self) -> int:
        """Mark attempts left 'running' by a head that died as lost; return how many."""
        now = time.time()
        with self._tx():
            n = self.db.execute(
                "UPDATE attempts SET outcome = 'lost', end = COALESCE(end, ?), "
                "reason = 'the head stopped while it ran' WHERE outcome = 'running'", (now,)
            ).rowcount
            self.db.execute("UPDATE tasks SET state = 'pending' WHERE state = 'running'")
        return n

    # -- attempts
    @_writes
    def start_attempt(self, task: Task, attempt: int, host: str, slot: int, queued: float,
                      out_path: str, err_path: str) -> None:
        with self._tx():
            self.db.execute(
                "INSERT INTO attempts (task_id, attempt, host, slot, queued, start, out_path, "
                "err_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (task.id, attempt, host, slot, queued, time.time(), out_path, err_path))
            self._fault("start_attempt")
            self.db.execute("UPDATE tasks SET state = 'running', attempts = ? WHERE id = ?",
                            (attempt, task.id))

    @_writes
    def started(self, task_id: str, attempt: int, t: float) -> None:
        """The agent's own start time (the moment the process was spawned)."""
        with self._tx():
            self.db.execute("UPDATE attempts SET start = ? WHERE task_id = ? AND attempt = ?",
                            (t, task_id, attempt))

    @_writes
    def end_attempt(self, task: Task, attempt: int, outcome: str, final_state: str | None,
                    ev: dict | None = None, reason: str | None = None,
                    on_tx: Callable[[sqlite3.Connection], None] | None = None) -> None:
        """Close an attempt; ``final_state`` is the task's new state ('done', 'failed',
        'pending' for a retry).  ``on_tx`` writes more in the same transaction (the spawns
        of a successful attempt: committed with its success or not at all)."""
        ev = ev or {}
        end = ev.get("t") or time.time()
        with self._tx():
            self.db.execute(
                "UPDATE attempts SET end = ?, exit_code = ?, signal = ?, outcome = ?, reason = ?, "
                "maxrss_kb = ?, out_size = ?, err_size = ?, out_tail = ?, err_tail = ? "
                "WHERE task_id = ? AND attempt = ?",
                (end, ev.get("rc"), ev.get("sig"), outcome, reason, ev.get("maxrss_kb"),
                 ev.get("out_size"), ev.get("err_size"), ev.get("out_tail"), ev.get("err_tail"),
                 task.id, attempt))
            self._fault("end_attempt")
            if final_state:
                self.db.execute("UPDATE tasks SET state = ?, done_at = ? WHERE id = ?",
                                (final_state, end if final_state == "done" else None, task.id))
            if on_tx is not None:
                on_tx(self.db)
        row = self.db.execute(
            "SELECT host, start, end, out_size, exit_code, signal FROM attempts "
            "WHERE task_id = ? AND attempt = ?", (task.id, attempt)).fetchone()
        host, start, end, out_size, rc, sig = row
        rc_field = rc if rc is not None else -1
        self.joblog.write(
            f"{self._seq.get(task.id, 0)}\t{host}\t{start:.3f}\t{max(0.0, end - start):10.3f}\t0\t"
            f"{out_size or 0}\t{rc_field}\t{sig or 0}\t{_one_line(task.command)}\n")

    # -- hosts
    @_writes
    def host_event(self, host: str, event: str, detail: str = "") -> None:
        with self._tx():
            self.db.execute("INSERT INTO host_events VALUES (?, ?, ?, ?)",
                            (time.time(), host, event, detail))

    @_writes
    def host_state(self, host: str, slots: int, state: str, hello: dict | None = None,
                   hb: dict | None = None) -> None:
        hello = hello or {}
        hb = hb or {}
        with self._tx():
            self.db.execute(
                "INSERT INTO hosts (host, slots, state, hostname, cores, python, version, memfree, "
                "load, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(host) DO UPDATE "
                "SET slots=excluded.slots, state=excluded.state, "
                "hostname=COALESCE(excluded.hostname, hostname), "
                "cores=COALESCE(excluded.cores, cores), python=COALESCE(excluded.python, python), "
                "version=COALESCE(excluded.version, version), "
                "memfree=COALESCE(excluded.memfree, memfree), load=COALESCE(excluded.load, load), "
                "last_seen=excluded.last_seen",
                (host, slots, state, hello.get("hostname"), hello.get("cores"),
                 hello.get("python"), hello.get("version"),
                 hb.get("memfree", hello.get("memfree")), hb.get("load", hello.get("load")),
                 time.time()))


def _one_line(command: str) -> str:
    """The command as GNU parallel's joblog writes it (``print_joblog``): each newline
    becomes a NUL byte (its ``--resume`` turns them back); tabs and everything else stay."""
    return command.replace("\n", "\0")
