"""Benchmark csv_to_database (the real CLI) against pandas ``to_sql`` and a plain executemany.

Loads N rows shaped like Lasair's ``objects`` table (objectId VARCHAR PK + 40 numeric
columns, ~10% empty) into a MariaDB it starts itself (same code as the test fixture,
``tests/fixtures_mariadb.py``) and into SQLite, then prints rows/s and ratios.

    python benchmarks/load.py                       # 1,000,000 rows; pandas on 20,000
    python benchmarks/load.py --rows 200000 --pandas-rows 50000

Timings: the CLI is timed as a whole subprocess (Python start-up, hashing, validation,
LOAD DATA, commit); pandas and executemany are timed around the insert only, with the
rows already in memory (which favours them). For SQLite, pandas also runs end to end on
all rows (read_csv of the same shards + to_sql), the like-for-like comparison.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NCOLS = 40  # numeric columns besides objectId, about Lasair's objects table width
EMPTY_FRACTION = 0.1  # share of empty (NULL) numeric fields
SQLITE_MAX_VARS = 32766  # SQLITE_MAX_VARIABLE_NUMBER default since SQLite 3.32


def columns() -> list[tuple[str, str]]:
    """(name, SQL type): a mix of DOUBLE, FLOAT and INT like the objects table."""
    cols = []
    for i in range(NCOLS):
        kind = ("DOUBLE", "FLOAT", "INT")[i % 3]
        cols.append((f"c{i:02d}_{kind.lower()}", kind))
    return cols


def schema_sql() -> str:
    body = ",\n  ".join(f"{n} {t}" for n, t in columns())
    return f"CREATE TABLE objects (\n  objectId VARCHAR(16) PRIMARY KEY,\n  {body}\n)"


def make_rows(n: int, seed: int = 1) -> list[list[str]]:
    """``n`` rows as CSV strings ('' = NULL), deterministic."""
    rnd = random.Random(seed)
    kinds = [t for _, t in columns()]
    rows = []
    for i in range(n):
        row = [f"ZTF{i:010d}"]
        for t in kinds:
            if rnd.random() < EMPTY_FRACTION:
                row.append("")
            elif t == "INT":
                row.append(str(rnd.randrange(0, 5000)))
            else:
                row.append(repr(round(rnd.uniform(-90, 360), 6)))
        rows.append(row)
    return rows


def write_shards(rows: list[list[str]], outdir: Path, nshards: int) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    header = ["objectId"] + [n for n, _ in columns()]
    per = -(-len(rows) // nshards)
    for k in range(nshards):
        with open(outdir / f"objects-{k:03d}.csv", "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(header)
            w.writerows(rows[k * per:(k + 1) * per])


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of process ``pid`` (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


CPU: list[tuple[str, float, float]] = []  # (label, client CPU s, server CPU s) per CLI run


def run_cli(shards: Path, url: str, schema: Path, parallel: int, env: dict,
            server_pid: int | None = None, label: str = "") -> float:
    """Seconds for one CLI run (a fresh table), as a subprocess; CPU use goes to ``CPU``."""
    argv = [sys.executable, "-m", "lasair_parallel.csv_to_database.cli", str(shards), "--db", url, "--table",
            "objects", "--create", "--schema", str(schema), "--parallel", str(parallel), "-q"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    s0 = cpu_seconds(server_pid) if server_pid else 0.0
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    s1 = cpu_seconds(server_pid) if server_pid else 0.0
    if proc.returncode != 0:
        raise SystemExit(f"CLI failed: {proc.stderr}")
    client = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    CPU.append((label, client, s1 - s0))
    return dt


def typed(rows: list[list[str]]) -> list[tuple]:
    """Rows with None for empty fields and numbers parsed (what a Python loader would send)."""
    kinds = [t for _, t in columns()]
    out = []
    for r in rows:
        vals = [r[0]]
        for v, t in zip(r[1:], kinds, strict=True):
            vals.append(None if v == "" else (int(v) if t == "INT" else float(v)))
        out.append(tuple(vals))
    return out


def bench_pandas(rows: list[tuple], engine_or_conn, chunksize: int) -> float:
    import pandas as pd

    df = pd.DataFrame(rows, columns=["objectId"] + [n for n, _ in columns()])
    t0 = time.perf_counter()
    df.to_sql("objects", engine_or_conn, if_exists="append", index=False, method="multi",
              chunksize=chunksize)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    # pandas to_sql into MariaDB runs at ~1,300 rows/s here: 20k rows already take ~15 s
    ap.add_argument("--pandas-rows", type=int, default=20_000,
                    help="rows for pandas/executemany (their rate is extrapolated)")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--parallel", type=int, default=2, help="CLI --parallel (2 cores here)")
    args = ap.parse_args()

    sys.path.insert(0, str(REPO / "tests"))
    import sqlalchemy
    from fixtures_mariadb import PASSWORD, start_mariadb

    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    server = None
    results: list[tuple[str, str, int, float]] = []
    try:
        print(f"generating {args.rows:,} rows x {NCOLS + 1} columns ...", flush=True)
        rows = make_rows(args.rows)
        write_shards(rows, work / "shards", args.shards)
        small = 128_000  # Lasair's stated case: 128k objects in 1-2 minutes
        write_shards(rows[:small], work / "shards128k", 2)
        schema = work / "objects.sql"
        schema.write_text(schema_sql() + ";\n")
        size_mb = sum(p.stat().st_size for p in (work / "shards").iterdir()) / 1e6
        print(f"{args.shards} shards, {size_mb:.0f} MB; starting MariaDB ...", flush=True)
        # 1 GiB buffer pool: the 1M-row table (~400 MB with index) fits, as on a real server
        server = start_mariadb(work / "mariadb", {"innodb-buffer-pool-size": "1G"})
        env = dict(os.environ, MYSQL_PWD=PASSWORD,
                   PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))

        def fresh(db: str) -> str:
            server.create_database(db)
            return server.url(db)

        # --- csv_to_database -----------------------------------------------------------
        pid = server.pid
        dt = run_cli(work / "shards", fresh("b_cli"), schema, args.parallel, env, pid,
                     f"MariaDB --parallel {args.parallel}")
        results.append(("csv_to_database", "MariaDB", args.rows, dt))
        dt = run_cli(work / "shards", fresh("b_cli1"), schema, 1, env, pid,
                     "MariaDB --parallel 1")
        results.append(("csv_to_database --parallel 1", "MariaDB", args.rows, dt))
        dt = run_cli(work / "shards128k", fresh("b_cli128"), schema, args.parallel, env, pid,
                     "MariaDB 128k rows")
        results.append(("csv_to_database (128k rows)", "MariaDB", small, dt))
        dt = run_cli(work / "shards", f"sqlite:///{work / 'cli.db'}", schema, 1, env,
                     label="SQLite")
        results.append(("csv_to_database", "SQLite", args.rows, dt))

        # --- pandas and executemany on a subset --------------------------------------------
        sub = typed(rows[:args.pandas_rows])
        n = len(sub)
        engine = sqlalchemy.create_engine(
            f"mysql+pymysql://{server.user}:{PASSWORD}@{server.host}:{server.port}/b_pandas")
        fresh("b_pandas")
        with server.connect("b_pandas") as c, c.cursor() as cur:
            cur.execute(schema_sql())
        results.append(("pandas to_sql multi/1000", "MariaDB", n, bench_pandas(sub, engine, 1000)))
        engine.dispose()

        fresh("b_many")
        marks = ", ".join(["%s"] * (NCOLS + 1))
        with server.connect("b_many") as c:
            c.autocommit(False)
            with c.cursor() as cur:
                cur.execute(schema_sql())
                t0 = time.perf_counter()
                # pymysql turns an INSERT executemany into multi-row statements
                cur.executemany(f"INSERT INTO objects VALUES ({marks})", sub)
                c.commit()
                results.append(("executemany", "MariaDB", n, time.perf_counter() - t0))

        conn = sqlite3.connect(work / "pandas.db")
        conn.execute(schema_sql())
        chunk = min(1000, SQLITE_MAX_VARS // (NCOLS + 1))  # 1000 x 41 exceeds SQLite's limit
        results.append((f"pandas to_sql multi/{chunk}", "SQLite", n,
                        bench_pandas(sub, conn, chunk)))
        conn.close()
        # pandas end to end, like the CLI: read the same CSV shards, then to_sql (all rows)
        import pandas as pd

        conn = sqlite3.connect(work / "pandas_full.db")
        conn.execute(schema_sql())
        t0 = time.perf_counter()
        for shard in sorted((work / "shards").iterdir()):
            pd.read_csv(shard, dtype={"objectId": str}).to_sql(
                "objects", conn, if_exists="append", index=False, method="multi",
                chunksize=chunk)
        conn.commit()
        results.append((f"pandas read_csv+to_sql/{chunk}", "SQLite", args.rows,
                        time.perf_counter() - t0))
        conn.close()
        conn = sqlite3.connect(work / "many.db")
        conn.execute(schema_sql())
        t0 = time.perf_counter()
        with conn:
            conn.executemany(f"INSERT INTO objects VALUES ({', '.join('?' * (NCOLS + 1))})", sub)
        results.append(("executemany", "SQLite", n, time.perf_counter() - t0))
        conn.close()

        # --- check the CLI's table is complete and NULLs are NULLs -------------------------
        with server.connect("b_cli") as c, c.cursor() as cur:
            cur.execute(f"SELECT COUNT(*), COUNT({columns()[0][0]}) FROM objects")
            total, nonnull = cur.fetchone()
        assert total == args.rows and nonnull < total, (total, nonnull)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)

    rate = {(m, b): r / s for m, b, r, s in results}
    print(f"\n{'method':34} {'target':8} {'rows':>10} {'seconds':>8} {'rows/s':>10}")
    for m, b, r, s in results:
        print(f"{m:34} {b:8} {r:>10,} {s:>8.2f} {r / s:>10,.0f}")
    cli_my, cli_lite = rate[("csv_to_database", "MariaDB")], rate[("csv_to_database", "SQLite")]
    pandas_my = rate[("pandas to_sql multi/1000", "MariaDB")]
    pandas_lite = next(v for (m, b), v in rate.items() if b == "SQLite" and m.startswith("pandas to"))
    pandas_full = next(v for (m, b), v in rate.items() if b == "SQLite" and "read_csv" in m)
    print(f"\nMariaDB: csv_to_database / pandas = {cli_my / pandas_my:.1f}x, "
          f"/ executemany = {cli_my / rate[('executemany', 'MariaDB')]:.1f}x")
    print(f"SQLite:  csv_to_database / pandas = {cli_lite / pandas_lite:.1f}x, "
          f"/ executemany = {cli_lite / rate[('executemany', 'SQLite')]:.1f}x, "
          f"/ pandas read_csv+to_sql (same CSV, all rows) = {cli_lite / pandas_full:.1f}x")
    print("\nCPU seconds per CLI run (client = the csv_to_database process, server = mariadbd):")
    for label, client, srv in CPU:
        print(f"  {label:24} client {client:6.2f}  server {srv:6.2f}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (other work on this box skews rates)")
    t128 = next(s for m, _, _, s in results if "128k" in m)
    print(f"128,000 rows into MariaDB: {t128:.2f} s (Lasair stated 60-120 s)")


if __name__ == "__main__":
    main()
