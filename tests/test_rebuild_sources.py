"""rebuild_objects sources: SQLite, MariaDB (real server), Cassandra (pure parts), synthetic."""

from __future__ import annotations

import os

import numpy as np
import pytest
from lasair_parallel.apps.rebuild_objects.features import compute_features
from lasair_parallel.apps.rebuild_objects.sources import open_source, sql
from lasair_parallel.apps.rebuild_objects.sources.cassandra import (
    CassandraSource,
    backoff,
    rows_to_detections,
    split_results,
)
from lasair_parallel.apps.rebuild_objects.sources.dbwrite import write_mysql, write_sqlite


def features_of(src, first=None, last=None):
    ids, _ = src.list_objects()
    det = src.read_range(first or ids[0], last or ids[-1])
    return compute_features(det)


def assert_same_features(a, b):
    ids_a, fa = a
    ids_b, fb = b
    assert list(ids_a) == list(ids_b)
    for name in fa:
        va, vb = fa[name], fb[name]
        if va.dtype.kind == "f":
            np.testing.assert_array_equal(va, vb, err_msg=name)  # NaN == NaN here
        else:
            assert va.tolist() == vb.tolist(), name


def test_synthetic_is_deterministic_across_blocks():
    src = open_source("synthetic:9000:1")
    ids, counts = src.list_objects()
    assert counts.min() >= 1 and counts.max() <= 300
    whole = src.read_index_range(0, 9000)
    part = src.read_range(ids[4000], ids[8999])
    np.testing.assert_array_equal(part.cols["jd"], whole.cols["jd"][counts[:4000].sum():])
    assert part.n_rows == counts[4000:].sum()


@pytest.fixture(scope="module")
def sample_sqlite(tmp_path_factory):
    src = open_source("sample")
    ids, _ = src.list_objects()
    path = tmp_path_factory.mktemp("db") / "sample.db"
    write_sqlite(path, src.read_range(ids[0], ids[-1]))
    return path


def test_sqlite_source_matches_sample(sample_sqlite, monkeypatch):
    monkeypatch.setattr(sql, "PAGE", 50)  # several keyset pages
    db = open_source(f"sqlite:///{sample_sqlite}")
    ids, counts = db.list_objects()
    ref_ids, ref_counts = open_source("sample").list_objects()
    assert list(ids) == list(ref_ids) and counts.tolist() == ref_counts.tolist()
    assert_same_features(features_of(db), features_of(open_source("sample")))
    # a block read by key range holds exactly its objects
    block = db.read_range(ids[10], ids[19])
    assert list(block.ids) == list(ids[10:20]) and block.n_rows == counts[10:20].sum()
    db.close()


def test_sqlite_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        open_source(f"sqlite:///{tmp_path}/nope.db")


def test_mysql_url_refuses_password():
    with pytest.raises(ValueError, match="MYSQL_PWD"):
        open_source("mysql://u:secret@127.0.0.1:3306/db")


def test_mysql_source_against_mariadb(mariadb_server, monkeypatch):
    db = mariadb_server.create_database("rebuild_src")
    sample = open_source("sample")
    ids, _ = sample.list_objects()
    with mariadb_server.connect(db) as conn:
        write_mysql(conn, sample.read_range(ids[0], ids[-1]))
    monkeypatch.setenv("MYSQL_PWD", mariadb_server.password)
    monkeypatch.setenv("HOME", "/nonexistent")  # no option file: the password comes from env
    monkeypatch.setattr(sql, "PAGE", 100)
    src = open_source(mariadb_server.url(db))
    got_ids, got_counts = src.list_objects()
    assert list(got_ids) == list(ids)
    assert_same_features(features_of(src), features_of(sample))
    src.close()


def test_cassandra_row_conversion_and_retries():
    ids = ["ZTFa", "ZTFb", "ZTFc"]
    row = (11, 2460000.5, 1, 18.0, 0.1, "t", 10.0, 20.0, 1000, 0.9, None, None, None, None,
           None, None)
    parts = [[row, (12, *row[1:])], [(None, *row[1:])], [(13, *row[1:5], "f", *row[6:])]]
    det = rows_to_detections(ids, parts)
    assert det.counts.tolist() == [2, 0, 1]
    assert det.cols["positive"].tolist() == [True, True, False]
    assert np.isnan(det.cols["drb"]).all() and det.candid.tolist() == [11, 12, 13]
    out_ids, f = compute_features(det)
    assert list(out_ids) == ["ZTFa", "ZTFc"]

    class ReadTimeout(Exception):
        pass

    done, retry, fatal = split_results(ids, [(True, [row]), (False, ReadTimeout()),
                                             (False, KeyError("x"))])
    assert list(done) == ["ZTFa"] and retry == ["ZTFb"] and isinstance(fatal[0], KeyError)
    assert [backoff(i) for i in (1, 2, 3, 10)] == [0.5, 1.0, 2.0, 8.0]
    src = CassandraSource.from_spec("cassandra://h1,h2:9043/lasair?table=cands")
    assert (src.hosts, src.port, src.keyspace, src.table) == (["h1", "h2"], 9043, "lasair",
                                                              "cands")


@pytest.mark.skipif(not os.environ.get("CASSANDRA_HOSTS"),
                    reason="CASSANDRA_HOSTS not set: no Cassandra server here")
def test_cassandra_source_against_server():
    from cassandra.cluster import Cluster

    hosts = os.environ["CASSANDRA_HOSTS"].split(",")
    cluster = Cluster(hosts)
    s = cluster.connect()
    s.execute("CREATE KEYSPACE IF NOT EXISTS rebuild_test WITH replication = "
              "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    s.execute("DROP TABLE IF EXISTS rebuild_test.candidates")
    s.execute("CREATE TABLE rebuild_test.candidates (objectid text, candid bigint, jd double, "
              "fid int, magpsf double, sigmapsf double, isdiffpos text, ra double, dec double, "
              "nid int, rb double, drb double, ssnamenr text, sgmag1 double, srmag1 double, "
              "sgscore1 double, distpsnr1 double, PRIMARY KEY (objectid, jd, candid))")
    from lasair_parallel.apps.rebuild_objects.sources.dbwrite import candidate_rows

    sample = open_source("sample")
    ids, _ = sample.list_objects()
    ins = s.prepare("INSERT INTO rebuild_test.candidates (objectid, candid, jd, fid, magpsf, "
                    "sigmapsf, isdiffpos, ra, dec, nid, rb, drb, ssnamenr, sgmag1, srmag1, "
                    "sgscore1, distpsnr1) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
    for r in candidate_rows(sample.read_range(ids[0], ids[-1])):
        s.execute(ins, r)
    cluster.shutdown()
    src = open_source(f"cassandra://{os.environ['CASSANDRA_HOSTS']}/rebuild_test")
    got, _ = src.list_objects()
    assert list(got) == list(ids)
    assert_same_features(compute_features(src.read_ids(list(got))),
                         features_of(open_source("sample")))
    src.close()
