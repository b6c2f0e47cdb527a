"""Run-time splitting in the science apps over the real sshd bed (issue 13, measured sizing):
a task the head predicts to run longer than --task-seconds spawns pieces, every piece runs
once, and the combined result is identical to a run without splitting."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from helpers import journal, parallel
from lasair_parallel.tasks import split
from test_rebuild_app import read_shards

NO_SPLIT = ["--task-seconds", "1e9"]


def bed_run(sshbed, tmp_path: Path, name: str, app: str, runner: list[str], app_args: list[str],
            shared: bool = True):
    """``parallel run APP`` on one bed host with one slot: tasks run one after the other, so
    every task after the first starts with a measured rate (the first has none: unsplit)."""
    extra = {} if shared else {"workdir": tmp_path / f"{name}-worker"}
    hosts = sshbed.write_hosts_yaml(tmp_path / f"{name}.yaml", procs=1,
                                    hosts=sshbed.hosts[:1], shared_fs=shared,
                                    python=sys.executable, **extra)
    p = parallel("run", app, "--workers", hosts, "--ssh-config", sshbed.ssh_config,
                 "--name", name, "-q", *runner, "--", *app_args, cwd=tmp_path, timeout=300)
    assert p.returncode == 0, p.stderr
    return tmp_path / "runs" / name


def spawned(run: Path) -> dict[str, list[tuple[str, str]]]:
    """Spawned task id -> its attempts' (outcome, parent)."""
    db = journal(run)
    out: dict[str, list[tuple[str, str]]] = {}
    for r in db.execute("SELECT t.id, t.parent, a.outcome FROM tasks t JOIN attempts a "
                        "ON a.task_id = t.id WHERE t.parent IS NOT NULL"):
        out.setdefault(r["id"], []).append((r["outcome"], r["parent"]))
    return out


def test_split_arithmetic() -> None:
    assert split.wanted(env=(None, 1.0, 10.0)) == 1  # nothing measured yet: no split
    assert split.wanted(env=(0.1, 1.0, 10.0)) == 1  # predicted 1 s: not over
    assert split.wanted(env=(0.1, 1.0, 25.0)) == 3
    assert split.cut(2.5, 1.0) == (3, 0.5)
    assert split.even_ranges(0, 23, 4) == [(0, 6), (6, 12), (12, 17), (17, 23)]
    assert split.even_ranges(5, 7, 9) == [(5, 6), (6, 7)]  # never more pieces than items
    w = [1, 1, 1, 1, 10, 1, 1]
    r = split.weighted_ranges(w, 3)
    assert r[0][0] == 0 and r[-1][1] == len(w)  # contiguous, everything covered once
    assert all(a[1] == b[0] for a, b in zip(r, r[1:], strict=False))
    assert (4, 5) in r  # the heavy item alone


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "copied"])
def test_rebuild_objects_splits_by_object_range_shards_hold_the_same_rows(sshbed, tmp_path,
                                                                          shared) -> None:
    # The app's --task-seconds 0.0033 plans blocks of ~600 detections (at its default rate,
    # 185 000/s): 6 tasks, so most start after the head has measured one (with copy-back, a
    # slot is free before its task's rate is learnt).  The runner's --task-seconds 0.1 then
    # predicts a block (~0.2-0.4 s of it here, start-up included) at 2-4 pieces.
    app = ["--source", "sample", "--task-seconds", "0.0033"]
    # --task-seconds 1e9: no splitting (the default sizes pieces from the measured rate).
    whole = bed_run(sshbed, tmp_path, "whole", "rebuild_objects", NO_SPLIT, app, shared)
    cut = bed_run(sshbed, tmp_path, "cut", "rebuild_objects", ["--task-seconds", "0.1"], app,
                  shared)
    assert not spawned(whole)
    kids = spawned(cut)
    assert len(kids) >= 2, kids
    # Every piece ran once and succeeded; a piece's shard sits beside its parent's.
    assert all(v == [("ok", v[0][1])] for v in kids.values()), kids
    assert all(k.rpartition(".")[0] == v[0][1] for k, v in kids.items())  # pieces don't split
    shards = {p.stem for p in (cut / "shards").glob("*.csv")}
    assert set(kids) <= shards and all(k.rpartition(".")[0] in shards for k in kids)
    a, b = read_shards(whole / "shards"), read_shards(cut / "shards")
    assert len(a) > 100 and set(a) == set(b)
    assert [(k, c) for k in a for c in a[k] if a[k][c] != b[k][c]] == []
    # Each piece has a timeout, as the planner's blocks have: 10x its predicted time, >= 60 s.
    timeouts = [r[0] for r in journal(cut).execute(
        "SELECT timeout FROM tasks WHERE parent IS NOT NULL")]
    assert timeouts and all(t is not None and t >= 60.0 for t in timeouts), timeouts
    # No object in two shards: the pieces' ranges do not overlap.
    n_rows = sum(len(p.read_text().splitlines()) - 1 for p in (cut / "shards").glob("*.csv"))
    assert n_rows == len(b)


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "copied"])
def test_scarp_search_splits_by_strike_range_gather_finds_every_part(sshbed, tmp_path,
                                                                     shared) -> None:
    dem = Path(__file__).parent.parent / "apps" / "scarp_search" / "data" / "synthetic.tif"
    app = ["--dem", str(dem), "--angle-step", "12", "--log-kt-step", "0.6"]
    # One slot plans 2 strike blocks; the second starts with the first's measured rate (learnt
    # at its exit, before any copy-back) and splits.  The gather runs as a journaled task on
    # the worker and must find the spawned parts too (copied to it without a shared one).
    whole = bed_run(sshbed, tmp_path, "whole", "scarp_search", NO_SPLIT, app, shared)
    cut = bed_run(sshbed, tmp_path, "cut", "scarp_search", ["--task-seconds", "0.05"], app,
                  shared)
    assert not spawned(whole)
    kids = spawned(cut)
    assert len(kids) >= 2, kids
    assert all(v == [("ok", v[0][1])] for v in kids.values()), kids
    parts = {p.stem for p in (cut / "parts").glob("*.npz")}
    assert set(kids) <= parts
    for name in ("detections.csv",):
        assert (cut / name).read_bytes() == (whole / name).read_bytes()
    with rasterio.open(whole / "best_fit.tif") as x, rasterio.open(cut / "best_fit.tif") as y:
        np.testing.assert_array_equal(x.read(), y.read())


@pytest.mark.parametrize("arrival", [True, False])
def test_rebuild_does_not_split_a_block_it_reads_by_scanning_the_table(tmp_path, monkeypatch,
                                                                       arrival):
    """On a table not stored by object every piece would scan the whole table again: the
    block stays whole.  Stored by object, the same request splits it."""
    from lasair_parallel.apps.rebuild_objects import splitting
    from lasair_parallel.apps.rebuild_objects.sources import open_source
    from lasair_parallel.apps.rebuild_objects.sources.dbwrite import write_sqlite
    from lasair_parallel.apps.rebuild_objects.sources.replicate import (
        arrival_order,
        replicated_sample,
    )
    from lasair_parallel.apps.rebuild_objects.sources.sql_arrow import connectorx_installed

    if not connectorx_installed():
        pytest.fail("connectorx is a dependency: the Arrow reader decides scans")
    det = replicated_sample(3000)
    db = tmp_path / "c.db"
    write_sqlite(db, det, order=arrival_order(det) if arrival else None)
    spawned_tasks: list = []
    monkeypatch.setattr(splitting, "spawn", lambda *ts: spawned_tasks.extend(ts))
    monkeypatch.setattr(split, "wanted", lambda *a, **k: 4)  # the head asks for 4 pieces
    src = open_source(f"sqlite:///{db}")
    try:
        ids = sorted(str(i) for i in det.ids)
        last = splitting.split_range(src, f"sqlite:///{db}", ids[0], ids[-1],
                                     str(tmp_path / "shards" / "b.csv"), 0.0)
    finally:
        src.close()
    if arrival:
        assert last == ids[-1] and spawned_tasks == []
    else:
        assert last < ids[-1] and len(spawned_tasks) == 3
