"""The journal under faults: one head per run directory, writes that belong together commit
together, a full disk stops the run cleanly, GNU parallel's joblog format exactly."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest
from helpers import count, journal, parallel, processes_with, start_parallel, wait_for


def test_second_head_on_one_run_dir_refuses_naming_the_first(tmp_path):
    """Two heads on one run directory used to both run every task (32 runs for 16)."""
    gate = tmp_path / "gate"  # the tasks wait for it: the first head runs until we say
    tl = tmp_path / "work.txt"
    tl.write_text("".join(f"while [ ! -e {gate} ]; do sleep 0.05; done; echo {i} >> "
                          f"{tmp_path}/ran\n" for i in range(4)))
    first = start_parallel("run", "--tasks", tl, "--procs", "2", "-q", cwd=tmp_path)
    run = tmp_path / "runs" / "work"
    wait_for(lambda: count(run, "SELECT COUNT(*) FROM attempts") > 0)
    t0 = time.monotonic()
    second = parallel("run", "--tasks", tl, "--procs", "2", "-q", cwd=tmp_path)
    assert time.monotonic() - t0 < 10  # refused at once, not after waiting for the first
    assert second.returncode == 2, second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in second.stderr
    assert f"pid {first.pid}" in lines[0] and socket.gethostname() in lines[0]
    gate.touch()
    assert first.wait(60) == 0, first.stderr.read()
    assert sorted((tmp_path / "ran").read_text().split()) == ["0", "1", "2", "3"]  # once each
    # The kernel drops the lock with the head: the next head (a resume) goes ahead.
    assert parallel("run", "--tasks", tl, "-q", cwd=tmp_path).returncode == 0


def test_attempt_end_and_task_state_commit_together(tmp_path, monkeypatch):
    """A head killed between an attempt's end and its task's state leaves neither written."""
    tl = tmp_path / "one.txt"
    tl.write_text(f"echo x >> {tmp_path}/ran\n")
    monkeypatch.setenv("PARALLEL_FAULT_EXIT_IN", "end_attempt")
    p = parallel("run", "--tasks", tl, "-q", cwd=tmp_path)
    assert p.returncode == 99, p.stderr  # the hook killed the head between the two writes
    db = journal(tmp_path / "runs" / "one")
    a = db.execute("SELECT outcome FROM attempts").fetchall()
    t = db.execute("SELECT state FROM tasks").fetchall()
    # Before: the attempt said ok (committed alone) while the task still said running.
    assert [r[0] for r in a] == ["running"] and [r[0] for r in t] == ["running"]
    db.close()
    monkeypatch.delenv("PARALLEL_FAULT_EXIT_IN")
    assert parallel("run", "--tasks", tl, "-q", cwd=tmp_path).returncode == 0
    db = journal(tmp_path / "runs" / "one")
    assert [tuple(r) for r in db.execute("SELECT attempt, outcome FROM attempts ORDER BY 1")] \
        == [(1, "lost"), (2, "ok")]
    assert db.execute("SELECT state FROM tasks").fetchone()[0] == "done"


def test_joblog_writes_commands_as_gnu_parallel_does(tmp_path):
    """GNU parallel's print_joblog: newlines become NUL, tabs stay; runtime is %10.3f."""
    tl = tmp_path / "odd.txt"
    tl.write_text("echo 'a\tb'\necho one \\\necho two\n")
    assert parallel("run", "--tasks", tl, "-q", cwd=tmp_path).returncode == 0
    raw = (tmp_path / "runs" / "odd" / "joblog.tsv").read_bytes().decode()
    lines = raw.split("\n")[1:-1]
    commands = sorted(line.split("\t", 8)[8] for line in lines)
    assert commands == ["echo 'a\tb'", "echo one \0echo two"]
    for line in lines:
        runtime = line.split("\t")[3]
        assert len(runtime) == 10 and float(runtime) >= 0


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs of the test's own (root only), unmounted at the end."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the disk-full test: {r.stderr}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path: Path) -> None:
    """Write zeros to ``path`` until the filesystem is full (it may be already)."""
    try:
        with open(path, "wb") as f:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
    except OSError:
        pass  # ENOSPC: full, which is the point (raised by a write or by the final flush)


def test_full_disk_stops_the_run_kills_tasks_and_resumes(tmp_path, small_disk):
    token = f"2.{time.time_ns() % 10**6:06d}"
    out = tmp_path / "out"
    out.mkdir()
    n = 40
    tl = tmp_path / "work.txt"
    tl.write_text("".join(f"sleep {token}; echo {i} > {out}/.{i}.$$ && mv {out}/.{i}.$$ "
                          f"{out}/{i}\n" for i in range(n)))
    run = small_disk / "run"
    proc = start_parallel("run", "--tasks", tl, "--procs", "4", "--run-dir", run, "-q",
                          cwd=tmp_path)
    wait_for(lambda: count(run, "SELECT COUNT(*) FROM attempts WHERE outcome = 'ok'") >= 4)
    fill(small_disk / "filler")
    try:
        rc = proc.wait(30)  # before: every host loop died and the head waited forever
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert rc == 1, err
    assert "Traceback" not in err
    full = [line for line in err.splitlines() if "disk is full" in line]
    assert len(full) == 1 and str(run / "journal.sqlite") in full[0], err
    wait_for(lambda: processes_with(f"sleep {token}") == [], timeout=10)  # remote tasks killed
    (small_disk / "filler").unlink()
    p = parallel("run", "--tasks", tl, "--procs", "4", "--run-dir", run, "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert sorted(int(f.name) for f in out.iterdir()) == list(range(n))
    db = journal(run)
    assert db.execute("SELECT COUNT(*) FROM tasks WHERE state = 'done'").fetchone()[0] == n


def test_rerun_of_a_run_dir_with_another_task_list_refuses(tmp_path):
    """Before: the second list's tasks were mixed into the first run's journal."""
    (tmp_path / "a.txt").write_text("echo a\necho b\n")
    (tmp_path / "b.txt").write_text("echo c\n")
    run = tmp_path / "run"
    assert parallel("run", "--tasks", tmp_path / "a.txt", "--run-dir", run, "-q",
                    cwd=tmp_path).returncode == 0
    p = parallel("run", "--tasks", tmp_path / "b.txt", "--run-dir", run, "-q", cwd=tmp_path)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "--run-dir" in lines[0] and "--name" in lines[0], p.stderr
    assert journal(run).execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == 2
    # Adding tasks to the same list extends the run (as GNU parallel's --resume does).
    (tmp_path / "a.txt").write_text("echo a\necho b\necho d\n")
    p = parallel("run", "--tasks", tmp_path / "a.txt", "--run-dir", run, "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert journal(run).execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 3
