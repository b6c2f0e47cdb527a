"""SQLite's ADBC loader process (sqlite_proc / sqlite_child): exact values, the same refusals
as the row path, exactly-once across a SIGKILL of the child or of the whole loader."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import struct
import subprocess
import threading
from pathlib import Path

import pytest
from helpers import children, wait_for
from lasair_parallel.csv_to_database import sqlite_load, sqlite_proc
from lasair_parallel.csv_to_database.load import LoadOptions, load_shards
from lasair_parallel.csv_to_database.targets import parse_db_url
from test_csv_to_database_common import cli_argv, cli_env
from test_csv_to_database_sqlite import BAD_BODIES, HEADER, SCHEMA, _float_texts

pytestmark = pytest.mark.skipif(not sqlite_proc.available(),
                                reason="pyarrow and adbc-driver-sqlite not installed")

# Float texts that are hard to round correctly or sit at the edges of the double range.
HARD = ["0.1", "0.2", "0.30000000000000004", "1.7976931348623157e308", "1e308", "-1e308",
        "4.9406564584124654e-324", "5e-324", "2.2250738585072009e-308",  # largest subnormal
        "2.2250738585072014e-308", "2.2250738585072011e-308", "1e-320", "-0.0", "0", "-0",
        "9007199254740993", "9007199254740992.5", "1e23", "8.589973e9", "123456789012345678",
        "1.00000000000000011102230246251565", "1.0000000000000002220446049250313",
        "0.1000000000000000055511151231257827", "3.14159265358979323846264338327950",
        "7.2057594037927933e16", "2.4703282292062327e-324", "2.4703282292062328e-324",
        "1.2345678901234567e-89", "-9.8765432109876543e+123", "70.882714", "2459525.8072685"]


@pytest.fixture
def child_path(monkeypatch) -> list:
    """Every simple shard through the loader process (not only >= CHILD_MIN); records the
    child's answers, so a test can tell the child loaded a shard."""
    monkeypatch.setattr(sqlite_load, "CHILD_MIN", 0)
    answers: list = []
    real = sqlite_proc.ChildLoader.load

    def spy(self, *a, **kw):
        answers.append(real(self, *a, **kw))
        return answers[-1]

    monkeypatch.setattr(sqlite_proc.ChildLoader, "load", spy)
    return answers


def _load(db: Path, src: Path, mode: str = "replace", reload: bool = False):
    schema = db.parent / "t.sql"
    schema.write_text(SCHEMA)
    shards = sorted(src.glob("*.csv"))
    return load_shards(parse_db_url(f"sqlite:///{db}"), shards,
                       LoadOptions("t", mode=mode, create=True, schema=schema, reload=reload))


def _rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id, d, typeof(d), f, i, typeof(i), b, s, typeof(s) FROM t"
                            " ORDER BY id").fetchall()


def _one(tmp_path: Path, body: str, quoted: bool = False, mode: str = "replace"):
    """Load ``body`` as one shard (a quoted header sends it down the row path)."""
    name = "q" if quoted else "s"
    src = tmp_path / name
    src.mkdir()
    (src / "a.csv").write_text(('"id",d,f,i,b,s\n' if quoted else HEADER) + body)
    summary = _load(tmp_path / f"{name}.db", src, mode)
    return summary.results[0], _rows(tmp_path / f"{name}.db")


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


def test_floats_round_trip_exactly(tmp_path, child_path):
    texts = HARD + _float_texts(30000)
    body = "".join(f"K{k:06d},{t},{texts[-1 - k]},{k % 7},,s{k}\n" for k, t in enumerate(texts))
    res, rows = _one(tmp_path, body)
    assert child_path == ["loaded"] and res.status == "loaded" and res.rows == len(texts)
    for k, row in enumerate(rows):
        for got, text in ((row[1], texts[k]), (row[3], texts[-1 - k])):
            want = float(text)
            assert got == want, (text, got)
            if want != 0:  # SQLite stores an integral REAL as an integer: -0.0 reads as 0.0
                assert _bits(got) == _bits(want), (text, got)
        assert row[2] == "real" and row[4] == k % 7 and row[5] == "integer"


def test_nulls_zeros_and_numeric_looking_text(tmp_path, child_path):
    body = ("A,0,0.0,0,0,0\n"
            "B,,,,,\n"
            "C,-0.0,5e-324,-7,-9223372036854775808,007\n"
            "D,1e308,-1e308,007,9223372036854775807,1e5\n"
            "E,1.5,2.5,1,2, 12 \n"
            "F,1,1,1,1,-0.0\n"
            "G,1,1,1,1,NaN")  # no final newline
    res, rows = _one(tmp_path, body)
    assert child_path == ["loaded"] and res.rows == 7
    assert rows[0] == ("A", 0.0, "real", 0.0, 0, "integer", 0, "0", "text")
    assert rows[1] == ("B", None, "null", None, None, "null", None, None, "null")
    assert rows[2][1] == 0.0 and math.copysign(1, rows[2][1]) == 1.0  # SQLite's, as below
    assert rows[2][3] == 5e-324 and rows[2][6] == -2 ** 63 and rows[2][7] == "007"
    assert rows[3][1] == 1e308 and rows[3][3] == -1e308 and rows[3][4] == 7
    assert rows[3][6] == 2 ** 63 - 1 and rows[3][7:] == ("1e5", "text")
    assert rows[4][7] == " 12 " and rows[5][7] == "-0.0" and rows[6][7] == "NaN"
    # the row path (Python's csv and float()) stores exactly the same values and types
    child_path.clear()
    _, slow = _one(tmp_path, body, quoted=True)
    assert child_path == [] and slow == rows


@pytest.mark.parametrize("body, line, what", BAD_BODIES)
def test_what_arrow_does_not_decide_goes_to_the_row_path(tmp_path, child_path, body, line,
                                                         what):
    res, rows = _one(tmp_path, body)
    assert child_path == ["fallback"]  # the child wrote nothing; the row path names the line
    assert res.status == "failed" and f"a.csv:{line}:" in res.error and what in res.error
    assert rows == []


def test_duplicate_under_insert_is_rolled_back_and_named(tmp_path, child_path):
    res, rows = _one(tmp_path, "A,1,1,1,1,x\nB,1,1,1,1,x\nA,2,2,2,2,y\n", mode="insert")
    assert child_path == ["fallback"]
    assert res.status == "failed" and "a.csv:4:" in res.error and "--replace" in res.error
    assert rows == []
    with sqlite3.connect(tmp_path / "s.db") as conn:  # no ledger row either
        assert conn.execute("SELECT COUNT(*) FROM csv_to_database_ledger").fetchone() == (0,)


def test_rerun_skips_changed_needs_reload(tmp_path, child_path):
    db, src = tmp_path / "x.db", tmp_path / "in"
    src.mkdir()
    (src / "a.csv").write_text(HEADER + "A,1,1,1,1,x\nB,2,2,2,2,y\n")
    (src / "b.csv").write_text(HEADER + "A,3,3,3,3,z\n")  # replaces A
    assert [r.status for r in _load(db, src).results] == ["loaded", "loaded"]
    assert [r.status for r in _load(db, src).results] == ["skipped", "skipped"]
    (src / "b.csv").write_text(HEADER + "A,4,4,4,4,w\nC,5,5,5,5,v\n")
    changed = _load(db, src).results[1]
    assert changed.status == "failed" and "changed since it was loaded" in changed.error
    assert "--reload" in changed.error and "\n" not in changed.error
    assert [r.status for r in _load(db, src, reload=True).results] == ["skipped", "loaded"]
    assert child_path == ["loaded", "loaded", "skipped", "skipped", "skipped", "skipped",
                          "loaded"]
    assert [r[:2] + (r[7],) for r in _rows(db)] == [("A", 4.0, "w"), ("B", 2.0, "y"),
                                                    ("C", 5.0, "v")]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT name, nrows FROM csv_to_database_ledger ORDER BY name"
                            ).fetchall() == [("a.csv", 2), ("b.csv", 2)]


def _big_shard(path: Path, nrows: int, prefix: str) -> None:
    with open(path, "w") as f:
        f.write(HEADER)
        f.writelines(f"{prefix}{k:08d},{k}.0625,{k % 1000}.5,{k},{k * 7},row{k}\n"
                     for k in range(nrows))


def _state(db: Path) -> tuple[list, int]:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return (conn.execute("SELECT name, nrows FROM csv_to_database_ledger ORDER BY name"
                             ).fetchall(),
                conn.execute("SELECT COUNT(*) FROM t").fetchone()[0])
    finally:
        conn.close()


def _open_here(db: Path) -> bool:
    """Whether this process has the database file open (a loader's sqlite3 connection)."""
    fds = Path("/proc/self/fd")
    return any(os.path.realpath(fds / fd) == str(db.resolve()) for fd in os.listdir(fds))


def _ledger(db: Path) -> list | None:
    """The committed ledger rows, or None before the tables exist."""
    try:
        return _state(db)[0]
    except sqlite3.Error:
        return None


def _in_transaction(db: Path) -> bool:
    """The rollback journal exists only while a write transaction is open (DELETE mode)."""
    return Path(f"{db}-journal").exists()


def test_sigkill_of_the_child_mid_shard_leaves_nothing_and_rerun_loads_once(tmp_path,
                                                                            child_path):
    db, src = tmp_path / "k.db", tmp_path / "in"
    src.mkdir()
    _big_shard(src / "a.csv", 1000, "A")
    # a.csv is committed first, on its own: a reader polling for its ledger row while b.csv
    # loads can miss the moment between the two (b's spilled transaction locks readers out)
    assert [r.status for r in _load(db, src).results] == ["loaded"]
    assert _ledger(db) == [("a.csv", 1000)]
    _big_shard(src / "b.csv", 900_000, "B")  # 44 MB, ~2 s of inserts: time to kill it in
    base = db.stat().st_size
    out: list = []
    loader = threading.Thread(target=lambda: out.append(_load(db, src)))
    loader.start()
    # b.csv's transaction is open and has spilled some 16 MB of rows into the file: well
    # past its first pieces (a commit per piece would show here)
    wait_for(lambda: _in_transaction(db) and db.stat().st_size > base + (16 << 20), timeout=60)
    pid = sqlite_proc._shared[str(db)].pid
    assert pid in children(os.getpid())
    assert not _open_here(db)  # the loader closed its own connection: only the child writes
    os.kill(pid, signal.SIGKILL)
    loader.join(60)
    a, b = out[0].results
    assert a.status == "skipped" and b.status == "failed"
    assert f"pid {pid}) was killed by SIGKILL" in b.error and "\n" not in b.error
    assert b.error.startswith(str(src / "b.csv"))
    assert _state(db) == ([("a.csv", 1000)], 1000)  # SQLite rolled b.csv back, whole
    rerun = _load(db, src)
    assert [r.status for r in rerun.results] == ["skipped", "loaded"]
    assert _state(db) == ([("a.csv", 1000), ("b.csv", 900_000)], 901_000)
    assert child_path[-2:] == ["skipped", "loaded"]


def test_sigkill_of_the_cli_takes_its_child_and_rerun_loads_once(tmp_path):
    """The real CLI, with shards big enough (>= CHILD_MIN) for the loader process, killed
    while a shard's transaction is open, after another shard has been committed."""
    db, src = tmp_path / "c.db", tmp_path / "in"
    src.mkdir()
    schema = tmp_path / "t.sql"
    schema.write_text(SCHEMA)
    argv = cli_argv(src, "--db", f"sqlite:///{db}", "--table", "t", "--create", "--schema",
                    schema, "-q")
    # s0 is committed by a first run.  (Waiting for the ledger to show it while the loader
    # runs could miss every gap between transactions and see the run end: a flaky test.)
    _big_shard(src / "s0.csv", 300_000, "S0")  # ~15 MB
    assert (src / "s0.csv").stat().st_size >= sqlite_load.CHILD_MIN
    first = subprocess.run(argv, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert first.returncode == 0 and "1 loaded" in first.stdout, first.stderr
    for k in (1, 2):
        _big_shard(src / f"s{k}.csv", 300_000, f"S{k}")
    proc = subprocess.Popen(argv, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader = sqlite3.connect(db, timeout=60, isolation_level=None)
    try:
        wait_for(lambda: children(proc.pid) or proc.poll() is not None, timeout=120)
        kids = children(proc.pid)
        assert kids, "no loader process"
        # The loader process has started (~0.25 s of imports before its first transaction).
        # A reader's open transaction now holds the file's shared lock: the loader can open a
        # shard's transaction and fill it (SQLite keeps the pages in memory when it cannot
        # spill them) but cannot commit it, so the kill lands mid-transaction, every time.
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM csv_to_database_ledger").fetchone()
        # the rollback journal exists only while a write transaction is open
        wait_for(lambda: _in_transaction(db) or proc.poll() is not None, timeout=120)
        assert proc.poll() is None, proc.communicate()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        reader.close()
    wait_for(lambda: not any(Path(f"/proc/{k}").exists() for k in kids), timeout=10)
    assert _in_transaction(db)  # a hot journal: the kill came mid-transaction
    ledger, nrows = _state(db)  # opening the file rolls that transaction back
    # s0, and s1 only if it committed before the reader got in: whole shards only
    assert ledger in ([("s0.csv", 300_000)], [("s0.csv", 300_000), ("s1.csv", 300_000)])
    assert nrows == sum(n for _, n in ledger)
    rerun = subprocess.run(argv, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{3 - len(ledger)} loaded" in rerun.stdout and f"{len(ledger)} skipped" in rerun.stdout
    assert _state(db) == ([(f"s{k}.csv", 300_000) for k in range(3)], 900_000)


def test_two_clis_in_parallel_load_each_shard_once(tmp_path):
    """Two loaders (each --parallel 2, one loader process each) race over the same shards:
    each shard is loaded by exactly one of them, with no SQLite locking error."""
    db, src = tmp_path / "p.db", tmp_path / "in"
    src.mkdir()
    for k in range(4):
        _big_shard(src / f"p{k}.csv", 180_000, f"P{k}")  # ~9 MB each, >= CHILD_MIN
    schema = tmp_path / "t.sql"
    schema.write_text(SCHEMA)
    argv = cli_argv(src, "--db", f"sqlite:///{db}", "--table", "t", "--create", "--schema",
                    schema, "--parallel", "2", "-q")
    procs = [subprocess.Popen(argv, env=cli_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err
    loaded = [int(o.split(" loaded")[0].rsplit(" ", 1)[1]) for o, _ in outs]
    assert sum(loaded) == 4
    assert _state(db) == ([(f"p{k}.csv", 180_000) for k in range(4)], 720_000)


def test_without_adbc_the_in_process_arrow_path_loads(tmp_path, monkeypatch, child_path):
    monkeypatch.setattr(sqlite_proc, "available", lambda: False)
    res, rows = _one(tmp_path, "A,0.1,5e-324,1,2,x\n")
    assert child_path == [] and res.status == "loaded"
    assert rows == [("A", 0.1, "real", 5e-324, 1, "integer", 2, "x", "text")]


def test_a_child_that_cannot_start_leaves_the_load_to_this_process(tmp_path, monkeypatch,
                                                                    child_path):
    """ADBC importable here but not in the child (a sitecustomize blocks it there): the shard
    still loads, in-process, and no error is reported."""
    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text("import sys\nsys.modules['adbc_driver_sqlite'] = None\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(block), os.environ.get("PYTHONPATH", "")]))
    res, rows = _one(tmp_path, "A,0.1,5e-324,1,2,x\nB,,,,,\n")
    assert child_path == []  # the spy saw no answer: the child's start failed
    assert res.status == "loaded" and res.rows == 2
    assert rows[0] == ("A", 0.1, "real", 5e-324, 1, "integer", 2, "x", "text")


@pytest.mark.parametrize("data", [b"h\n", b"h", b"h\na,b", b"h\na\nb\n", b"h\n" + b"x,1\n" * 5000,
                                  b"h\n" + b"x,1\n" * 5000 + b"y,2"])
def test_pieces_are_whole_lines_covering_the_data(data):
    from lasair_parallel.csv_to_database.sqlite_arrow import pieces

    parts = pieces(data, size=1000, first=10)
    body = data.find(b"\n") + 1
    assert b"".join(data[a:b] for a, b in parts) == (data[body:] if body else b"")
    assert all(data[b - 1:b] == b"\n" for a, b in parts[:-1])
    assert all(b - a <= 1000 + 4 for a, b in parts[1:]) and (not parts or parts[0][1] - body <= 14)
