"""SQLite's fast path for simple shards: the same values and the same refusals as the row path."""

from __future__ import annotations

import sqlite3

import pytest
from lasair_parallel.csv_to_database import shard as shard_mod
from lasair_parallel.csv_to_database.load import LoadOptions, load_shards
from lasair_parallel.csv_to_database.targets import parse_db_url

SCHEMA = ("CREATE TABLE t (id VARCHAR(16) PRIMARY KEY, d DOUBLE, f FLOAT, i INT, "
          "b BIGINT, s VARCHAR(20))")
HEADER = "id,d,f,i,b,s\n"


def _load(tmp_path, body: str, *, quoted: bool = False, mode: str = "replace", name="a.csv"):
    """Load one shard (simple, or forced through the row path by a quoted header) into a
    fresh table; returns (result, rows as stored, with SQLite's typeof)."""
    db = tmp_path / f"{'q' if quoted else 's'}.db"
    src = tmp_path / ("q" if quoted else "s")
    src.mkdir(exist_ok=True)
    header = '"id",d,f,i,b,s\n' if quoted else HEADER
    (src / name).write_text(header + body)
    schema = tmp_path / "t.sql"
    schema.write_text(SCHEMA)
    seen = []
    summary = load_shards(parse_db_url(f"sqlite:///{db}"), [src / name],
                          LoadOptions("t", mode=mode, create=True, schema=schema),
                          progress=seen.append)
    res = summary.results[0]
    if res.status == "loaded":  # each byte reported once, also after a fallback
        assert sum(seen) == (src / name).stat().st_size
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, d, typeof(d), f, i, typeof(i), b, s FROM t"
                            " ORDER BY id").fetchall()
    return res, rows


BODY = ("A,70.882714,344.011336,007,-12,x\n"
        "B,,0,0,,\n"
        "C,1e-300,-.5,+5,-123456789012345678,\\n\t\n"
        "D, 1.5 ,1_0.5,,123456789012345678,caf\u00e9")  # no final newline


@pytest.mark.parametrize("big", ["", "\nE,1,1,1,9223372036854775807,y"])
def test_fast_path_stores_what_the_row_path_stores(tmp_path, monkeypatch, big):
    import lasair_parallel.csv_to_database.sqlite_load as sl
    if not big:  # all in the fast path; with a 19-digit value the row path decides
        monkeypatch.setattr(sl, "sqlite_rows", None)
    fast, fast_rows = _load(tmp_path, BODY + big)
    monkeypatch.undo()
    slow, slow_rows = _load(tmp_path, BODY + big, quoted=True)
    assert fast.status == slow.status == "loaded" and fast.rows == slow.rows == 4 + bool(big)
    assert fast_rows == slow_rows
    a, b = fast_rows[0], fast_rows[1]
    # Python's correctly rounded parse (SQLite's own text-to-REAL is off by one bit here)
    assert a[1] == float("70.882714") and a[2] == "real" and a[4] == 7 and a[5] == "integer"
    assert b[1] is None and b[3] == 0.0 and b[4] == 0 and b[6] is None and b[7] is None


@pytest.mark.parametrize("body, line, what", [
    ("A,1,1,1,1,x\nB,nan,1,1,1,x\n", 3, "bad float"),
    ("A,1,1,1,1,x\nB,1,inf,1,1,x\n", 3, "bad float"),
    ("A,1e999,1,1,1,x\n", 2, "bad float"),
    ("A,1,1,1.0,1,x\n", 2, "bad int"),
    ("A,1,1,1-2,1,x\n", 2, "bad int"),
    ("A,1,1,1,99999999999999999999,x\n", 2, "bad int"),
    ("A,1,1,1,1,x\n,1,1,1,1,x\n", 3, "empty value for NOT NULL"),
    ("A,1,1,1,1,x\nB,1,1,1,x\n", 3, "fields, header has"),
    ("A,1,1,1,1,x\nB,abc,1,1,1,x\n", 3, "bad float"),
])
def test_fast_path_refusals_name_the_line(tmp_path, body, line, what):
    res, rows = _load(tmp_path, body)
    assert res.status == "failed" and f"a.csv:{line}:" in res.error and what in res.error
    assert rows == []  # nothing committed


def test_duplicate_under_insert_names_the_line(tmp_path):
    res, rows = _load(tmp_path, "A,1,1,1,1,x\nB,1,1,1,1,x\nA,2,2,2,2,y\n", mode="insert")
    assert res.status == "failed" and "a.csv:4:" in res.error and "--replace" in res.error
    assert rows == []


def test_fast_path_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(shard_mod, "SIMPLE_CHUNK", 64)
    monkeypatch.setattr(shard_mod.simple_chunks, "__defaults__", (None, 64))
    body = "".join(f"R{k:04d},{k}.25,,{k},,t{k}\n" for k in range(500))
    res, rows = _load(tmp_path, body)
    assert res.status == "loaded" and res.rows == 500 and len(rows) == 500
    assert rows[499] == ("R0499", 499.25, "real", None, 499, "integer", None, "t499")
