"""An attempt's stdout and stderr: ``parallel logs RUN TASK`` and the web view's log links.

Each attempt's output is kept whole in ``RUN/logs/<task>.<attempt>.out|err``; the journal also
holds the last few KiB of each (its ``out_tail``/``err_tail``), which is what is shown when the
file is gone (a run directory copied without its logs).
"""

from __future__ import annotations

from pathlib import Path

from lasair_parallel.head.views.results import (
    Attempt,
    JournalReader,
    TaskNotFound,
    TaskResult,
    short_command,
)
from lasair_parallel.tasks.errors import UsageError


class LogError(UsageError):
    """No such task or attempt (the message says what there is)."""


def log_path(run_dir: Path, attempt: Attempt, stream: str) -> Path | None:
    """Where the attempt's ``stream`` ('out' or 'err') is on this machine, if it is."""
    recorded = attempt.out_path if stream == "out" else attempt.err_path
    if not recorded:
        return None
    p = Path(recorded)
    # A relative path is relative to the head's directory, which may not be ours: the
    # file name inside the run's logs/ folder finds it from anywhere.
    for cand in (p, Path(run_dir) / "logs" / p.name):
        if cand.is_file():
            return cand
    return None


def read_stream(run_dir: Path, attempt: Attempt, stream: str) -> tuple[str, bool]:
    """``(text, whole)``: the log file's text, or the journal's tail of it (whole=False)."""
    p = log_path(run_dir, attempt, stream)
    if p is not None:
        return p.read_text(errors="replace"), True
    return (attempt.out_tail if stream == "out" else attempt.err_tail), False


def pick_attempt(task: TaskResult, number: int | None) -> Attempt:
    """Attempt ``number`` of ``task`` (default: its last one)."""
    if not task.attempts:
        raise LogError(f"task {task.id} ({short_command(task.command)}) has not run yet "
                       f"(state {task.state})")
    if number is None:
        return task.attempts[-1]
    for a in task.attempts:
        if a.number == number:
            return a
    raise LogError(f"task {task.id} has attempt(s) "
                   f"{', '.join(str(a.number) for a in task.attempts)}, not {number}")


def find(run_dir: Path, ref: str) -> TaskResult:
    """The task ``ref`` names (id, task-list line number or command excerpt)."""
    with JournalReader(run_dir) as j:
        try:
            return j.find_task(ref)
        except TaskNotFound as e:
            raise LogError(str(e)) from None


def attempt_log(run_dir: Path, task_id: str, number: int, stream: str) -> str:
    """One attempt's stdout or stderr by exact task id (the web view's links)."""
    with JournalReader(run_dir) as j:
        found = j.results([task_id])
    if task_id not in found:
        raise LogError(f"{task_id}: no such task in {run_dir}")
    return read_stream(run_dir, pick_attempt(found[task_id], number), stream)[0]


def header(task: TaskResult, a: Attempt) -> str:
    """One line naming the task and the attempt: what ran where, and how it ended."""
    how = a.outcome + (f": {a.reason}" if a.reason else "")
    return (f"task {task.id} attempt {a.number} of {len(task.attempts)} on {a.host}: {how}\n"
            f"$ {short_command(task.command, 200)}")
