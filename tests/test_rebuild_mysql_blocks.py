"""Blocks of a MariaDB table cut from its objectId index (sources.mysql_blocks), against the
objects the server's listing names: every object once, in its order, with its counts; the
planner's tasks without the listing; the table the walk cannot cut (the planner lists it)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import assert_blocks_cover
from lasair_parallel.apps.rebuild_objects.sources import open_source
from lasair_parallel.apps.rebuild_objects.sources.dbwrite import LIVE_INDEX_COLUMNS, write_mysql
from lasair_parallel.apps.rebuild_objects.sources.mysql_blocks import walk_blocks
from lasair_parallel.apps.rebuild_objects.sources.replicate import (
    arrival_order,
    replicated_sample,
)


@pytest.fixture(scope="module")
def live(mariadb_server) -> str:
    """~15,000 real-shaped rows in arrival order, index on (objectId, jd) only; a copy of
    them with no index at all (``noidx``)."""
    det = replicated_sample(1500)
    db = mariadb_server.create_database("rebuild_blocks")
    with mariadb_server.connect(db) as conn:
        write_mysql(conn, det, order=arrival_order(det), index=LIVE_INDEX_COLUMNS)
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE noidx AS SELECT * FROM candidates")
            cur.execute("ANALYZE TABLE candidates")
        conn.commit()
    return db


def listing(server, db: str) -> tuple[list[str], list[int]]:
    ids, counts = open_source(server.url(db) + "?reader=rows").list_objects()
    return [str(i) for i in ids], [int(c) for c in counts]


@pytest.mark.parametrize("cut", ["1", "2", "3", "7", "997.3"])
def test_blocks_cover_the_servers_listing_in_order_with_its_counts(mariadb_server, live, cut,
                                                                   monkeypatch):
    monkeypatch.setenv("MYSQL_PWD", mariadb_server.password)
    ids, counts = listing(mariadb_server, live)
    max_rows = float(cut) if "." in cut else sum(counts) / int(cut)
    blocks = walk_blocks(lambda: mariadb_server.connect(live), "candidates", lambda n: max_rows)
    assert_blocks_cover(blocks, ids, counts, cut)  # in the server's order: its listing's


def test_the_planner_cuts_the_table_without_listing_it(mariadb_server, live, tmp_path,
                                                       monkeypatch):
    """One task per slot, covering every detection; the planning process imports neither
    connectorx, pyarrow nor numpy (the listing's cost: 0.47 s of the benchmark's plan)."""
    code = (
        "import pathlib, sys; from lasair_parallel.apps.rebuild_objects import app;"
        "from lasair_parallel.head.appload import plan_context, resolve;"
        "a = app.build_parser().parse_args(['--source', sys.argv[2]]);"
        "ts = app.plan(a, plan_context(resolve('rebuild_objects'), pathlib.Path(sys.argv[1]), 3, 1));"
        "print(len(ts), int(sum(t.weight for t in ts)),"
        " sorted(m for m in ('connectorx', 'pyarrow', 'numpy') if m in sys.modules))")
    env = dict(os.environ, MYSQL_PWD=mariadb_server.password)
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path), mariadb_server.url(live)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    monkeypatch.setenv("MYSQL_PWD", mariadb_server.password)
    _, counts = listing(mariadb_server, live)
    assert p.stdout.split(maxsplit=2) == ["3", str(sum(counts)), "[]\n"]


def test_a_table_without_an_objectid_index_is_listed_instead(mariadb_server, live, tmp_path,
                                                             monkeypatch):
    """Each step of the walk would sort the table: no blocks from it; the planner lists the
    objects, and its tasks still cover every one."""
    monkeypatch.setenv("MYSQL_PWD", mariadb_server.password)
    assert walk_blocks(lambda: mariadb_server.connect(live), "noidx", lambda n: n / 2) is None
    from lasair_parallel.apps.rebuild_objects import app
    from lasair_parallel.head.appload import plan_context, resolve

    args = app.build_parser().parse_args(["--source", mariadb_server.url(live) + "?table=noidx"])
    tasks = app.plan(args, plan_context(resolve("rebuild_objects"), tmp_path, 2, 1))
    assert sum(t.weight for t in tasks) == sum(listing(mariadb_server, live)[1])
