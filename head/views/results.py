"""Read-only access to a run's journal: per-task results with every attempt.

The one reader of the journal outside the run core: the Python API (``RunResult.tasks``),
``parallel logs``, ``parallel status``, ``parallel report`` and the web view all read through
:class:`JournalReader`, so the journal's SQL lives here, next to its schema's readers, instead
of in each caller.  Every connection is opened read-only: a reader never takes the writer's
locks and works on a live run.
"""

from __future__ import annotations

import json
import shlex
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

_ATTEMPT_COLS = ("attempt", "host", "slot", "start", "end", "exit_code", "signal", "outcome",
                 "reason", "out_tail", "err_tail", "out_path", "err_path", "maxrss_kb")


@dataclass(frozen=True)
class Attempt:
    """One try of one task on one host, as the journal recorded it."""

    number: int
    host: str
    slot: int
    start: float
    end: float | None
    exit_code: int | None
    signal: int | None
    outcome: str  # ok | failed | timeout | lost | killed | running
    reason: str | None
    out_tail: str
    err_tail: str
    out_path: str | None
    err_path: str | None
    maxrss_kb: int | None

    @property
    def succeeded(self) -> bool:
        return self.outcome == "ok"


@dataclass(frozen=True)
class TaskResult:
    """A task's final state and every attempt, oldest first."""

    id: str
    command: str
    state: str  # done | failed | pending (never ran: the run stopped) | running
    outputs: tuple[str, ...]
    attempts: tuple[Attempt, ...]

    @property
    def succeeded(self) -> bool:
        return self.state == "done"

    @property
    def failed(self) -> bool:
        return self.state == "failed"

    @property
    def last(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None


def open_readonly(run_dir: Path) -> sqlite3.Connection:
    """The run's journal, read-only (a reader never takes the writer's locks)."""
    return sqlite3.connect(f"file:{Path(run_dir) / 'journal.sqlite'}?mode=ro", uri=True)


def read_results(db: sqlite3.Connection, task_ids: Sequence[str] | None = None) -> dict:
    """``{task_id: TaskResult}`` in plan order, for ``task_ids`` (default: every task)."""
    if task_ids is None:
        rows = db.execute("SELECT id, command, state, outputs FROM tasks ORDER BY seq").fetchall()
    else:
        rows = []
        for chunk in _chunks(list(task_ids), 500):
            q = ",".join("?" * len(chunk))
            rows += db.execute(f"SELECT id, command, state, outputs FROM tasks WHERE id IN ({q})",
                               chunk).fetchall()
        order = {t: i for i, t in enumerate(task_ids)}
        rows.sort(key=lambda r: order.get(r[0], 0))
    attempts: dict[str, list] = {}
    ids = [r[0] for r in rows]
    for chunk in _chunks(ids, 500):
        q = ",".join("?" * len(chunk))
        for r in db.execute(f"SELECT task_id, {', '.join(_ATTEMPT_COLS)} FROM attempts "
                            f"WHERE task_id IN ({q}) ORDER BY task_id, attempt", chunk):
            attempts.setdefault(r[0], []).append(Attempt(
                number=r[1], host=r[2], slot=r[3], start=r[4], end=r[5], exit_code=r[6],
                signal=r[7], outcome=r[8], reason=r[9], out_tail=r[10] or "",
                err_tail=r[11] or "", out_path=r[12], err_path=r[13], maxrss_kb=r[14]))
    return {tid: TaskResult(id=tid, command=cmd, state=state,
                            outputs=tuple(json.loads(outputs or "[]")),
                            attempts=tuple(attempts.get(tid, ())))
            for tid, cmd, state, outputs in rows}


def _chunks(items: list, n: int) -> Iterable[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def short_command(command: str, width: int = 60) -> str:
    """A command on one line, cut to ``width`` characters: how a task is named to a person."""
    one = " ".join(command.split())
    return one if len(one) <= width else one[:width - 3] + "..."


class TaskNotFound(Exception):
    """``parallel logs RUN TASK`` named no task, or several (the message says which)."""


class JournalReader:
    """A run's journal opened read-only, with one method per question the views ask."""

    def __init__(self, run_dir: str | Path, db: sqlite3.Connection | None = None):
        """Open ``run_dir``'s journal read-only, or read through ``db`` (the run core's own
        connection, so the head asks the same questions without a second connection)."""
        self.run_dir = Path(run_dir)
        self._own = db is None
        self.db = open_readonly(self.run_dir) if db is None else db

    def __enter__(self) -> JournalReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own:
            self.db.close()

    def meta(self) -> dict:
        """The run's metadata: name, command line, started/finished, exit status, head pid."""
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def task_states(self) -> dict[str, int]:
        """``{state: number of tasks}``."""
        return dict(self.db.execute("SELECT state, COUNT(*) FROM tasks GROUP BY state"))

    def counts(self) -> dict[str, int]:
        """Attempts in all, and tasks that needed more than one."""
        n = self.db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
        retried = self.db.execute("SELECT COUNT(*) FROM tasks WHERE attempts > 1").fetchone()[0]
        return {"attempts": n, "retried_tasks": retried}

    def span(self) -> tuple[float | None, float | None]:
        """First attempt start and last attempt end (or start, for one still running)."""
        t0, t1 = self.db.execute(
            "SELECT MIN(start), MAX(COALESCE(end, start)) FROM attempts").fetchone()
        return t0, t1

    def hosts(self) -> list[dict]:
        """Each worker the journal knows, with attempts per outcome and the tasks that
        finished on it (``tasks_ok``, ``tasks_failed``: counted by the task's last attempt, so
        they add up to the run's done and failed counts)."""
        cols = ("host", "slots", "state", "hostname", "cores", "python", "version", "memfree",
                "load", "last_seen")
        info = {r[0]: dict(zip(cols, r)) for r in self.db.execute(
            f"SELECT {', '.join(cols)} FROM hosts ORDER BY host")}
        for host, outcome, n in self.db.execute(
                "SELECT host, outcome, COUNT(*) FROM attempts GROUP BY host, outcome"):
            info.setdefault(host, {"host": host}).setdefault("attempts", {})[outcome] = n
        for host, state, n in self.db.execute(
                "SELECT a.host, t.state, COUNT(*) FROM tasks t JOIN attempts a "
                "ON a.task_id = t.id AND a.attempt = t.attempts "
                "WHERE t.state IN ('done', 'failed') GROUP BY a.host, t.state"):
            key = "tasks_ok" if state == "done" else "tasks_failed"
            info.setdefault(host, {"host": host})[key] = n
        for h in info.values():
            h.setdefault("attempts", {})
            h.setdefault("tasks_ok", 0)
            h.setdefault("tasks_failed", 0)
        return list(info.values())

    def slots(self) -> dict[str, int]:
        """``{host: slots}`` as each host last reported."""
        return dict(self.db.execute("SELECT host, slots FROM hosts ORDER BY host"))

    def failed_attempts(self, limit: int = 20) -> list[dict]:
        """The latest failed or timed-out attempts, newest first, with the task's command."""
        keys = ("task", "attempt", "host", "exit_code", "signal", "outcome", "reason",
                "err_tail", "command", "out_path", "err_path")
        rows = self.db.execute(
            "SELECT a.task_id, a.attempt, a.host, a.exit_code, a.signal, a.outcome, a.reason, "
            "a.err_tail, t.command, a.out_path, a.err_path FROM attempts a "
            "JOIN tasks t ON t.id = a.task_id "
            "WHERE a.outcome IN ('failed', 'timeout') ORDER BY a.end DESC LIMIT ?", (limit,))
        return [dict(zip(keys, r), short=short_command(r[8])) for r in rows]

    def attempts(self, since: float | None = None) -> list[dict]:
        """Every attempt (or those running or ended after ``since``) in start order, with its
        task's command and weight: the rows of the report's and the web view's timelines."""
        keys = ("task", "attempt", "host", "slot", "queued", "start", "end", "outcome",
                "reason", "maxrss_kb", "weight", "command")
        where, args = ("WHERE a.end IS NULL OR a.end >= ?", (since,)) if since else ("", ())
        rows = self.db.execute(
            "SELECT a.task_id, a.attempt, a.host, a.slot, a.queued, a.start, a.end, a.outcome, "
            "a.reason, a.maxrss_kb, t.weight, t.command FROM attempts a "
            f"JOIN tasks t ON t.id = a.task_id {where} ORDER BY a.start", args)
        return [dict(zip(keys, r)) for r in rows]

    def ok_per_bucket(self, t0: float, width: float) -> dict[int, int]:
        """Successful attempts per time bucket ``(end - t0) // width``."""
        return dict(self.db.execute(
            "SELECT CAST((end - ?) / ? AS INTEGER) AS b, COUNT(*) FROM attempts "
            "WHERE outcome = 'ok' GROUP BY b", (t0, width)))

    def results(self, task_ids: Sequence[str] | None = None) -> dict:
        """``{task_id: TaskResult}`` (see :func:`read_results`)."""
        return read_results(self.db, task_ids)

    def find_task(self, ref: str) -> TaskResult:
        """The task ``ref`` names: its id (or an id prefix), its line number in the run's task
        list (its position in the plan when the list cannot be found), or a piece of its
        command.  Raises :class:`TaskNotFound` naming the candidates."""
        ids = [r[0] for r in self.db.execute("SELECT id FROM tasks WHERE id = ?", (ref,))]
        if not ids and ref.isdigit():
            ids = self._by_line(int(ref))
        if not ids:
            ids = [r[0] for r in self.db.execute(
                "SELECT id FROM tasks WHERE id LIKE ? ESCAPE '\\' ORDER BY seq",
                (_like_prefix(ref),))]
        if not ids:
            ids = [r[0] for r in self.db.execute(
                "SELECT id FROM tasks WHERE instr(command, ?) > 0 ORDER BY seq", (ref,))]
        if not ids:
            raise TaskNotFound(f"{ref!r}: no task of {self.run_dir} has that id, line number or "
                               "command text; `parallel status` lists the failed ones")
        if len(ids) > 1:
            found = self.results(ids[:4])
            names = "; ".join(f"{t} ({short_command(r.command, 40)})" for t, r in found.items())
            raise TaskNotFound(f"{ref!r} matches {len(ids)} tasks ({names}"
                               f"{'; ...' if len(ids) > 4 else ''}); give more of the command "
                               "or the task id")
        return self.results(ids)[ids[0]]

    def _by_line(self, n: int) -> list[str]:
        """Task ids on line ``n`` of the run's task list, else the ``n``-th task planned."""
        lines = task_list_lines(self.run_dir, self.meta().get("command") or "")
        if lines is not None:
            from lasair_parallel.tasks.model import command_ids

            ids = command_ids([c for _, _, c in lines])
            hit = [ids[i] for i, (first, last, _) in enumerate(lines) if first <= n <= last]
            known = {r[0] for r in self.db.execute("SELECT id FROM tasks")}
            return [t for t in hit if t in known]
        return [r[0] for r in self.db.execute("SELECT id FROM tasks WHERE seq = ?", (n,))]


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def task_list_lines(run_dir: Path, command_line: str) -> list[tuple[int, int, str]] | None:
    """``(first line, last line, command)`` of each command of the task list the run was
    started with (``--tasks FILE`` in its command line), or None when there is none or it
    cannot be found now.  Parsed by the same rules as the head's task-list reader."""
    try:
        argv = shlex.split(command_line)
    except ValueError:
        return None
    path = None
    for i, a in enumerate(argv):
        if a == "--tasks" and i + 1 < len(argv):
            path = argv[i + 1]
        elif a.startswith("--tasks="):
            path = a.split("=", 1)[1]
    if path is None:
        return None
    # The head's cwd is not recorded: try ours, then the directory holding runs/<name>.
    for base in (Path.cwd(), Path(run_dir).resolve().parent.parent):
        f = base / path
        if f.is_file():
            break
    else:
        return None
    out: list[tuple[int, int, str]] = []
    pending, first = "", 0
    for n, line in enumerate(f.read_text(errors="replace").split("\n"), 1):
        line = line.rstrip("\r")
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if not pending:
            first = n
        if line.endswith("\\"):
            pending += line[:-1] + "\n"
            continue
        out.append((first, n, (pending + line).strip()))
        pending = ""
    return out
