"""csv_to_database through the real CLI, on SQLite and on a real MariaDB: modes, ledger, NULLs."""

from __future__ import annotations

import os

import test_csv_to_database_common as common
from test_csv_to_database_common import (
    HEADER,
    assert_one_line_error,
    load,
    object_rows,
    schema_file,
    write_csv,
)

db = common.db  # the SQLite + MariaDB fixture, used by name


def test_load_then_rerun_skips_every_shard(db, tmp_path):
    shards = tmp_path / "shards"
    for k in range(3):
        write_csv(shards / f"part-{k}.csv", object_rows(k * 100, 100))
    first = load(db, shards, schema=schema_file(tmp_path))
    assert first.returncode == 0, first.stderr
    assert "3 loaded (300 rows)" in first.stdout
    assert db.scalar("SELECT COUNT(*) FROM objects") == 300
    ledger = db.query("SELECT name, size, sha256, nrows, loaded_at FROM csv_to_database_ledger"
                      " ORDER BY name")
    assert [r[0] for r in ledger] == ["part-0.csv", "part-1.csv", "part-2.csv"]
    assert all(r[1] == os.path.getsize(shards / r[0]) and len(r[2]) == 64 and r[3] == 100
               for r in ledger)

    again = load(db, shards)
    assert again.returncode == 0, again.stderr
    assert "0 loaded" in again.stdout and "3 skipped (300 rows)" in again.stdout
    assert db.scalar("SELECT COUNT(*) FROM objects") == 300


def test_glob_source(db, tmp_path):
    write_csv(tmp_path / "s" / "a.csv", object_rows(0, 5))
    write_csv(tmp_path / "s" / "b.txt", object_rows(5, 5))
    proc = load(db, str(tmp_path / "s" / "*.csv"), schema=schema_file(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert db.scalar("SELECT COUNT(*) FROM objects") == 5


def test_replace_is_the_default_upsert(db, tmp_path):
    write_csv(tmp_path / "a" / "1.csv", [["ZTF1", 1, 1.0, 1.0, 1.0, "old"], ["ZTF2", 1, 2, 2, 2, "keep"]])
    write_csv(tmp_path / "b" / "2.csv", [["ZTF1", 7, 1.0, 1.0, 1.0, "new"]])
    assert load(db, tmp_path / "a", schema=schema_file(tmp_path)).returncode == 0
    proc = load(db, tmp_path / "b")
    assert proc.returncode == 0, proc.stderr
    assert db.query("SELECT objectId, ncand, ssnamenr FROM objects ORDER BY objectId") == [
        ("ZTF1", 7, "new"), ("ZTF2", 1, "keep")]


def test_ignore_keeps_existing_rows(db, tmp_path):
    write_csv(tmp_path / "a" / "1.csv", [["ZTF1", 1, 1.0, 1.0, 1.0, "old"]])
    write_csv(tmp_path / "b" / "2.csv", [["ZTF1", 7, 1.0, 1.0, 1.0, "new"], ["ZTF3", 3, 3, 3, 3, "n"]])
    assert load(db, tmp_path / "a", schema=schema_file(tmp_path)).returncode == 0
    proc = load(db, tmp_path / "b", extra=("--ignore",))
    assert proc.returncode == 0, proc.stderr
    assert db.query("SELECT objectId, ncand, ssnamenr FROM objects ORDER BY objectId") == [
        ("ZTF1", 1, "old"), ("ZTF3", 3, "n")]


def test_insert_fails_the_shard_on_a_duplicate_and_commits_nothing_of_it(db, tmp_path):
    write_csv(tmp_path / "a" / "1.csv", [["ZTF1", 1, 1.0, 1.0, 1.0, "old"]])
    write_csv(tmp_path / "b" / "2.csv", [["ZTF5", 5, 5, 5, 5, "n"], ["ZTF1", 7, 1, 1, 1, "dup"]])
    write_csv(tmp_path / "b" / "3.csv", [["ZTF6", 6, 6, 6, 6, "n"]])
    assert load(db, tmp_path / "a", extra=("--insert",), schema=schema_file(tmp_path)).returncode == 0
    proc = load(db, tmp_path / "b", extra=("--insert",))
    assert proc.returncode == 1, proc.stderr
    assert_one_line_error(proc)
    assert "2.csv:3" in proc.stderr and "--replace" in proc.stderr
    assert "1 loaded" in proc.stdout and "1 failed" in proc.stdout
    assert db.query("SELECT objectId, ssnamenr FROM objects ORDER BY objectId") == [
        ("ZTF1", "old"), ("ZTF6", "n")]
    assert db.scalar("SELECT COUNT(*) FROM csv_to_database_ledger") == 2  # 1.csv and 3.csv


def test_empty_is_null_and_zero_stays_zero(db, tmp_path):
    rows = [["Z0", 0, 0.0, "0", 0, ""], ["ZN", "", "", "", "", ""], ["Z1", 1, -0.5, 1e-300, 1.5, "0"]]
    # plain file (loaded by MySQL as is) and a quoted one (validated and rewritten first)
    write_csv(tmp_path / "s" / "plain.csv", rows)
    write_csv(tmp_path / "s" / "quoted.csv", [["Q" + r[0], *r[1:-1], 'say "hi"'] for r in rows])
    proc = load(db, tmp_path / "s", schema=schema_file(tmp_path))
    assert proc.returncode == 0, proc.stderr
    got = {r[0]: r[1:] for r in db.query(
        "SELECT objectId, ncand, ramean, decmean, gmag, ssnamenr FROM objects")}
    for key in ("Z0", "QZ0"):
        assert got[key][:4] == (0, 0.0, 0.0, 0.0), got[key]
        assert all(v is not None for v in got[key][:4])
    assert got["Z0"][4] is None  # empty text is NULL too
    for key in ("ZN", "QZN"):
        assert got[key][:4] == (None, None, None, None), got[key]
    assert got["Z1"] == (1, -0.5, 1e-300, 1.5, "0")
    assert got["QZ1"][4] == 'say "hi"'


def test_unknown_header_column_is_named_and_nothing_is_loaded(db, tmp_path):
    write_csv(tmp_path / "s" / "bad.csv", [["Z1", 1, 1, 1, 1, "x", 9]], header=HEADER + ["colour"])
    write_csv(tmp_path / "s" / "good.csv", object_rows(0, 3))
    proc = load(db, tmp_path / "s", schema=schema_file(tmp_path))
    assert proc.returncode == 1
    assert_one_line_error(proc)
    assert "bad.csv:1" in proc.stderr and "'colour'" in proc.stderr
    assert db.scalar("SELECT COUNT(*) FROM objects") == 3


def test_header_missing_primary_key_is_an_error(db, tmp_path):
    write_csv(tmp_path / "s" / "nopk.csv", [[1, 1.0]], header=["ncand", "ramean"])
    proc = load(db, tmp_path / "s", schema=schema_file(tmp_path))
    assert proc.returncode == 1
    assert "nopk.csv:1" in proc.stderr and "objectId" in proc.stderr


def test_subset_of_columns_in_any_order(db, tmp_path):
    write_csv(tmp_path / "s" / "sub.csv", [["5.5", "Z1"]], header=["ramean", "objectid"])
    proc = load(db, tmp_path / "s", schema=schema_file(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert db.query("SELECT objectId, ramean, ncand FROM objects") == [("Z1", 5.5, None)]


def test_changed_shard_needs_reload(db, tmp_path):
    shard = write_csv(tmp_path / "s" / "a.csv", [["Z1", 1, 1, 1, 1, "v1"]])
    assert load(db, tmp_path / "s", schema=schema_file(tmp_path)).returncode == 0
    write_csv(shard, [["Z1", 2, 1, 1, 1, "v2"], ["Z2", 2, 2, 2, 2, "v2"]])
    proc = load(db, tmp_path / "s")
    assert proc.returncode == 1
    assert_one_line_error(proc)
    assert "a.csv" in proc.stderr and "--reload" in proc.stderr
    assert db.query("SELECT ssnamenr FROM objects") == [("v1",)]
    proc = load(db, tmp_path / "s", extra=("--reload",))
    assert proc.returncode == 0, proc.stderr
    assert db.query("SELECT objectId, ssnamenr FROM objects ORDER BY objectId") == [
        ("Z1", "v2"), ("Z2", "v2")]
    assert db.query("SELECT nrows FROM csv_to_database_ledger") == [(2,)]
    again = load(db, tmp_path / "s", extra=("--reload",))
    assert "1 skipped" in again.stdout


def test_parallel_loads_every_shard_once(db, tmp_path):
    for k in range(6):
        write_csv(tmp_path / "s" / f"p{k}.csv", object_rows(k * 1000, 1000))
    write_csv(tmp_path / "s" / "bad.csv", [["Z", "notanumber", 1, 1, 1, "x"]])
    proc = load(db, tmp_path / "s", extra=("--parallel", "3"), schema=schema_file(tmp_path))
    assert proc.returncode == 1
    assert "6 loaded (6000 rows)" in proc.stdout and "1 failed" in proc.stdout
    assert db.scalar("SELECT COUNT(DISTINCT objectId) FROM objects") == 6000
    assert db.scalar("SELECT COUNT(*) FROM csv_to_database_ledger") == 6
    # progress without a terminal: plain lines, one per shard
    assert proc.stderr.count("shards,") == 6


def test_progress_and_summary_on_quiet(db, tmp_path):
    write_csv(tmp_path / "s" / "a.csv", object_rows(0, 3))
    proc = load(db, tmp_path / "s", extra=("-q",), schema=schema_file(tmp_path))
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.strip() == "shards: 1 total, 1 loaded (3 rows), 0 skipped (0 rows), 0 failed"
