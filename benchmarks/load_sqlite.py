"""csv_to_database into SQLite against pandas read_csv + to_sql, on the same shards, one run.

    python benchmarks/load_sqlite.py [--rows 1000000] [--shards 8] [--repeat 2]

The shards are load.py's (Lasair `objects` shape: objectId + 14 DOUBLE, 13 FLOAT, 13 INT, ~10%
NULL).  The CLI runs as a subprocess (start-up, hashing, checks, parse, insert, commit);
pandas reads each shard with read_csv and appends it with to_sql (multi-row INSERTs of 799
rows: 1000 x 41 columns exceeds SQLite's bound-parameter limit), committing at the end.  Also
the CLI with pyarrow hidden (``LASAIR_NO_ARROW``-style: a sitecustomize that blocks the import),
i.e. the previous column-wise path.  Best of --repeat each, alternating.
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

BLOCK_ARROW = "import sys\nsys.modules['pyarrow'] = None\nsys.modules['pyarrow.csv'] = None\n"


def cli(shards: Path, db: Path, schema: Path, env: dict) -> float:
    argv = [sys.executable, "-m", "lasair_parallel.csv_to_database.cli", str(shards), "--db",
            f"sqlite:///{db}", "--table", "objects", "--create", "--schema", str(schema), "-q"]
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-load-sqlite-"))
    write_shards(make_rows(a.rows), work / "shards", a.shards)
    schema = work / "objects.sql"
    schema.write_text(schema_sql() + ";\n")
    (work / "noarrow").mkdir()
    (work / "noarrow" / "sitecustomize.py").write_text(BLOCK_ARROW)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env_old = dict(env, PYTHONPATH=str(work / "noarrow") + os.pathsep + env["PYTHONPATH"])
    best = {"cli": 1e9, "cli without pyarrow": 1e9, "pandas": 1e9}
    for k in range(a.repeat):
        for name in best:
            db = work / f"{name.replace(' ', '_')}{k}.db"
            dt = (pandas_full(work / "shards", db) if name == "pandas"
                  else cli(work / "shards", db, schema, env if name == "cli" else env_old))
            best[name] = min(best[name], dt)
            with sqlite3.connect(db) as conn:  # every row loaded, whichever way
                assert conn.execute("SELECT COUNT(*) FROM objects").fetchone()[0] == a.rows
            db.unlink()
    shutil.rmtree(work)
    for name, dt in best.items():
        print(f"{name:24s} {a.rows:>10,} rows {dt:7.2f} s {a.rows / dt:>10,.0f} rows/s")
    print(f"csv_to_database / pandas read_csv+to_sql = {best['pandas'] / best['cli']:.2f}x; "
          f"without pyarrow {best['pandas'] / best['cli without pyarrow']:.2f}x")
    with open("/proc/loadavg") as f:
        print("load average", " ".join(f.read().split()[:3]))


if __name__ == "__main__":
    main()
