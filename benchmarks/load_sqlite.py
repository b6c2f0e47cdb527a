"""csv_to_database into SQLite against pandas read_csv + to_sql, on the same shards, one run.

    python benchmarks/load_sqlite.py [--rows 1000000] [--shards 8] [--repeat 2] [--candidates]

The shards are load.py's (Lasair `objects` shape: objectId + 14 DOUBLE, 13 FLOAT, 13 INT, ~10%
NULL).  The CLI runs as a subprocess (start-up, hashing, checks, parse, insert, commit), with
--parallel 2 (this machine's 2 cores) and with the default --parallel 1; also with
adbc-driver-sqlite hidden (the in-process pyarrow + sqlite3 executemany path) and with pyarrow
hidden (the column-wise path): a sitecustomize that blocks the imports, in the loader process
too.  pandas reads each shard with read_csv and appends it with to_sql (multi-row INSERTs of
799 rows: 1000 x 41 columns exceeds SQLite's bound-parameter limit), committing at the end.
Best of --repeat each, alternating.

--candidates also times the ways considered to insert one parsed shard (insert only, fresh
table, one transaction): sqlite3 executemany over Python lists, apsw executemany over the
same lists (if apsw is installed), ADBC executemany over the Arrow table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import REPO, make_rows, schema_sql, write_shards  # noqa: E402

CHUNK = 32766 // 41  # SQLITE_MAX_VARIABLE_NUMBER / columns = 799 rows per INSERT


def _block(*modules: str) -> str:
    return "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules)


BLOCKS = {"no_adbc": _block("adbc_driver_sqlite", "adbc_driver_manager"),
          "no_arrow": _block("pyarrow", "pyarrow.csv")}


def cli(shards: Path, db: Path, schema: Path, env: dict, parallel: int) -> float:
    argv = [sys.executable, "-m", "lasair_parallel.csv_to_database.cli", str(shards), "--db",
            f"sqlite:///{db}", "--table", "objects", "--create", "--schema", str(schema), "-q",
            "--parallel", str(parallel)]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return time.perf_counter() - t0


def pandas_full(shards: Path, db: Path) -> float:
    import pandas as pd

    conn = sqlite3.connect(db)
    conn.execute(schema_sql())
    t0 = time.perf_counter()
    for shard in sorted(shards.iterdir()):
        pd.read_csv(shard, dtype={"objectId": str}).to_sql(
            "objects", conn, if_exists="append", index=False, method="multi", chunksize=CHUNK)
    conn.commit()
    dt = time.perf_counter() - t0
    conn.close()
    return dt


def timed_insert(conn, sql: str, lists) -> float:
    """Seconds to insert the columns ``lists`` in one transaction (sqlite3 or apsw)."""
    t0 = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(sql, zip(*lists))
    conn.execute("COMMIT")
    return time.perf_counter() - t0


def candidates(shard: Path, work: Path) -> None:
    """Insert-only times of one parsed shard by each binding considered (see the docstring).
    Each on its own file: two SQLite copies in one process only clash on the same file."""
    from lasair_parallel.csv_to_database import sqlite_arrow
    from lasair_parallel.csv_to_database.schema import sqlite_columns
    from lasair_parallel.csv_to_database.shard import read_header, scan
    from lasair_parallel.csv_to_database.sqlite_child import insert_sql

    def fresh(name: str) -> Path:
        db = work / f"cand_{name}.db"
        with sqlite3.connect(db) as conn:
            conn.execute(schema_sql())
        return db

    db = fresh("sqlite3")
    conn = sqlite3.connect(db, isolation_level=None)
    s = scan(shard)
    cols = read_header(s, "objects", sqlite_columns(conn, "objects"))
    table = sqlite_arrow.parse(s, "objects", sqlite_columns(conn, "objects"))
    sql = insert_sql("replace", "objects", cols)
    t0 = time.perf_counter()
    lists = sqlite_arrow.columns(table, cols)
    t_lists = time.perf_counter() - t0
    times = {}
    times["sqlite3 executemany"] = timed_insert(conn, sql, lists)
    conn.close()
    try:
        import apsw
    except ImportError:
        apsw = None
    if apsw is not None:
        c = apsw.Connection(str(fresh("apsw")))
        times["apsw executemany"] = timed_insert(c, sql, lists)
        c.close()
    import adbc_driver_manager
    import adbc_driver_sqlite
    from lasair_parallel.csv_to_database.sqlite_child import _Cursor

    adb = adbc_driver_sqlite.connect(str(fresh("adbc")))
    aconn = adbc_driver_manager.AdbcConnection(adb)
    cur = _Cursor(aconn)
    t0 = time.perf_counter()
    cur.execute("BEGIN IMMEDIATE")
    cur.executemany(sql, table)
    cur.execute("COMMIT")
    times["ADBC executemany (Arrow)"] = time.perf_counter() - t0
    aconn.close()
    adb.close()
    print(f"one shard, {table.num_rows:,} rows, insert only (+ {t_lists:.2f} s to build the "
          "Python lists sqlite3 and apsw need):")
    for name, dt in times.items():
        print(f"  {name:26s} {dt:6.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--candidates", action="store_true")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-load-sqlite-"))
    write_shards(make_rows(a.rows), work / "shards", a.shards)
    schema = work / "objects.sql"
    schema.write_text(schema_sql() + ";\n")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    envs = {"": env}
    for name, code in BLOCKS.items():
        (work / name).mkdir()
        (work / name / "sitecustomize.py").write_text(code)
        envs[name] = dict(env, PYTHONPATH=str(work / name) + os.pathsep + env["PYTHONPATH"])
    runs = {"cli --parallel 2": (envs[""], 2), "cli --parallel 1": (envs[""], 1),
            "cli without adbc": (envs["no_adbc"], 1),
            "cli without pyarrow": (envs["no_arrow"], 1), "pandas": None}
    best = dict.fromkeys(runs, 1e9)
    for k in range(a.repeat):
        for name, how in runs.items():
            db = work / f"{name.replace(' ', '_')}{k}.db"
            dt = (pandas_full(work / "shards", db) if how is None
                  else cli(work / "shards", db, schema, *how))
            best[name] = min(best[name], dt)
            with sqlite3.connect(db) as conn:  # every row loaded, whichever way
                assert conn.execute("SELECT COUNT(*) FROM objects").fetchone()[0] == a.rows
            db.unlink()
    if a.candidates:
        candidates(sorted((work / "shards").iterdir())[0], work)
    shutil.rmtree(work)
    for name, dt in best.items():
        print(f"{name:24s} {a.rows:>10,} rows {dt:7.2f} s {a.rows / dt:>10,.0f} rows/s")
    print("pandas read_csv+to_sql / csv_to_database: " + "; ".join(
        f"{name.removeprefix('cli ')} {best['pandas'] / best[name]:.2f}x"
        for name in runs if name != "pandas"))
    with open("/proc/loadavg") as f:
        print("load average", " ".join(f.read().split()[:3]))


if __name__ == "__main__":
    main()
