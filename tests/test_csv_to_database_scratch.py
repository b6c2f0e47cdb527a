"""Issue 11, case 12: a SIGKILLed loader's temporary copy of a shard does not stay behind.

The copy (a validated rewrite of a shard with quoted fields) lives in a locked scratch
directory under $TMPDIR; the next loader removes the directories of loaders that are gone and
leaves those of live ones alone. Real parts: the CLI as a subprocess, a real MariaDB, SIGKILL.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from lasair_parallel.csv_to_database.errors import UsageError
from lasair_parallel.csv_to_database.scratch import scratch_dir, scratch_root, sweep
from mysql_rogue import RogueServer
from test_csv_to_database_common import HEADER, cli_argv, cli_env, run_cli, schema_file


def _copies(tmp: Path) -> list[Path]:
    return sorted(tmp.rglob("shard-*.txt"))


def test_sigkilled_loaders_copy_is_removed_by_the_next_loader(mariadb_server, tmp_path):
    db = mariadb_server.create_database("scratch_kill")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    shards = tmp_path / "s"
    shards.mkdir()
    with open(shards / "quoted.csv", "w", newline="") as f:  # quotes: not a "simple" shard
        w = csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_ALL)
        w.writerow(HEADER)
        w.writerows([f"ZTF{i:09d}", 1, 1.5, -2.5, 18.25, "a,b"] for i in range(400_000))
    env = cli_env(TMPDIR=str(tmp), HOME=str(tmp_path))
    url = mariadb_server.url(db)
    argv = cli_argv(shards, "--db", url, "--table", "objects", "--create", "--schema",
                    schema_file(tmp_path), "-q")
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not _copies(tmp) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "the load ended before its copy was seen: make the shard bigger"
    proc.send_signal(signal.SIGKILL)  # by PID: the process we started
    proc.wait(30)
    assert _copies(tmp), "the copy should still be there right after the kill"
    # the next loader (any shards, same user and TMPDIR) sweeps it away
    small = tmp_path / "small"
    small.mkdir()
    (small / "one.csv").write_text(",".join(HEADER) + "\nZ1,1,1,1,1,x\n")
    again = run_cli(small, "--db", url, "--table", "objects", "-q", env=env)
    assert again.returncode == 0, again.stderr
    assert _copies(tmp) == []
    assert list(scratch_root_of(tmp).iterdir()) == []  # its own directory went too


def scratch_root_of(tmp: Path) -> Path:
    return tmp / f"csv_to_database-{os.getuid()}"


def test_a_live_loaders_directory_is_not_swept(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    with scratch_dir() as d:
        (Path(d) / "shard-x.txt").write_text("rows")
        assert sweep(scratch_root()) == 0
        assert (Path(d) / "shard-x.txt").exists()
    assert not Path(d).exists()


def test_a_scratch_root_others_can_read_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    root = scratch_root_of(tmp_path)
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    with pytest.raises(UsageError, match="not a private directory"):
        scratch_root()


def test_the_copy_being_loaded_has_no_name_so_sigkill_leaves_nothing(tmp_path):
    """While LOAD DATA reads the copy it is already unlinked (read through /proc/self/fd):
    SIGKILL at that moment leaves no file at all, without waiting for a sweep."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    shards = tmp_path / "s"
    shards.mkdir()
    with open(shards / "quoted.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_ALL)
        w.writerow(HEADER)
        w.writerows([f"ZTF{i:09d}", 1, 1.5, -2.5, 18.25, "a,b"] for i in range(100))
    seen: dict = {}
    started = threading.Event()

    def kill_mid_load(query: str) -> None:
        started.wait(30)
        seen["name"] = re.search(r"INFILE '([^']*)'", query).group(1)
        seen["copies"] = _copies(tmp)
        os.kill(seen["pid"], signal.SIGKILL)  # the loader we started, by PID

    rogue = RogueServer(lambda q: re.search(r"INFILE '([^']*)'", q).group(1),
                        lambda q: q.startswith("LOAD DATA"), before_request=kill_mid_load)
    try:
        proc = subprocess.Popen(
            cli_argv(shards, "--db", f"mysql://u@127.0.0.1:{rogue.port}/db", "--table",
                     "objects", "-q"),
            env=cli_env(TMPDIR=str(tmp), HOME=str(tmp_path)), stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        seen["pid"] = proc.pid
        started.set()
        proc.wait(60)
    finally:
        rogue.close()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    assert seen["name"].startswith("/proc/self/fd/"), seen
    assert seen["copies"] == [] and _copies(tmp) == []
