"""Read a run's journal into a summary: progress, per-host counts, failures with stderr tails."""

from __future__ import annotations

import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

from lasair_parallel.head.core.dynjournal import blocked_count
from lasair_parallel.head.views.results import JournalReader, short_command
from lasair_parallel.tasks.errors import UsageError

EXIT_INTERRUPTED = 130  # as the runner exits on Ctrl-C / SIGTERM


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


def iso(t: float | None) -> str | None:
    """Epoch seconds as ISO 8601 in UTC with milliseconds (None stays None)."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")


def pid_alive(pid: int | None, started: float | None = None) -> bool:
    """Is ``pid`` a live process on this machine, and (where /proc tells) one that was already
    running when the run started?  A later process with a recycled pid is not the head."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: alive
    born = _process_start(int(pid))
    # The head writes `started` after it starts; 2 s covers clock-tick rounding.
    return not (born is not None and started is not None and born > started + 2.0)


def _process_start(pid: int) -> float | None:
    """A process's start time in epoch seconds (Linux /proc), or None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def head_host(run_dir: Path) -> str | None:
    """The machine the run's last head ran on, from the run lock's holder line
    (``pid N on HOST``); None when there is no lock file (an older run)."""
    try:
        words = (Path(run_dir) / "head.lock").read_text().split()
    except OSError:
        return None
    return words[3] if len(words) >= 4 and words[2] == "on" else None


def run_state(meta: dict, host: str | None = None) -> tuple[str, bool]:
    """``(state, live)``: running (its head is alive here), elsewhere (its head ran on another
    machine, so its pid cannot be checked from here), interrupted, stopped (the head died
    without recording an end), failed, or finished."""
    if not meta.get("finished"):
        if host and host != socket.gethostname():
            return "elsewhere", True
        if pid_alive(meta.get("head_pid"), meta.get("started")):
            return "running", True
        return "stopped", False
    status = meta.get("exit_status")
    if status == EXIT_INTERRUPTED:
        return "interrupted", False
    return ("finished" if status == 0 else "failed"), False


def summary(run_dir: Path, failures: int = 20, now: float | None = None) -> dict:
    """Everything ``parallel status`` shows, as plain data (times as epoch floats and, beside
    each, ISO 8601 in UTC)."""
    now = time.time() if now is None else now
    with JournalReader(run_dir) as j:
        meta = j.meta()
        states = j.task_states()
        counts = j.counts()
        hosts = j.hosts()
        fails = j.failed_attempts(failures)
        blocked = blocked_count(j.db)
        t0, t1 = j.span()
    host = head_host(run_dir)
    state, live = run_state(meta, host)
    running = states.get("running", 0)
    started, finished = meta.get("started"), meta.get("finished")
    end = finished if finished else (now if live else (t1 or started))
    return {
        "run": str(run_dir), "name": meta.get("name"), "command": meta.get("command"),
        "state": state, "live": live,
        "total": sum(states.values()), "done": states.get("done", 0),
        "failed": states.get("failed", 0),
        # A task left 'running' by a head that is gone runs again on the next run.
        "running": running if live else 0, "unfinished": 0 if live else running,
        "pending": states.get("pending", 0),
        # Dependencies (head.core.deps): skipped after a failure; pending ones still waiting.
        "skipped": states.get("skipped", 0), "blocked": blocked,
        **counts,
        "started": started, "started_iso": iso(started),
        "finished": finished, "finished_iso": iso(finished),
        "now": now, "now_iso": iso(now),
        "elapsed": max(0.0, end - started) if started and end else 0.0,
        "first_start": t0, "first_start_iso": iso(t0),
        "last_end": t1, "last_end_iso": iso(t1),
        "span": (t1 - t0) if t0 and t1 else 0.0,
        "exit_status": meta.get("exit_status"), "head_pid": meta.get("head_pid"),
        "head_host": host,
        "hosts": hosts, "failures": fails,
    }


def state_line(s: dict) -> str:
    """The run's state in words, with what to do next."""
    pid = s.get("head_pid")
    return {
        "running": f"running (head pid {pid} on this machine)",
        "elsewhere": f"not finished; its head (pid {pid}) runs on {s.get('head_host')}, not "
                     "here: look there",
        "interrupted": f"interrupted (exit {EXIT_INTERRUPTED}); rerun the same command to resume",
        "stopped": f"stopped without finishing (head pid {pid} is not running here); rerun "
                   "the same command to resume",
        "failed": f"finished with failures (exit {s.get('exit_status')})",
        "finished": "finished",
    }.get(s.get("state", ""), s.get("state", "?"))


def task_counts(s: dict) -> str:
    """``10 ok, 2 failed, 3 running, 5 pending of 20``: the parts that are not zero."""
    parts = [f"{s['done']} ok", f"{s['failed']} failed"]
    if s.get("running"):
        parts.append(f"{s['running']} running")
    if s.get("unfinished"):
        parts.append(f"{s['unfinished']} cut off when it stopped")
    if s.get("pending"):
        parts.append(f"{s['pending']} pending"
                     + (f" ({s['blocked']} waiting for others)" if s.get("blocked") else ""))
    if s.get("skipped"):
        parts.append(f"{s['skipped']} skipped (a task they run after failed)")
    return ", ".join(parts) + f" of {s['total']}"


def render(s: dict) -> str:
    """The human-readable status."""
    lines = [f"run {s['name']} ({s['run']}): {state_line(s)}",
             f"  tasks: {task_counts(s)}; {s['attempts']} attempts, "
             f"{s['retried_tasks']} task(s) retried; {s['elapsed']:.1f}s elapsed"
             + (f" since {s['started_iso']}" if s.get("started_iso") else "")]
    lines.append("  hosts:")
    for h in s["hosts"]:
        a = h.get("attempts", {})
        tasks = f"tasks {h.get('tasks_ok', 0)} ok, {h.get('tasks_failed', 0)} failed"
        tries = ", ".join(f"{k} {v}" for k, v in sorted(a.items())) or "none"
        seen = ""
        if h.get("last_seen") and s.get("live"):
            seen = f", seen {time.time() - h['last_seen']:.0f}s ago"
        # A host's state is as the head last saw it: "up" means little once the head is gone.
        state = h.get("state") or "?"
        state = state if s.get("live") else f"was {state}"
        lines.append(f"    {h['host']:<24} {state:<10} {tasks}; "
                     f"attempts: {tries}{seen}")
    if s["failures"]:
        lines.append("  failures (latest first; `parallel logs RUN TASK` prints the output):")
        for f in s["failures"]:
            lines.append(f"    {f['task']} ({short_command(f['command'])}) attempt "
                         f"{f['attempt']} on {f['host']}: {f['reason']}")
            tail = (f.get("err_tail") or "").strip().splitlines()[-5:]
            for t in tail:
                lines.append(f"      | {t}")
    return "\n".join(lines)
