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


# Shards no fast path decides: (body, the line named, what the error says).  Every SQLite
# path (in-process here, the loader process in test_csv_to_database_sqlite_child) refuses
# them the same way.
BAD_BODIES = [
    ("A,1,1,1,1,x\nB,nan,1,1,1,x\n", 3, "bad float"),
    ("A,1,1,1,1,x\nB,1,inf,1,1,x\n", 3, "bad float"),
    ("A,1,inf,1,1,x\n", 2, "bad float"),
    ("A,1e999,1,1,1,x\n", 2, "bad float"),
    ("A,1,1,1.0,1,x\n", 2, "bad int"),
    ("A,1,1,1.5,1,x\n", 2, "bad int"),
    ("A,1,1,1-2,1,x\n", 2, "bad int"),
    ("A,1,1,1,99999999999999999999,x\n", 2, "bad int"),
    ("A,1,1,1,1,x\n,1,1,1,1,x\n", 3, "empty value for NOT NULL"),
    ("A,1,1,1,1,x\nB,1,1,1,x\n", 3, "fields, header has"),
    ("A,1,1,1,1,x\nB,abc,1,1,1,x\n", 3, "bad float"),
]


@pytest.mark.parametrize("body, line, what", BAD_BODIES)
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


# --- the in-process Arrow path (pyarrow CSV + sqlite3 executemany; shards < CHILD_MIN) ----

def _spy_arrow(monkeypatch) -> list:
    """Record what each Arrow-path attempt returned (True = it loaded the shard)."""
    from lasair_parallel.csv_to_database.sqlite_load import SQLiteLoader
    calls: list = []
    real = SQLiteLoader._load_arrow

    def spy(self, *a, **kw):
        done = real(self, *a, **kw)
        calls.append(done)
        return done

    monkeypatch.setattr(SQLiteLoader, "_load_arrow", spy)
    return calls


def _float_texts(n: int) -> list[str]:
    """Float texts as apps and other tools write them: repr, %g/%e/%f at 1-17 digits, tiny,
    huge, subnormal, signed zeros, integers, halfway-looking decimals."""
    import random
    import struct

    rng = random.Random(14)
    out = ["0", "0.0", "-0.0", "-0", "1", "70.882714", "344.011336", "5e-324", "2.2250738585072014e-308",
           "1.7976931348623157e308", "0.1", "0.30000000000000004", "9007199254740993",
           "2459525.8072685", "1e-300", "-1E+10", ".5", "-.25", "3.", "1.00000000000000011102230246251565"]
    while len(out) < n:
        x = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        if x != x or x in (float("inf"), float("-inf")):
            continue
        style = rng.randrange(5)
        if style == 0:
            out.append(repr(x))
        elif style == 1:
            out.append(f"{x:.{rng.randrange(1, 18)}g}")
        elif style == 2:
            out.append(f"{rng.uniform(-1e6, 1e6):.{rng.randrange(0, 12)}f}")
        elif style == 3:
            out.append(f"{rng.uniform(-30, 30):.{rng.randrange(1, 17)}e}")
        else:
            out.append(repr(rng.uniform(0, 400)))
    return out


def test_arrow_path_floats_round_trip_exactly(tmp_path, monkeypatch):
    calls = _spy_arrow(monkeypatch)
    texts = _float_texts(20000)
    body = "".join(f"K{k:06d},{t},{texts[-1 - k]},{k % 7},,s{k}\n" for k, t in enumerate(texts))
    res, rows = _load(tmp_path, body)
    assert calls == [True] and res.status == "loaded" and res.rows == len(texts)
    for k, row in enumerate(rows):
        assert row[1] == float(texts[k]) and row[2] == "real", (texts[k], row[1])
        assert row[3] == float(texts[-1 - k]), (texts[-1 - k], row[3])
        assert row[4] == k % 7 and row[5] == "integer"


def test_arrow_path_nulls_and_zeros(tmp_path, monkeypatch):
    calls = _spy_arrow(monkeypatch)
    body = ("A,0,0.0,0,0,0\n"
            "B,,,,,\n"
            "C,-0.0,1e-300,-7,-9223372036854775808,\n"
            "D,1.5,2.5,007,9223372036854775807,text with spaces")
    res, rows = _load(tmp_path, body)
    assert calls == [True] and res.rows == 4
    assert rows[0] == ("A", 0.0, "real", 0.0, 0, "integer", 0, "0")
    assert rows[1] == ("B", None, "null", None, None, "null", None, None)
    assert rows[2][1] == 0.0 and rows[2][3] == 1e-300 and rows[2][4] == -7
    assert rows[2][6] == -2 ** 63 and rows[2][7] is None
    assert rows[3][4] == 7 and rows[3][6] == 2 ** 63 - 1 and rows[3][7] == "text with spaces"
    # the same shard through the row path stores the same values
    monkeypatch.undo()
    _, slow = _load(tmp_path, body, quoted=True)
    assert slow == rows


@pytest.mark.parametrize("body", [
    "A,nan,1,1,1,x\n", "A,1,inf,1,1,x\n", "A,1e999,1,1,1,x\n", "A,1,1,1.5,1,x\n",
    ",1,1,1,1,x\n", "A,1,1,1,1\n", "A,1,1,1,99999999999999999999,x\n", "A, 1.5 ,1,1,1,x\n",
])
def test_arrow_path_leaves_what_it_does_not_decide_to_the_other_paths(tmp_path, monkeypatch,
                                                                      body):
    """Values the row path refuses never reach the table through Arrow: it names the line, as
    before; padded numbers (Arrow trims them) store what Python's float() gives."""
    calls = _spy_arrow(monkeypatch)
    res, rows = _load(tmp_path, body)
    if body.startswith("A, 1.5"):
        assert res.status == "loaded" and rows[0][1] == float(" 1.5 ")
    else:
        assert True not in calls
        assert res.status == "failed" and "a.csv:2:" in res.error and rows == []


def test_arrow_path_duplicate_under_insert_names_the_line(tmp_path, monkeypatch):
    calls = _spy_arrow(monkeypatch)
    res, rows = _load(tmp_path, "A,1,1,1,1,x\nB,1,1,1,1,x\nA,2,2,2,2,y\n", mode="insert")
    assert calls == [False]  # rolled back to its savepoint
    assert res.status == "failed" and "a.csv:4:" in res.error and rows == []


def test_arrow_path_replace_and_rerun_is_exactly_once(tmp_path, monkeypatch):
    calls = _spy_arrow(monkeypatch)
    db = tmp_path / "x.db"
    (tmp_path / "t.sql").write_text(SCHEMA)
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.csv").write_text(HEADER + "A,1,1,1,1,x\nB,2,2,2,2,y\n")
    (src / "b.csv").write_text(HEADER + "A,3,3,3,3,z\n")  # replaces A
    opts = LoadOptions("t", create=True, schema=tmp_path / "t.sql")
    first = load_shards(parse_db_url(f"sqlite:///{db}"), [src / "a.csv", src / "b.csv"], opts)
    again = load_shards(parse_db_url(f"sqlite:///{db}"), [src / "a.csv", src / "b.csv"], opts)
    assert [r.status for r in first.results] == ["loaded", "loaded"]
    assert [r.status for r in again.results] == ["skipped", "skipped"]
    assert calls == [True, True]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT id, d, s FROM t ORDER BY id").fetchall() == [
            ("A", 3.0, "z"), ("B", 2.0, "y")]
        assert conn.execute("SELECT name, nrows FROM csv_to_database_ledger ORDER BY name"
                            ).fetchall() == [("a.csv", 2), ("b.csv", 1)]
