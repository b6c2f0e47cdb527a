"""Exactly-once under SIGKILL of the loader and with two loaders on one directory at once.

The ``events`` table has no natural key (an auto-increment id), so a shard loaded twice
would show up as extra rows: the counts below prove each row went in exactly once.
"""

from __future__ import annotations

import csv
import signal
import sqlite3
import subprocess
import time

import pymysql
import test_csv_to_database_common as common
from test_csv_to_database_common import (
    cli_argv,
    cli_env,
    load,
    schema_file,
)

db = common.db  # the SQLite + MariaDB fixture, used by name

EVENT_HEADER = ["objectId", "jd", "mag"]


def write_events(dirpath, nshards: int, nrows: int) -> int:
    """``nshards`` event shards of ``nrows`` rows; returns the total row count."""
    dirpath.mkdir(parents=True, exist_ok=True)
    for k in range(nshards):
        with open(dirpath / f"events-{k:03d}.csv", "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(EVENT_HEADER)
            w.writerows([f"ZTF{k:03d}{i:07d}", 2459000.5 + i, 18.0 + (i % 7) / 10]
                        for i in range(nrows))
    return nshards * nrows


def committed(target) -> tuple[int, int, int] | None:
    """(ledger shards, ledger rows, table rows), or None while the database is busy."""
    try:
        shards, rows = target.query(
            "SELECT COUNT(*), COALESCE(SUM(nrows), 0) FROM csv_to_database_ledger")[0]
        return int(shards), int(rows), int(target.scalar("SELECT COUNT(*) FROM events"))
    except (sqlite3.OperationalError, pymysql.err.MySQLError):
        return None


def test_sigkill_mid_load_then_rerun_loads_every_row_once(db, tmp_path):
    shards = tmp_path / "shards"
    nshards = 12
    total = write_events(shards, nshards, 20000)
    schema = schema_file(tmp_path, db.events_schema(), "events.sql")
    proc = subprocess.Popen(
        cli_argv(shards, "--db", db.url, "--table", "events", "--create", "--schema", schema,
                 "--parallel", "2"),
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    state = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        state = committed(db)
        if state and state[0] >= 2:  # some shards committed, others surely in flight
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    after_kill = committed(db)
    assert after_kill is not None
    kshards, krows, ktable = after_kill
    assert 0 < kshards < nshards, "the kill did not land mid-load; make the shards bigger"
    # nothing of an uncommitted shard is visible: table rows == rows the ledger accounts for
    assert ktable == krows == kshards * 20000

    rerun = load(db, shards, table="events", extra=("--parallel", "2"))
    assert rerun.returncode == 0, rerun.stderr
    assert f"{nshards - kshards} loaded" in rerun.stdout
    assert f"{kshards} skipped" in rerun.stdout
    assert committed(db) == (nshards, total, total)
    assert db.scalar("SELECT COUNT(DISTINCT objectId) FROM events") == total


def test_two_loaders_on_one_directory_load_each_shard_once(db, tmp_path):
    shards = tmp_path / "shards"
    nshards = 10
    total = write_events(shards, nshards, 3000)
    schema = schema_file(tmp_path, db.events_schema(), "events.sql")
    argv = cli_argv(shards, "--db", db.url, "--table", "events", "--create", "--schema", schema,
                    "--parallel", "2")
    procs = [subprocess.Popen(argv, env=cli_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    loaded = sum(int(out.split(" loaded")[0].rsplit(" ", 1)[1]) for out, _ in outs)
    skipped = sum(int(out.split(" skipped")[0].rsplit(" ", 1)[1]) for out, _ in outs)
    assert loaded == nshards and skipped == nshards
    assert committed(db) == (nshards, total, total)
    assert db.scalar("SELECT COUNT(DISTINCT objectId) FROM events") == total
