"""Races inside the agent that only many short tasks show."""

from __future__ import annotations

from helpers import journal, parallel


def test_many_instant_tasks_all_report_their_exit(tmp_path):
    """The subreaper's orphan sweep must never reap a task that has just been started (and
    already exited) before it is registered: its exit event would never be sent and the run
    would hang (seen: 400 x `true` on 2 slots hung every time)."""
    (tmp_path / "t.txt").write_text("".join(f"true {i}\n" for i in range(600)))
    p = parallel("run", "--tasks", "t.txt", "--procs", "2", "-q", cwd=tmp_path, timeout=180)
    assert p.returncode == 0, p.stderr
    db = journal(tmp_path / "runs" / "t")
    assert db.execute("SELECT COUNT(*) FROM tasks WHERE state = 'done'").fetchone()[0] == 600
    assert db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 600
