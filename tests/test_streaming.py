"""Rows streamed to the head over the agent's channel: kept only for successful attempts,
identical over SSH and locally, and the head's memory stays below what passes through it."""

from __future__ import annotations

import json

from helpers import journal, parallel


def expected_rows(task: int, n: int) -> bytes:
    return ("task,k,k2\n" + "".join(f"{task},{k},{k * k}\n" for k in range(n))).encode()


def test_streamed_rows_kept_only_for_successful_attempts(tmp_path):
    n = 1_500_000
    p = parallel("run", "apps/busy", "--procs", "2", "-q", "--retries", "1", "--retry-delay",
                 "0", "--", "--count", "3", "--seconds", "0", "--emit-rows", str(n),
                 "--fail-every", "3", cwd=tmp_path, timeout=300)
    assert p.returncode == 1  # task 2 fails (twice): its rows must not appear
    run = tmp_path / "runs" / "busy"
    stream = run / "stream"
    assert sorted(f.name for f in stream.iterdir()) == ["busy-00000.csv", "busy-00001.csv"]
    for i in (0, 1):
        assert (stream / f"busy-{i:05d}.csv").read_bytes() == expected_rows(i, n)
    assert list((run / ".spool").iterdir()) == []  # discarded spools are gone
    meta = {k: json.loads(v) for k, v in journal(run).execute("SELECT key, value FROM meta")}
    # ~94 MB of rows went through the head (3 attempts streamed fully, plus the retry), yet
    # its peak memory stays far below that: rows go to disk as they arrive.
    assert meta["streamed_bytes"] > 90e6
    assert meta["head_maxrss_kb"] * 1024 < meta["streamed_bytes"] / 2


def test_streaming_over_ssh_equals_local(sshbed, tmp_path):
    args = ["--", "--count", "6", "--seconds", "0", "--emit-rows", "20000"]
    p = parallel("run", "apps/busy", "--procs", "2", "-q", "--name", "local", *args,
                 cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    own = sshbed.write_hosts_yaml(tmp_path / "own.yaml", procs=2, shared_fs=False,
                                  workdir=tmp_path / "worker-home")
    p = parallel("run", "apps/busy", "--workers", own, "--ssh-config", sshbed.ssh_config, "-q",
                 "--name", "ssh", *args, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    local = {f.name: f.read_bytes() for f in (tmp_path / "runs/local/stream").iterdir()}
    ssh = {f.name: f.read_bytes() for f in (tmp_path / "runs/ssh/stream").iterdir()}
    assert local == ssh and len(local) == 6
    assert local["busy-00005.csv"] == expected_rows(5, 20000)
    # Nothing was written on the worker's side: the rows only crossed the channel.
    assert not list((tmp_path / "worker-home").rglob("*.csv"))


def test_streamed_rows_straight_into_a_database_exactly_once(tmp_path):
    db = tmp_path / "rows.db"
    args = ["run", "apps/busy", "--procs", "2", "-q", "--stream-to", f"sqlite:///{db}",
            "--stream-table", "busy_rows", "--stream-create", "--", "--count", "5", "--seconds",
            "0", "--emit-rows", "3000", "--fail-every", "5"]
    p = parallel(*args, cwd=tmp_path)
    assert p.returncode == 1  # task 4 failed: its rows are not in the table
    import sqlite3

    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*), COUNT(DISTINCT task) FROM busy_rows").fetchone() == (
        12000, 4)
    assert con.execute("SELECT MAX(task) FROM busy_rows").fetchone()[0] == 3
    con.close()
    p = parallel(*args, cwd=tmp_path)  # resumed: the loaded files are not loaded twice
    assert p.returncode == 1
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*) FROM busy_rows").fetchone()[0] == 12000
    assert con.execute("SELECT SUM(k2) FROM busy_rows WHERE task = 2").fetchone()[0] == sum(
        k * k for k in range(3000))
