"""A real 3-node Galera cluster: load through one node, read through another, survive a node kill.

The kill test runs last in this file: it leaves the session's cluster with two nodes.
"""

from __future__ import annotations

import signal
import subprocess
import time

import pymysql
from test_csv_to_database_common import cli_argv, cli_env, run_cli, schema_file
from test_csv_to_database_exactly_once import write_events


def _query(node, db: str, sql: str) -> list[tuple]:
    with node.connect(db) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION wsrep_sync_wait = 1")  # causal read: see every commit so far
        cur.execute(sql)
        return list(cur.fetchall())


def _state(node, db: str) -> tuple[int, int, int] | None:
    try:
        shards, rows = _query(node, db, "SELECT COUNT(*), COALESCE(SUM(nrows), 0)"
                                        " FROM csv_to_database_ledger")[0]
        return int(shards), int(rows), int(_query(node, db, "SELECT COUNT(*) FROM events")[0][0])
    except pymysql.err.MySQLError:
        return None


EVENTS = """CREATE TABLE events (id BIGINT AUTO_INCREMENT PRIMARY KEY,
    objectId VARCHAR(30) NOT NULL, jd DOUBLE, mag DOUBLE)"""


def test_load_through_one_node_read_through_another(galera_cluster, tmp_path):
    g = galera_cluster
    g.wait_synced()
    g.create_database("g_basic")
    total = write_events(tmp_path / "s", 4, 2000)
    url = g.url("g_basic", order=[0, 1, 2])
    proc = run_cli(tmp_path / "s", "--db", url, "--table", "events", "--create", "--schema",
                   schema_file(tmp_path, EVENTS, "events.sql"), "--parallel", "2")
    assert proc.returncode == 0, proc.stderr
    assert _state(g.nodes[2], "g_basic") == (4, total, total)
    assert _state(g.nodes[1], "g_basic") == (4, total, total)
    # repeated --db (one per node) is the same cluster: everything is skipped
    urls = [a for n in g.nodes for a in ("--db", f"mysql://lasair@127.0.0.1:{n.port}/g_basic")]
    again = run_cli(tmp_path / "s", *urls, "--table", "events")
    assert again.returncode == 0 and "4 skipped" in again.stdout, again.stderr


def test_first_node_down_before_the_run_is_skipped(galera_cluster, tmp_path):
    g = galera_cluster
    g.wait_synced()
    g.create_database("g_down")
    write_events(tmp_path / "s", 2, 100)
    # a dead address first in the list: the loader moves on to a live node
    url = g.url("g_down").replace("@", "@127.0.0.1:1,", 1)
    proc = run_cli(tmp_path / "s", "--db", url, "--table", "events", "--create", "--schema",
                   schema_file(tmp_path, EVENTS, "events.sql"))
    assert proc.returncode == 0, proc.stderr
    assert _state(g.nodes[0], "g_down") == (2, 200, 200)


def test_node_killed_mid_load_fails_over_and_loads_every_row_once(galera_cluster, tmp_path):
    g = galera_cluster
    g.wait_synced()  # all three Synced: the kill then leaves a primary pair
    g.create_database("g_kill")
    nshards, nrows = 12, 20000
    total = write_events(tmp_path / "s", nshards, nrows)
    victim, reader = g.nodes[1], g.nodes[2]
    url = g.url("g_kill", order=[1, 0, 2])  # load through node 1, the one we kill
    proc = subprocess.Popen(
        cli_argv(tmp_path / "s", "--db", url, "--table", "events", "--create", "--schema",
                 schema_file(tmp_path, EVENTS, "events.sql"), "--parallel", "2"),
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    state = None
    while time.monotonic() < deadline and proc.poll() is None:
        state = _state(reader, "g_kill")
        if state and state[0] >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the load finished before the kill; make the shards bigger"
    assert state is not None and state[0] < nshards
    victim.stop(signal.SIGKILL)
    out, err = proc.communicate(timeout=150)
    assert proc.returncode == 0, f"{out}{err}\ncluster after the kill: {g.status()}"
    assert f"shards: {nshards} total" in out and "0 failed" in out
    # (a shard whose commit reached the cluster just before the kill is "skipped" on retry)
    assert _state(reader, "g_kill") == (nshards, total, total)
    assert _state(g.nodes[0], "g_kill") == (nshards, total, total)
    distinct = _query(reader, "g_kill", "SELECT COUNT(DISTINCT objectId) FROM events")[0][0]
    assert distinct == total
