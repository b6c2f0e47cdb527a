"""Read-only access to a run's journal: per-task results with every attempt.

Shared by the Python API (``RunResult.tasks``), ``parallel logs`` and the status views, so the
journal's SQL lives next to its schema's readers instead of in each caller.
"""

from __future__ import annotations

import json
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
