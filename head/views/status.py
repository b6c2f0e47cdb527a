"""Read a run's journal into a summary: progress, per-host counts, failures with stderr tails."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from lasair_parallel.tasks.errors import UsageError


class StatusError(UsageError):
    pass


def find_run(run: str | None, runs_root: Path = Path("runs")) -> Path:
    """A run directory: the one named, or the most recently used one under ``runs/``."""
    if run:
        p = Path(run)
        if not p.is_dir() and (runs_root / run).is_dir():
            p = runs_root / run
        if not (p / "journal.sqlite").exists():
            raise StatusError(f"{run}: no run there (no journal.sqlite); give a run directory "
                              f"such as runs/<name>")
        return p
    journals = sorted(runs_root.glob("*/journal.sqlite"), key=lambda j: j.stat().st_mtime)
    if not journals:
        raise StatusError(f"no runs under {runs_root}/; start one with `parallel run`")
    return journals[-1].parent


def summary(run_dir: Path, failures: int = 20) -> dict:
    """Everything ``parallel status`` shows, as plain data."""
    db = sqlite3.connect(f"file:{run_dir / 'journal.sqlite'}?mode=ro", uri=True)
    try:
        meta = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
        states = dict(db.execute("SELECT state, COUNT(*) FROM tasks GROUP BY state"))
        total = sum(states.values())
        hosts = {}
        for host, outcome, n in db.execute(
                "SELECT host, outcome, COUNT(*) FROM attempts GROUP BY host, outcome"):
            hosts.setdefault(host, {})[outcome] = n
        host_rows = db.execute(
            "SELECT host, slots, state, hostname, cores, python, version, memfree, load, "
            "last_seen FROM hosts ORDER BY host").fetchall()
        host_info = {r[0]: dict(zip(("host", "slots", "state", "hostname", "cores", "python",
                                     "version", "memfree", "load", "last_seen"), r))
                     for r in host_rows}
        for h, info in host_info.items():
            info["attempts"] = hosts.get(h, {})
        for h, counts in hosts.items():
            host_info.setdefault(h, {"host": h, "attempts": counts})
        fails = [dict(zip(("task", "attempt", "host", "exit_code", "signal", "outcome", "reason",
                           "err_tail", "command"), r)) for r in db.execute(
            "SELECT a.task_id, a.attempt, a.host, a.exit_code, a.signal, a.outcome, a.reason, "
            "a.err_tail, t.command FROM attempts a JOIN tasks t ON t.id = a.task_id "
            "WHERE a.outcome IN ('failed', 'timeout') ORDER BY a.end DESC LIMIT ?",
            (failures,))]
        retried = db.execute(
            "SELECT COUNT(*) FROM tasks WHERE attempts > 1").fetchone()[0]
        n_attempts = db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
        t0, t1 = db.execute("SELECT MIN(start), MAX(COALESCE(end, start)) FROM attempts").fetchone()
    finally:
        db.close()
    done = states.get("done", 0)
    return {
        "run": str(run_dir), "name": meta.get("name"), "command": meta.get("command"),
        "total": total, "done": done, "failed": states.get("failed", 0),
        "running": states.get("running", 0), "pending": states.get("pending", 0),
        "attempts": n_attempts, "retried_tasks": retried,
        "started": meta.get("started"), "finished": meta.get("finished"),
        "exit_status": meta.get("exit_status"), "head_pid": meta.get("head_pid"),
        "elapsed": (t1 - t0) if t0 and t1 else 0.0,
        "hosts": list(host_info.values()), "failures": fails,
    }


def render(s: dict) -> str:
    """The human-readable status."""
    pct = 100.0 * s["done"] / s["total"] if s["total"] else 100.0
    state = "finished" if s.get("finished") else "in progress or stopped"
    lines = [f"run {s['name']} ({s['run']}): {state}",
             f"  tasks: {s['done']}/{s['total']} done ({pct:.1f}%), {s['failed']} failed, "
             f"{s['running']} running, {s['pending']} pending; {s['attempts']} attempts, "
             f"{s['retried_tasks']} task(s) retried; {s['elapsed']:.1f}s of work span"]
    lines.append("  hosts:")
    for h in s["hosts"]:
        a = h.get("attempts", {})
        counts = ", ".join(f"{k} {v}" for k, v in sorted(a.items())) or "no attempts"
        seen = ""
        if h.get("last_seen"):
            seen = f", seen {time.time() - h['last_seen']:.0f}s ago"
        lines.append(f"    {h['host']:<24} {h.get('state') or '?':<10} {counts}{seen}")
    if s["failures"]:
        lines.append("  failures (latest first):")
        for f in s["failures"]:
            lines.append(f"    {f['task']} attempt {f['attempt']} on {f['host']}: {f['reason']}")
            lines.append(f"      $ {f['command'][:200]}")
            tail = (f.get("err_tail") or "").strip().splitlines()[-5:]
            for t in tail:
                lines.append(f"      | {t}")
    return "\n".join(lines)
