"""Arrow reads of light curves (connectorx): the same Detections and features as the row path
and as the per-object reference, on a real-shaped unclustered table (SQLite and MariaDB)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from lasair_parallel.apps.rebuild_objects.features import compute_features
from lasair_parallel.apps.rebuild_objects.sources import open_source
from lasair_parallel.apps.rebuild_objects.sources.dbwrite import (
    LIVE_INDEX_COLUMNS,
    write_mysql,
    write_sqlite,
)
from lasair_parallel.apps.rebuild_objects.sources.replicate import (
    arrival_order,
    replicated_sample,
)
from reference_features import reference_features, rows_of

pytest.importorskip("connectorx")  # the Arrow path's library; without it the row path runs

N_OBJECTS = 1500  # ~4 copies of the 364 real objects, ~15,000 rows


def same_features(a, b) -> None:
    ids_a, fa = a
    ids_b, fb = b
    assert list(ids_a) == list(ids_b)
    assert fa.keys() == fb.keys()
    for name in fa:
        if fa[name].dtype.kind == "f":
            np.testing.assert_array_equal(fa[name], fb[name], err_msg=name)  # NaN == NaN
        else:
            assert fa[name].tolist() == fb[name].tolist(), name


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The replicated sample in arrival order (index on (objectId, jd) only), and sorted by
    object (clustered)."""
    det = replicated_sample(N_OBJECTS)
    d = tmp_path_factory.mktemp("live")
    write_sqlite(d / "live.db", det, order=arrival_order(det), index=LIVE_INDEX_COLUMNS)
    write_sqlite(d / "clustered.db", det, index=LIVE_INDEX_COLUMNS)
    return det, d


def read(spec: str, first=None, last=None):
    src = open_source(spec)
    ids, _ = src.list_objects()
    det = src.read_range(first or str(ids[0]), last or str(ids[-1]))
    how = src.last_read
    src.close()
    return det, how


def test_replicated_sample_is_real_shaped(live):
    det, _ = live
    assert det.ids.size == N_OBJECTS and len(set(det.ids)) == N_OBJECTS
    assert 9.0 < det.n_rows / N_OBJECTS < 11.0  # the sample's ~10 detections per object
    assert len(set(det.candid.tolist())) == det.n_rows
    order = arrival_order(det)
    obj = np.repeat(np.arange(N_OBJECTS), det.counts)[order]
    # arrival order interleaves objects: almost no row follows one of its own object
    assert np.mean(obj[1:] == obj[:-1]) < 0.2


@pytest.mark.parametrize("db", ["live", "clustered"])
def test_every_reader_gives_the_row_paths_features(live, db):
    det, d = live
    spec = f"sqlite:///{d}/{db}.db"
    ref, how = read(spec + "?reader=rows")
    assert how == "rows"
    want = compute_features(ref)
    for reader in ("scan", "seek", "auto"):
        got, how = read(f"{spec}?reader={reader}")
        expected = reader if reader != "auto" else "scan" if db == "live" else "seek"
        assert how == expected, reader
        assert list(got.ids) == list(ref.ids) and got.counts.tolist() == ref.counts.tolist()
        same_features(compute_features(got), want)


@pytest.mark.parametrize("db", ["live", "clustered"])
def test_listing_is_the_same_whichever_reader(live, db):
    _, d = live
    listings = []
    for reader in ("rows", "scan", "auto"):
        src = open_source(f"sqlite:///{d}/{db}.db?reader={reader}")
        ids, counts = src.list_objects()
        src.close()
        listings.append((list(ids), counts.tolist()))
    assert listings[0] == listings[1] == listings[2]
    assert len(listings[0][0]) == N_OBJECTS


def test_auto_reads_a_small_block_of_an_unclustered_table_by_rows(live):
    det, d = live
    ids = [str(i) for i in det.ids]
    got, how = read(f"sqlite:///{d}/live.db", ids[10], ids[29])
    assert how == "rows" and list(got.ids) == ids[10:30]
    got, how = read(f"sqlite:///{d}/clustered.db", ids[10], ids[29])
    assert how == "seek" and list(got.ids) == ids[10:30]


def test_scan_matches_the_per_object_reference(live):
    det, d = live
    got, how = read(f"sqlite:///{d}/live.db?reader=scan")
    assert how == "scan"
    ids, feats = compute_features(got)
    rows = rows_of(det)
    for k in range(0, N_OBJECTS, 7):  # every 7th object: the reference is slow
        oid = str(ids[k])
        ref = reference_features(rows[oid])
        for name, v in ref.items():
            if name == "objectId":
                continue
            mine = feats[name][k]
            if v is None:
                assert mine is None or (isinstance(mine, float) and np.isnan(mine)), (oid, name)
            elif isinstance(v, float):
                assert mine == pytest.approx(v, rel=1e-12, abs=1e-12), (oid, name)
            else:
                assert mine == v, (oid, name)


def same_detections(a, b) -> None:
    assert list(a.ids) == list(b.ids) and a.counts.tolist() == b.counts.tolist()
    assert a.cols.keys() == b.cols.keys()
    for name in a.cols:
        np.testing.assert_array_equal(a.cols[name], b.cols[name], err_msg=name)
    assert a.ssnamenr.tolist() == b.ssnamenr.tolist()
    assert (a.candid is None) == (b.candid is None)
    if a.candid is not None:
        assert a.candid.tolist() == b.candid.tolist()


@pytest.mark.parametrize("db", ["live", "clustered"])
def test_a_scan_in_rowid_parts_reads_what_one_query_reads(live, db):
    _, d = live
    src = open_source(f"sqlite:///{d}/{db}.db?reader=scan")
    parts = src.arrow.split()
    assert len(parts) == 2 and parts[0].startswith("rowid <") and parts[1].startswith("rowid >=")
    ids, _ = src.list_objects()
    parted = src.read_range(str(ids[3]), str(ids[-4]))
    assert parted.candid is None  # the parts joined in storage order keep arrival order
    src.arrow.split = None
    single = src.read_range(str(ids[3]), str(ids[-4]))
    assert src.arrow.split is None and src.list_objects()[0].tolist() == ids.tolist()
    src.close()
    same_detections(parted, single)


def test_stable_argsort_is_numpys_stable_argsort():
    from lasair_parallel.apps.rebuild_objects.sources.arrow_read import stable_argsort

    rng = np.random.default_rng(3)
    for n in (5, 1 << 16, (1 << 16) + 1, 300_000):  # one radix pass, two passes
        key = rng.integers(0, n, 200_000)
        np.testing.assert_array_equal(stable_argsort(key, n), np.argsort(key, kind="stable"))


def test_an_arrow_read_never_imports_pandas(live):
    """pyarrow imports pandas (~0.2 s) on to_numpy and on any Python value turned into Arrow;
    the task's Arrow read must avoid both, and pyarrow.compute's wrappers (60 ms) too."""
    import subprocess
    import sys

    _, d = live
    code = ("import sys; from lasair_parallel.apps.rebuild_objects.sources import open_source;"
            f"s = open_source('sqlite:///{d}/live.db?reader=scan'); i, _ = s.list_objects();"
            "det = s.read_range(str(i[0]), str(i[-1])); assert s.last_read == 'scan';"
            "print(det.n_rows, 'pandas' in sys.modules, 'pyarrow.compute' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == [str(live[0].n_rows), "False", "False"]


def test_text_typed_columns_are_cast_like_the_row_path(tmp_path, live):
    """A table whose numeric columns are declared TEXT (as `sqlite3 .import` makes them)."""
    det, _ = live
    from lasair_parallel.apps.rebuild_objects.sources.dbwrite import CANDIDATES_DDL

    ddl = CANDIDATES_DDL
    for c in ("jd DOUBLE", "magpsf DOUBLE", "rb DOUBLE", "nid INT", "sgmag1 DOUBLE"):
        ddl = ddl.replace(c, c.split()[0] + " TEXT")
    write_sqlite(tmp_path / "text.db", det, order=arrival_order(det), index=LIVE_INDEX_COLUMNS,
                 ddl=ddl)
    with sqlite3.connect(tmp_path / "text.db") as conn:
        assert conn.execute("SELECT typeof(magpsf) FROM candidates LIMIT 1").fetchone() == (
            "text",)
    ref, _ = read(f"sqlite:///{tmp_path}/text.db?reader=rows")
    got, how = read(f"sqlite:///{tmp_path}/text.db?reader=scan")
    assert how == "scan"
    same_features(compute_features(got), compute_features(ref))


def nulls_db(path: Path, det) -> Path:
    """The live table in arrival order with NULL magpsf and isdiffpos, -inf rb and 'null'
    ssnamenr on some rows."""
    write_sqlite(path, det, order=arrival_order(det), index=LIVE_INDEX_COLUMNS)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE candidates SET magpsf = NULL WHERE rowid % 11 = 0")
        conn.execute("UPDATE candidates SET rb = -1e999 WHERE rowid % 13 = 0")
        conn.execute("UPDATE candidates SET ssnamenr = 'null' WHERE rowid % 17 = 0")
        conn.execute("UPDATE candidates SET isdiffpos = NULL WHERE rowid % 19 = 0")
    return path


def test_nulls_and_minus_inf_read_as_the_row_path(tmp_path, live):
    path = nulls_db(tmp_path / "nulls.db", live[0])
    ref, _ = read(f"sqlite:///{path}?reader=rows")
    got, _ = read(f"sqlite:///{path}?reader=scan")
    same_features(compute_features(got), compute_features(ref))


def test_a_block_gathered_on_two_threads_is_the_one_thread_block(tmp_path, live,
                                                                 monkeypatch):
    """Columns gathered on two threads (blocks of base.THREADED_ROWS rows and more) are the
    very arrays one thread gathers: NULLs, -inf as NULL, and 'null' ssnamenr included."""
    from lasair_parallel.apps.rebuild_objects.sources import arrow_read, base

    path = nulls_db(tmp_path / "g.db", live[0])
    calls = []
    real = arrow_read.run_jobs

    def spy(jobs, threaded):
        calls.append(threaded)
        return real(jobs, threaded)

    monkeypatch.setattr(arrow_read, "run_jobs", spy)
    monkeypatch.setattr(base.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(base, "THREADED_ROWS", 1)
    threaded, _ = read(f"sqlite:///{path}?reader=scan")
    monkeypatch.setattr(base, "THREADED_ROWS", 1 << 62)
    single, _ = read(f"sqlite:///{path}?reader=scan")
    assert calls == [True, False]
    same_detections(threaded, single)


@pytest.mark.parametrize("db", ["nulls", "text"])
def test_a_scan_in_many_chunks_is_the_one_chunk_block(tmp_path, live, monkeypatch, db):
    """connectorx returns 64k-row batches; their columns are read chunk by chunk, never
    joined (arrow_np.pieces).  The scanned table cut into 997-row slices with empty ones
    between gives the very block the same table in one chunk gives: NULLs, -inf as NULL,
    'null' ssnamenr, TEXT-typed columns cast, the late columns' deferred rows."""
    import pyarrow as pa
    from lasair_parallel.apps.rebuild_objects.sources import arrow_read
    from lasair_parallel.apps.rebuild_objects.sources.dbwrite import CANDIDATES_DDL

    det = live[0]
    if db == "nulls":
        path = nulls_db(tmp_path / "n.db", det)
    else:
        ddl = CANDIDATES_DDL
        for c in ("jd DOUBLE", "rb DOUBLE", "nid INT", "sgmag1 DOUBLE"):
            ddl = ddl.replace(c, c.split()[0] + " TEXT")
        path = tmp_path / "t.db"
        write_sqlite(path, det, order=arrival_order(det), index=LIVE_INDEX_COLUMNS, ddl=ddl)
    real = arrow_read.scan_all
    seen = []

    def cut(size):
        def scan(d, sql):
            t = real(d, sql).combine_chunks()
            if size:
                t = pa.concat_tables([x for a in range(0, t.num_rows, size)
                                      for x in (t.slice(a, size), t.slice(a, 0))])
            seen.append(t.column("jd").num_chunks)
            return t
        return scan

    monkeypatch.setattr(arrow_read, "scan_all", cut(0))
    whole, _ = read(f"sqlite:///{path}?reader=scan")
    monkeypatch.setattr(arrow_read, "scan_all", cut(997))
    chunked, _ = read(f"sqlite:///{path}?reader=scan")
    assert seen[0] == 1 and seen[1] > 20
    same_detections(chunked, whole)
    for name in ("sgmag1", "distpsnr1"):
        assert chunked.cols[name].finite().tolist() == np.isfinite(whole.cols[name]).tolist()
    same_features(compute_features(chunked), compute_features(whole))


def test_null_fid_is_refused_like_the_row_path(tmp_path, live):
    det, _ = live
    path = tmp_path / "badfid.db"
    ddl = __import__("lasair_parallel.apps.rebuild_objects.sources.dbwrite",
                     fromlist=["x"]).CANDIDATES_DDL.replace("fid INT NOT NULL", "fid INT")
    write_sqlite(path, det, index=LIVE_INDEX_COLUMNS, ddl=ddl)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE candidates SET fid = NULL WHERE rowid = 5")
    for reader in ("rows", "scan"):
        with pytest.raises(ValueError, match="fid"):
            read(f"sqlite:///{path}?reader={reader}")


def test_unknown_reader_is_refused(live):
    _, d = live
    with pytest.raises(ValueError, match="reader"):
        open_source(f"sqlite:///{d}/live.db?reader=fast")


def test_mysql_arrow_reads_and_no_local_infile(mariadb_server, monkeypatch, live, capfd):
    det, _ = live
    db = mariadb_server.create_database("rebuild_arrow")
    with mariadb_server.connect(db) as conn:
        write_mysql(conn, det, order=arrival_order(det), index=LIVE_INDEX_COLUMNS)
        with conn.cursor() as cur:
            cur.execute("ANALYZE TABLE candidates")
    monkeypatch.setenv("MYSQL_PWD", mariadb_server.password)
    monkeypatch.setenv("HOME", "/nonexistent")
    spec = mariadb_server.url(db)
    ref, how = read(spec + "?reader=rows")
    assert how == "rows"
    rows_listing = open_source(spec + "?reader=rows").list_objects()
    scan_listing = open_source(spec + "?reader=scan").list_objects()
    assert list(rows_listing[0]) == list(scan_listing[0])
    assert rows_listing[1].tolist() == scan_listing[1].tolist()
    want = compute_features(ref)
    for reader in ("scan", "seek", "auto"):
        got, how = read(f"{spec}?reader={reader}")
        assert how == ("scan" if reader == "auto" else reader)
        same_features(compute_features(got), want)
    # the source's own connection never offers LOAD DATA LOCAL to the server
    from pymysql.constants import CLIENT

    src = open_source(spec)
    assert not src.conn().client_flag & CLIENT.LOCAL_FILES
    src.close()
    # a failing Arrow read falls back to rows, and its message never carries the password
    bad = open_source(spec + "?reader=scan")
    bad.arrow.table = "no_such_table"
    ids, _ = bad.list_objects()
    got = bad.read_range(str(ids[0]), str(ids[-1]))
    assert bad.last_read == "rows" and got.n_rows == ref.n_rows
    bad.close()
    err = capfd.readouterr().err
    assert "reading rows" in err and mariadb_server.password not in err
    # rows without a candid are no detections: the listing (counted from the index alone when
    # there are none) counts only the others, as the row path's does
    with mariadb_server.connect(db) as conn, conn.cursor() as cur:
        cur.execute("UPDATE candidates SET candid = NULL WHERE jd < (SELECT MIN(jd) + 5 "
                    "FROM (SELECT jd FROM candidates) AS t)")
        assert cur.rowcount > 0
        conn.commit()
    rows_listing = open_source(spec + "?reader=rows").list_objects()
    scan_listing = open_source(spec + "?reader=scan").list_objects()
    assert list(rows_listing[0]) == list(scan_listing[0])
    assert rows_listing[1].tolist() == scan_listing[1].tolist()
    assert rows_listing[1].sum() < ref.n_rows


def test_ids_equal_under_a_case_insensitive_collation_are_found():
    from lasair_parallel.apps.rebuild_objects.sources.arrow_read import _fold_collides

    ids = [f"ZTF18{i:07d}abc" for i in range(3000)]
    assert not _fold_collides(ids)
    assert _fold_collides([*ids, "ztf180000007abc"])  # case only
    assert _fold_collides(["ZTF1 ", "ZTF1"]) and _fold_collides(["a\t", "A"])  # pad space
    assert _fold_collides(["x\ny", "X\nY"])  # a newline inside an id: compared id by id
    assert not _fold_collides(["a\n", "b"]) and not _fold_collides([])


def test_sqlite_listing_from_the_index_or_a_scan_counts_what_the_row_path_counts(tmp_path, live):
    """The index answers the listing (sqlite_index_listing) only where every row counts; rows
    without a candid, a table without the index, or a COLLATE clause send it to the scan, and
    every listing equals the row path's."""
    det, _ = live

    def listings(path):
        out = []
        for reader in ("rows", "scan"):
            src = open_source(f"sqlite:///{path}?reader={reader}")
            ids, counts = src.list_objects()
            src.close()
            out.append((list(ids), counts.tolist()))
        src = open_source(f"sqlite:///{path}")
        by_index = src.arrow.index_listing()
        src.close()
        assert out[0] == out[1]
        return out[0], by_index

    path = tmp_path / "idx.db"
    write_sqlite(path, det, order=arrival_order(det), index=LIVE_INDEX_COLUMNS)
    want, by_index = listings(path)
    assert by_index is not None and (list(by_index[0]), by_index[1].tolist()) == want
    with sqlite3.connect(path) as conn:  # rows without a candid are no detections
        conn.execute("UPDATE candidates SET candid = NULL WHERE rowid % 7 = 0")
    fewer, by_index = listings(path)
    assert by_index is None and sum(fewer[1]) < sum(want[1]) and set(fewer[0]) <= set(want[0])
    noindex = tmp_path / "noidx.db"
    write_sqlite(noindex, det, order=arrival_order(det), index=LIVE_INDEX_COLUMNS)
    with sqlite3.connect(noindex) as conn:
        conn.execute("DROP INDEX candidates_objectId")
    assert listings(noindex) == (want, None)
    from lasair_parallel.apps.rebuild_objects.sources.dbwrite import CANDIDATES_DDL

    ddls = {"collate": CANDIDATES_DDL.replace("VARCHAR(16) NOT NULL",
                                              "VARCHAR(16) NOT NULL COLLATE BINARY"),
            "notnull": CANDIDATES_DDL.replace("candid BIGINT", "candid BIGINT NOT NULL")}
    for name, ddl in ddls.items():
        p = tmp_path / f"{name}.db"
        write_sqlite(p, det, order=arrival_order(det), index=LIVE_INDEX_COLUMNS, ddl=ddl)
        got, by_index = listings(p)
        assert got == want
        assert (by_index is None) == (name == "collate"), name


def test_a_scan_of_rows_stored_in_no_order_is_the_row_paths_block(tmp_path, live):
    """Rows stored in a random order (not arrival order, not by object): the scan's check that
    the table is in (jd, candid) order fails, each object's rows are sorted here (lexsort),
    and the block is the row path's, row for row and feature for feature."""
    det, _ = live
    path = tmp_path / "shuffled.db"
    order = np.random.default_rng(11).permutation(det.n_rows)
    write_sqlite(path, det, order=order, index=LIVE_INDEX_COLUMNS)
    scanned, how = read(f"sqlite:///{path}?reader=scan")
    rows = read(f"sqlite:///{path}?reader=rows")[0]
    assert how == "scan"
    same_detections(scanned, rows)
    same_features(compute_features(scanned), compute_features(rows))


@pytest.mark.parametrize("collate", ["", " COLLATE NOCASE"])
def test_ids_differing_in_case_are_two_objects_only_where_sqlite_says_so(tmp_path, live, collate,
                                                                         capfd):
    """A BINARY objectId (SQLite's default) keeps 'ZTF..a' and 'ZTF..A' apart, as the scan's
    byte-order grouping does: no collision check, the scan reads the block.  Declared NOCASE,
    SQLite's BETWEEN would take them as one id: the scan refuses (row path), as for MySQL."""
    from dataclasses import replace

    from lasair_parallel.apps.rebuild_objects.sources.dbwrite import CANDIDATES_DDL

    det = replace(live[0], ids=live[0].ids.copy())  # the module's sample stays as it is
    first = str(det.ids[0])
    det.ids[1] = first.swapcase()
    assert first.swapcase() != first and first.lower() == det.ids[1].lower()
    path = tmp_path / "case.db"
    write_sqlite(path, det, order=arrival_order(det), index=LIVE_INDEX_COLUMNS,
                 ddl=CANDIDATES_DDL.replace("VARCHAR(16) NOT NULL",
                                            f"VARCHAR(16) NOT NULL{collate}"))
    got, how = read(f"sqlite:///{path}?reader=scan")
    err = capfd.readouterr().err
    if collate:
        assert how == "rows" and "case/space-insensitive" in err
    else:
        assert how == "scan" and "not possible" not in err
        assert sorted(map(str, got.ids)) == sorted(map(str, det.ids))


def test_a_scan_whose_rows_are_all_in_one_part_is_still_a_scan(live, capfd):
    """The first 100 objects of the table stored by object lie in its first rowid half: the
    second part is empty (its expression column untyped), and the scan still reads the block."""
    det, d = live
    ids = [str(i) for i in det.ids]
    got, how = read(f"sqlite:///{d}/clustered.db?reader=scan", ids[0], ids[99])
    assert how == "scan" and "not possible" not in capfd.readouterr().err
    same_detections(got, read(f"sqlite:///{d}/clustered.db?reader=rows", ids[0], ids[99])[0])
