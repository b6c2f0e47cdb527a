"""Small helpers for tests that drive the real ``parallel`` CLI, or run a planned task here."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

PARALLEL = [sys.executable, "-m", "lasair_parallel.head.cli.main"]


def run_rebuild_task(t) -> list[str]:
    """Run a planned rebuild_objects task in this process (the task module's ``main`` on the
    arguments of its command); returns those arguments."""
    from lasair_parallel.apps.rebuild_objects import task

    words = shlex.split(t.command)
    argv = words[words.index("lasair_parallel.apps.rebuild_objects.task") + 1:]
    assert task.main(argv) == 0
    return argv


def parallel(*args: str, cwd: Path, timeout: float = 120, check: bool = False,
             **kw) -> subprocess.CompletedProcess:
    """Run ``parallel ARGS`` in ``cwd`` and return the finished process (text output)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    p = subprocess.run(PARALLEL + [str(a) for a in args], cwd=cwd, capture_output=True,
                       text=True, timeout=timeout, env=env, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def start_parallel(*args: str, cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(PARALLEL + [str(a) for a in args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def journal(run_dir: Path) -> sqlite3.Connection:
    db = sqlite3.connect(run_dir / "journal.sqlite")
    db.row_factory = sqlite3.Row
    return db


def processes_with(token: str) -> list[int]:
    """PIDs of live processes whose command line contains ``token``."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if token in cmd and state != "Z":
            pids.append(int(d.name))
    return pids


def wait_for(predicate, timeout: float = 30.0) -> None:
    """Wait until ``predicate()`` holds (the run under test reaching a state), or fail."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def count(run: Path, sql: str, *args) -> int:
    """One number from a run's journal; 0 while the journal does not exist yet."""
    try:
        db = sqlite3.connect(run / "journal.sqlite")
        return db.execute(sql, args).fetchone()[0]
    except sqlite3.Error:
        return 0


def agent_pid(run_dir: Path, host: str) -> int:
    """The pid of the agent that last came up on ``host`` (from the journal's host events)."""
    db = sqlite3.connect(run_dir / "journal.sqlite")
    try:
        detail = db.execute("SELECT detail FROM host_events WHERE host = ? AND event = 'up' "
                            "ORDER BY t DESC", (host,)).fetchone()[0]
    finally:
        db.close()
    return int(detail.split()[-1])


def agent_pidfile(run_dir: Path, label: str) -> Path:
    """The pid file of the run's agent on host ``label``, as head/worker/agent.py names it
    (the slot: the resolved run directory and the label, as the scheduler's ``_slot``)."""
    import hashlib
    import tempfile

    slot = hashlib.sha1(f"{Path(run_dir).resolve()}\0{label}".encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir(), f"lasair-agent-{os.getuid()}-{slot}.pid")


def children(pid: int) -> list[int]:
    """PIDs of the live processes whose parent is ``pid``."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except OSError:
                pass
    return out


def cmdline(pid: int) -> str:
    """Process ``pid``'s command line, arguments joined by spaces ("" once it has gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@contextlib.contextmanager
def frozen_host(agent: int, task_token: str) -> Iterator[list[int]]:
    """Freeze a worker like a paused VM: SIGSTOP the agent ``agent`` and its children except
    the tasks (command lines containing ``task_token``), SIGCONT them all on leaving.
    Yields the frozen PIDs; one already gone by then (killed by the host's next agent, as
    leftovers of a frozen one) is skipped."""
    pids = [agent] + [c for c in children(agent) if task_token not in cmdline(c)]
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    try:
        yield pids
    finally:
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGCONT)


def gated(command: str, gate: Path) -> str:
    """``command``, run once ``gate`` exists: a task that starts at once and waits (up to
    10 min, so a broken test cannot hang CI for ever) until the test opens the gate."""
    return (f"t=0; while [ ! -e {gate} ] && [ $t -lt 30000 ]; do sleep 0.02; t=$((t+1)); done; "
            f"{command}")


@contextlib.contextmanager
def gate_when(run: Path, sql: str, at_least: int, gate: Path) -> Iterator[None]:
    """Open ``gate`` (create the file) once the journal's ``sql`` counts ``at_least``, from a
    thread, while the body runs (an in-process ``lasair_parallel.run``); at the latest when
    the body ends, so a failure cannot leave gated tasks waiting."""
    import threading

    done = threading.Event()

    def watch() -> None:
        while not done.is_set() and count(run, sql) < at_least:
            done.wait(0.05)
        gate.touch()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        yield
    finally:
        done.set()
        t.join(10)


def assert_blocks_cover(blocks, ids: list[str], counts, cut: str) -> None:
    """A walk's blocks (``sources.sqlite_blocks`` / ``mysql_blocks``, cut by ``cut``: a
    number of blocks, or rows a block when it has a '.') against the listing's ids and
    counts: heaviest first, contiguous in the listing's order (every object once), each with
    its objects' counts, at least max_rows and only its last object past it, no remainder."""
    total = int(sum(counts))
    max_rows = float(cut) if "." in cut else total / int(cut)
    assert blocks is not None
    assert [b.rows for b in blocks] == sorted((b.rows for b in blocks), reverse=True)
    where = {oid: i for i, oid in enumerate(ids)}
    ordered = sorted(blocks, key=lambda b: where[b.first])
    start = 0
    for k, b in enumerate(ordered):
        assert b.first == ids[start]  # contiguous: no object skipped or read twice
        end = where[b.last] + 1
        assert b.rows == int(sum(counts[start:end]))
        if k < len(ordered) - 1:
            assert max_rows <= b.rows < max_rows + counts[end - 1]
        start = end
    assert start == len(ids)
    if "." not in cut:
        assert len(blocks) <= int(cut)  # no remainder block of a few objects
