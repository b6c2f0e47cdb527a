"""rebuild_objects planner, task and shards: blocks, stable ids, atomic identical reruns."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import run_rebuild_task
from lasair_parallel.apps.rebuild_objects import app, task
from lasair_parallel.apps.rebuild_objects.features import COLUMNS, compute_features
from lasair_parallel.apps.rebuild_objects.sources import open_source
from lasair_parallel.head.appload import plan_context, resolve


def plan(tmp_path, *argv, slots=4):
    args = app.build_parser().parse_args(list(argv))
    return args, app.plan(args, plan_context(resolve("rebuild_objects"), tmp_path, slots, 1))


def read_shards(d: Path) -> dict[str, dict]:
    rows = {}
    for p in sorted(d.glob("*.csv")):
        with open(p, newline="") as f:
            r = csv.reader(f)
            assert next(r) == [c for c, _ in COLUMNS]
            for row in r:
                rows[row[0]] = dict(zip([c for c, _ in COLUMNS], row, strict=True))
    return rows


def test_plan_covers_every_object_once_heaviest_first(tmp_path):
    args, tasks = plan(tmp_path, "--source", "synthetic:3000", "--task-seconds", "0.02")
    assert len(tasks) > 4
    weights = [t.weight for t in tasks]
    assert weights == sorted(weights, reverse=True)
    ids, counts = open_source("synthetic:3000").list_objects()
    assert sum(weights) == counts.sum()
    assert len({t.id for t in tasks}) == len(tasks)
    _, again = plan(tmp_path, "--source", "synthetic:3000", "--task-seconds", "0.02")
    assert [t.id for t in again] == [t.id for t in tasks]  # stable across reruns
    assert "tasks" in app.describe(args, plan_context(resolve("rebuild_objects"), tmp_path, 4, 1), tasks)


def test_automatic_task_size_is_clamped():
    rate = app.DETECTIONS_PER_SECOND
    assert app.block_weight(1e3, 8, rate, None) == 1e3 / 16  # 2 per slot, however small
    assert app.block_weight(1e12, 8, rate, None) == app.MAX_TASK_SECONDS * rate
    assert app.block_weight(1e6 * 16, 8, rate, None) == 1e6
    with pytest.raises(ValueError):
        app.block_weight(1e3, 8, rate, 0)


def test_shards_match_features_and_rerun_is_identical(tmp_path):
    _, tasks = plan(tmp_path, "--source", "sample", "--task-seconds", "0.004",
                    "--window-days", "30")
    assert len(tasks) >= 3
    for t in tasks:
        run_rebuild_task(t)
    shards = tmp_path / "shards"
    first = {p.name: p.read_bytes() for p in shards.glob("*.csv")}
    assert len(first) == len(tasks) and {Path(t.outputs[0]).name for t in tasks} == set(first)
    for t in tasks:
        run_rebuild_task(t)
    assert {p.name: p.read_bytes() for p in shards.glob("*.csv")} == first
    assert not list(shards.glob(".*"))  # no temp files left behind

    src = open_source("sample")
    ids, _ = src.list_objects()
    want_ids, want = compute_features(src.read_range(ids[0], ids[-1]), 30.0)
    got = read_shards(shards)
    assert sorted(got) == sorted(want_ids)
    zeros = 0
    for i, oid in enumerate(want_ids):
        for name, kind in COLUMNS:
            text, value = got[oid][name], want[name][i]
            if kind == "f":
                if np.isnan(value):
                    assert text == ""
                else:
                    assert float(text) == value  # round-trip exact
                    zeros += value == 0.0
            elif kind == "i":
                assert int(text) == value
            else:
                assert text == ("" if value is None else value)
    assert zeros > 0  # real zeros (e.g. rastd of one detection, sgscore1 0) stay zeros


def test_block_file_for_sources_without_ranges(tmp_path, monkeypatch):
    from lasair_parallel.apps.rebuild_objects.sources import sample as sample_mod

    monkeypatch.setattr(sample_mod.CsvSource, "ranges", False)
    _, tasks = plan(tmp_path, "--task-seconds", "0.004")
    assert all("--objects-file" in t.command and t.inputs for t in tasks)
    for t in tasks:
        run_rebuild_task(t)
    assert len(read_shards(tmp_path / "shards")) == 364


def test_task_rejects_missing_block(tmp_path, capsys):
    assert task.main(["--output", str(tmp_path / "x.csv")]) == 2
    assert "--first" in capsys.readouterr().err


@pytest.mark.parametrize("arrival,per_slot", [(True, 1), (False, 2)])
def test_table_read_by_scans_gets_one_block_per_slot(tmp_path, arrival, per_slot):
    """Every block of a table not stored by object scans the whole table: one per slot."""
    from lasair_parallel.apps.rebuild_objects.sources.dbwrite import write_sqlite
    from lasair_parallel.apps.rebuild_objects.sources.replicate import (
        arrival_order,
        replicated_sample,
    )

    det = replicated_sample(3000)
    db = tmp_path / "c.db"
    write_sqlite(db, det, order=arrival_order(det) if arrival else None)
    _, tasks = plan(tmp_path, "--source", f"sqlite:///{db}", slots=3)
    # By seeks a remainder block of a few objects may follow (cheap to read); not by scans.
    assert len(tasks) == 3 if per_slot == 1 else 6 <= len(tasks) <= 7


def test_planning_an_unclustered_sqlite_table_leaves_numpy_unimported(tmp_path):
    """The head plans a SQLite table read by scans without numpy (lazynp): its import was
    0.07-0.1 s of every such run's start.  In a fresh interpreter, as the head's."""
    import subprocess
    import sys

    from lasair_parallel.apps.rebuild_objects.sources.dbwrite import (
        LIVE_INDEX_COLUMNS,
        write_sqlite,
    )
    from lasair_parallel.apps.rebuild_objects.sources.replicate import (
        arrival_order,
        replicated_sample,
    )

    det = replicated_sample(300)
    db = tmp_path / "c.db"
    write_sqlite(db, det, order=arrival_order(det), index=LIVE_INDEX_COLUMNS)
    code = (
        "import sys\n"
        "from lasair_parallel.apps.rebuild_objects import app\n"
        "from lasair_parallel.head.appload import plan_context, resolve\n"
        f"args = app.build_parser().parse_args(['--source', 'sqlite:///{db}'])\n"
        f"ctx = plan_context(resolve('rebuild_objects'), __import__('pathlib').Path({str(tmp_path)!r}), 2, 1)\n"
        "tasks = app.plan(args, ctx)\n"
        "print(len(tasks), 'numpy' in sys.modules)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["2", "False"], p.stdout + p.stderr


def test_load_to_ends_the_run_with_a_journaled_load_task(tmp_path):
    """--load-to: one more task after every block (and its spawned pieces) loads the shards;
    a rerun loads nothing twice."""
    import sqlite3

    from helpers import journal, parallel

    db = tmp_path / "lasair.db"
    argv = ("run", "rebuild_objects", "--procs", "2", "-q", "--task-seconds", "0.01", "--",
            "--source", "sample", "--load-to", f"sqlite:///{db}")
    p = parallel(*argv, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    run = tmp_path / "runs" / "rebuild_objects"
    rows = read_shards(run / "shards")
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*), COUNT(DISTINCT objectId) FROM objects").fetchone() == (
        len(rows), len(rows))
    j = journal(run)
    load = j.execute("SELECT id, state, after FROM tasks WHERE id LIKE 'rebuild-load-%'").fetchall()
    assert len(load) == 1 and load[0]["state"] == "done"
    others = {r[0] for r in j.execute("SELECT id FROM tasks WHERE id NOT LIKE 'rebuild-load-%' "
                                      "AND parent IS NULL")}
    assert set(json.loads(load[0]["after"])) == others
    p = parallel(*argv, cwd=tmp_path)  # nothing left: the load is not repeated
    assert p.returncode == 0, p.stderr
    assert con.execute("SELECT COUNT(*) FROM csv_to_database_ledger").fetchone()[0] == len(
        list((run / "shards").glob("*.csv")))


def test_load_to_with_stream_is_a_one_line_error(tmp_path):
    from helpers import parallel

    p = parallel("run", "rebuild_objects", "--", "--stream", "--load-to", "sqlite:///x.db",
                 cwd=tmp_path)
    assert p.returncode == 2 and "--stream-to" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("window_days", [0.0, 30.0])
def test_a_block_made_on_two_threads_is_the_one_thread_text(monkeypatch, window_days):
    """Above base.THREADED_ROWS the features and CSV text are made per half of the objects, on two
    threads: the joined text is the whole block's, byte for byte (one header, every object
    once, in order), for unsorted rows (candid given) too."""
    from lasair_parallel.apps.rebuild_objects.shard import shard_bytes
    from lasair_parallel.apps.rebuild_objects.sources import base
    from lasair_parallel.apps.rebuild_objects.sources.base import objects_slice
    from lasair_parallel.apps.rebuild_objects.sources.replicate import replicated_sample

    det = replicated_sample(2000)  # ~20,000 rows, candid given: the feature code sorts
    assert det.candid is not None
    whole = shard_bytes(compute_features(det, window_days)[1])
    monkeypatch.setattr(base, "THREADED_ROWS", 1000)
    monkeypatch.setattr(base.os, "cpu_count", lambda: 2)
    halves = []
    monkeypatch.setattr(task, "objects_slice",
                        lambda d, lo, hi: halves.append((lo, hi)) or objects_slice(d, lo, hi))
    n, pieces = task.shard_pieces(det, window_days)
    text = b"".join(pieces)
    assert sorted(halves) == [(0, 1000), (1000, 2000)]
    assert n == 2000 and text == whole and all(bytes(p).endswith(b"\n") for p in pieces)
    assert text.count(text.split(b"\n", 1)[0]) == 1
