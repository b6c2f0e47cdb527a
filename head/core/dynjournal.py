"""The journal's part for dynamic work: dependencies, skipped tasks, spawned tasks, backups.

Columns added to the journal's tables (``ALTER TABLE`` on an older journal, so a run started
by an earlier version resumes):

``tasks.after``           JSON list of ids the task runs after
``tasks.parent``          the task that spawned it (NULL: planned)
``tasks.parent_attempt``  which attempt of the parent spawned it (the one that succeeded)
``tasks.depth``           spawn depth: 0 planned, 1 spawned by a planned task, ...
``tasks.spec``            a spawned task's whole Task JSON, to run it again on resume
``tasks.skip_reason``     why a task was skipped (a task it runs after failed for good)
``attempts.backup``       1 for a backup copy started beside a straggling attempt
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable

from lasair_parallel.tasks import Task

COLUMNS = {
    "tasks": [("after", "TEXT NOT NULL DEFAULT '[]'"), ("parent", "TEXT"),
              ("parent_attempt", "INTEGER"), ("depth", "INTEGER NOT NULL DEFAULT 0"),
              ("spec", "TEXT"), ("skip_reason", "TEXT")],
    "attempts": [("backup", "INTEGER NOT NULL DEFAULT 0")],
}


def extend_schema(db: sqlite3.Connection) -> None:
    """Add this module's columns where missing (idempotent)."""
    for table, cols in COLUMNS.items():
        have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
        for name, decl in cols:
            if name not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")


def record_after(journal, tasks: Iterable[Task]) -> None:
    """Store each planned task's ``after`` (register() writes the other fields)."""
    rows = [(json.dumps(list(t.after)), t.id) for t in tasks if t.after]
    if rows:
        with journal._tx() as db:
            db.executemany("UPDATE tasks SET after = ? WHERE id = ?", rows)


def spawned_tasks(journal) -> list[tuple[Task, int]]:
    """Tasks spawned by successful attempts of earlier runs, with their depth, in order."""
    rows = journal.db.execute(
        "SELECT spec, depth FROM tasks WHERE parent IS NOT NULL ORDER BY seq").fetchall()
    return [(Task.from_json(json.loads(spec)), depth) for spec, depth in rows]


def reset_skipped(journal) -> int:
    """A new run gives skipped tasks a new chance (their failed parent runs again)."""
    with journal._tx() as db:
        return db.execute("UPDATE tasks SET state = 'pending', skip_reason = NULL "
                          "WHERE state = 'skipped'").rowcount


def insert_children(db: sqlite3.Connection, journal, parent: str, attempt: int, depth: int,
                    children: list[Task]) -> None:
    """Inside the transaction that records the parent's success: its spawns, once."""
    db.executemany(
        "INSERT INTO tasks (id, command, weight, outputs, inputs, stream, timeout, env, after, "
        "parent, parent_attempt, depth, spec) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(id) DO NOTHING",
        [(c.id, c.command, c.weight, json.dumps(list(c.outputs)), json.dumps(list(c.inputs)),
          c.stream, c.timeout, json.dumps(dict(c.env)), json.dumps(list(c.after)), parent,
          attempt, depth, json.dumps(c.to_json())) for c in children])
    for tid, seq in db.execute(
            f"SELECT id, seq FROM tasks WHERE id IN ({','.join('?' * len(children))})",
            [c.id for c in children]):
        journal._seq[tid] = seq  # the joblog's Seq column


def skip(journal, task: Task, reason: str) -> None:
    """Record ``task`` as skipped, and a joblog line for it (exit value -1, no host)."""
    now = time.time()
    with journal._tx() as db:
        db.execute("UPDATE tasks SET state = 'skipped', skip_reason = ? WHERE id = ?",
                   (reason, task.id))
    cmd = task.command.replace("\n", "\0")
    journal.joblog.write(f"{journal._seq.get(task.id, 0)}\t:\t{now:.3f}\t{0.0:10.3f}\t0\t0\t"
                         f"-1\t0\t{cmd}\n")


def mark_backup(journal, task_id: str, attempt: int) -> None:
    with journal._tx() as db:
        db.execute("UPDATE attempts SET backup = 1 WHERE task_id = ? AND attempt = ?",
                   (task_id, attempt))


def earlier_successes(db: sqlite3.Connection) -> list[tuple[str, float, float, int]]:
    """``(host, seconds, weight, attempts)`` of the successful attempts already in this
    journal (an earlier run in the same run directory): a resumed run's first tasks are
    sized from them instead of waiting for new measurements."""
    try:
        return db.execute(
            "SELECT a.host, SUM(a.end - a.start), SUM(t.weight), COUNT(*) FROM attempts a "
            "JOIN tasks t ON t.id = a.task_id WHERE a.outcome = 'ok' AND t.weight > 0 "
            "AND a.end IS NOT NULL GROUP BY a.host").fetchall()
    except sqlite3.Error:
        return []


def measured_rate(run_dir) -> float | None:
    """Seconds per unit of weight over an earlier run's successful attempts in ``run_dir``
    (for planners: PlanContext.rate), or None when there are none."""
    from pathlib import Path

    path = Path(run_dir) / "journal.sqlite"
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = earlier_successes(db)
        finally:
            db.close()
    except sqlite3.Error:
        return None
    secs = sum(r[1] or 0.0 for r in rows)
    weight = sum(r[2] or 0.0 for r in rows)
    return secs / weight if secs and weight else None


def blocked_count(db: sqlite3.Connection) -> int:
    """Pending tasks still waiting for a task they run after (0 for an older journal)."""
    try:
        return db.execute(
            "SELECT COUNT(DISTINCT t.id) FROM tasks t, json_each(t.after) j "
            "JOIN tasks d ON d.id = j.value WHERE t.state = 'pending' AND d.state != 'done'"
        ).fetchone()[0]
    except sqlite3.OperationalError:  # no `after` column: a journal of an older version
        return 0


def descendants(db: sqlite3.Connection, ids: Iterable[str]) -> list[tuple[str, list[str]]]:
    """Every task spawned by ``ids`` (and by those, ...): ``(id, outputs)`` pairs."""
    ids = list(ids)
    if not ids:
        return []
    rows = db.execute(
        "WITH RECURSIVE d(id) AS (SELECT id FROM tasks WHERE parent IN "
        f"({','.join('?' * len(ids))}) UNION SELECT t.id FROM tasks t JOIN d ON t.parent = d.id) "
        "SELECT t.id, t.outputs FROM tasks t JOIN d ON d.id = t.id", ids).fetchall()
    return [(tid, json.loads(outs)) for tid, outs in rows]
