"""Blocks of a SQLite table cut from its objectId index (sources.sqlite_blocks) against the
objects the listing names: every object once, in order, the listing's counts, the promised
sizes; and the cases where the index cannot answer (the planner lists the objects then)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_blocks_cover, run_rebuild_task
from lasair_parallel.apps.rebuild_objects import app
from lasair_parallel.apps.rebuild_objects.sources import open_source
from lasair_parallel.apps.rebuild_objects.sources.dbwrite import LIVE_INDEX_COLUMNS, write_sqlite
from lasair_parallel.apps.rebuild_objects.sources.replicate import (
    arrival_order,
    replicated_sample,
)
from lasair_parallel.apps.rebuild_objects.sources.sqlite_blocks import walk_blocks
from lasair_parallel.head.appload import plan_context, resolve


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Path:
    """~15,000 real-shaped rows in arrival order, index on (objectId, jd) only."""
    det = replicated_sample(1500)
    db = tmp_path_factory.mktemp("blocks") / "live.db"
    write_sqlite(db, det, order=arrival_order(det), index=LIVE_INDEX_COLUMNS)
    return db


def connector(db: Path):
    return lambda: sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)


def listing(db: Path) -> tuple[list[str], np.ndarray]:
    ids, counts = open_source(f"sqlite:///{db}?reader=rows").list_objects()
    return [str(i) for i in ids], counts


@pytest.mark.parametrize("cut", ["1", "2", "3", "7", "997.3"])
def test_blocks_cover_the_listing_in_order_with_its_counts(live, cut):
    ids, counts = listing(live)
    max_rows = float(cut) if "." in cut else int(counts.sum()) / int(cut)
    blocks = walk_blocks(connector(live), "candidates", lambda n: max_rows)
    assert_blocks_cover(blocks, ids, counts, cut)


def test_planner_cuts_a_scanned_table_without_the_listing(live, tmp_path):
    """The planned tasks are the walk's blocks, one per slot, covering every detection; the
    planning process never imports connectorx or pyarrow (their imports were most of the
    listing's cost)."""
    code = (
        "import pathlib, sys; from lasair_parallel.apps.rebuild_objects import app;"
        "from lasair_parallel.head.appload import plan_context, resolve;"
        f"a = app.build_parser().parse_args(['--source', 'sqlite:///{live}']);"
        f"ts = app.plan(a, plan_context(resolve('rebuild_objects'), pathlib.Path(sys.argv[1]), 3, 1));"
        "print(len(ts), int(sum(t.weight for t in ts)),"
        " sorted(m for m in ('connectorx', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, check=True).stdout.split(maxsplit=2)
    _, counts = listing(live)
    assert out == ["3", str(int(counts.sum())), "[]\n"]


def _copy(src: Path, dst: Path, *sql: str) -> Path:
    conn = sqlite3.connect(dst)
    conn.execute(f"ATTACH '{src}' AS s")
    for s in sql:
        conn.execute(s)
    conn.commit()
    conn.close()
    return dst


def test_rows_without_candid_weigh_in_the_walk_and_the_shards_skip_them(live, tmp_path):
    """The index does not hold candid, so the walk counts every row (telling NULLs apart
    would scan the table); the blocks still cover every object once, and the shards of the
    walk's blocks are the listing's: every read skips the rows without a candid."""
    db = tmp_path / "nulls.db"
    _copy(live, db, "CREATE TABLE candidates AS SELECT * FROM s.candidates",
          "CREATE INDEX c_o ON candidates (objectId, jd)",
          "UPDATE candidates SET candid = NULL WHERE rowid % 10 = 0",
          # one object left with no detection at all, first in the index's order
          "UPDATE candidates SET candid = NULL WHERE objectId = "
          "(SELECT min(objectId) FROM candidates)")
    rows = sqlite3.connect(db).execute("SELECT count(*) FROM candidates").fetchone()[0]
    blocks = walk_blocks(connector(db), "candidates", lambda n: n / 2)
    assert blocks is not None and sum(b.rows for b in blocks) == rows
    ids, counts = listing(db)  # detections only: the object without one is not listed
    assert counts.sum() < rows * 0.95
    args = app.build_parser().parse_args(["--source", f"sqlite:///{db}"])
    tasks = app.plan(args, plan_context(resolve("rebuild_objects"), tmp_path / "walk", 2, 1))
    assert len(tasks) == 2 and sum(t.weight for t in tasks) == rows

    def shards(tasks) -> bytes:
        out = []
        for t in tasks:
            argv = run_rebuild_task(t)
            out.append(Path(argv[argv.index("--output") + 1]).read_bytes())
        header = out[0].split(b"\n", 1)[0]
        body = sorted(line for s in out for line in s.split(b"\n")[1:] if line)
        return b"\n".join([header, *body])

    by_rows = app.plan(app.build_parser().parse_args(["--source", f"sqlite:///{db}?reader=rows"]),
                       plan_context(resolve("rebuild_objects"), tmp_path / "rows", 2, 1))
    got = shards(tasks)
    assert got == shards(by_rows)
    assert got.count(b"\n") == len(ids)  # a row per object with a detection, one header


@pytest.mark.parametrize("ddl", [
    "CREATE TABLE candidates AS SELECT * FROM s.candidates",  # no index: each step would sort
    "CREATE TABLE candidates (objectId TEXT COLLATE NOCASE, candid BIGINT, jd REAL)",
    "CREATE TABLE candidates (objectId TEXT, jd REAL)",  # no candid column
])
def test_the_walk_declines_what_the_index_cannot_answer(live, tmp_path, ddl):
    db = tmp_path / "t.db"
    extra = [] if "AS SELECT" in ddl else ["CREATE INDEX c_o ON candidates (objectId, jd)"]
    _copy(live, db, ddl, *extra)
    assert walk_blocks(connector(db), "candidates", lambda n: n) is None


def test_an_empty_table_has_no_blocks(tmp_path):
    db = tmp_path / "e.db"
    _copy(tmp_path / "none.db", db,
          "CREATE TABLE candidates (objectId TEXT, candid BIGINT NOT NULL, jd REAL)",
          "CREATE INDEX c_o ON candidates (objectId, jd)")
    assert walk_blocks(connector(db), "candidates", lambda n: n) == []
