"""Write detections into a `candidates` table (tests, benchmarks, demo databases)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from lasair_parallel.apps.rebuild_objects.sources.base import CANDIDATE_COLUMNS, Detections

# Lasair's `candidates` columns used here; DOUBLE for every float (ZTF's float32 values widen
# exactly).  The index on (objectId, jd, candid) serves both the objectId lookups Lasair's table
# is indexed for and the block reads' ORDER BY objectId, jd, candid, which then need no sort.
CANDIDATES_DDL = """CREATE TABLE {table} (
  objectId VARCHAR(16) NOT NULL, candid BIGINT, jd DOUBLE NOT NULL, fid INT NOT NULL,
  magpsf DOUBLE, sigmapsf DOUBLE, isdiffpos VARCHAR(1), ra DOUBLE NOT NULL, `dec` DOUBLE NOT NULL,
  nid INT, rb DOUBLE, drb DOUBLE, ssnamenr VARCHAR(32), sgmag1 DOUBLE, srmag1 DOUBLE,
  sgscore1 DOUBLE, distpsnr1 DOUBLE)"""
INDEX_DDL = "CREATE INDEX {table}_objectId ON {table} ({columns})"
INDEX_COLUMNS = "objectId, jd, candid"
# A live Lasair table's index, the one the light-curve reads by object must work with.
LIVE_INDEX_COLUMNS = "objectId, jd"


def candidate_rows(det: Detections, order: np.ndarray | None = None) -> Iterator[tuple]:
    """Rows in CANDIDATE_COLUMNS order (NaN -> None, positive -> 't' / 'f'); ``order`` = a row
    permutation (e.g. ``replicate.arrival_order``), default object by object."""
    obj = np.repeat(det.ids, det.counts)
    cand = det.candid if det.candid is not None else np.arange(det.n_rows)
    c = det.cols
    if order is not None:
        obj, cand, ss = obj[order], cand[order], det.ssnamenr[order]
        c = {k: v[order] for k, v in c.items()}
    else:
        ss = det.ssnamenr

    def col(name):
        v = c[name]
        return [None if x != x else x for x in v.tolist()]

    cols = [obj.tolist(), cand.tolist(), col("jd"), c["fid"].tolist(), col("magpsf"),
            col("sigmapsf"), np.where(c["positive"], "t", "f").tolist(), col("ra"), col("dec"),
            c["nid"].tolist(), col("rb"), col("drb"), ss.tolist(), col("sgmag1"),
            col("srmag1"), col("sgscore1"), col("distpsnr1")]
    assert len(cols) == len(CANDIDATE_COLUMNS)
    return zip(*cols, strict=True)


def write_sqlite(path: str | Path, det: Detections, table: str = "candidates",
                 order: np.ndarray | None = None, index: str = INDEX_COLUMNS,
                 ddl: str = CANDIDATES_DDL) -> None:
    """Create ``table`` in the SQLite file and insert the detections (by objectId, or in
    ``order``), then index them on ``index``."""
    conn = sqlite3.connect(path)
    try:
        conn.execute(ddl.format(table=table).replace("`", '"'))
        marks = ",".join("?" * len(CANDIDATE_COLUMNS))
        conn.executemany(f"INSERT INTO {table} VALUES ({marks})", candidate_rows(det, order))
        conn.execute(INDEX_DDL.format(table=table, columns=index))
        conn.commit()
    finally:
        conn.close()


def write_mysql(conn, det: Detections, table: str = "candidates", batch: int = 5000,
                order: np.ndarray | None = None, index: str = INDEX_COLUMNS,
                ddl: str = CANDIDATES_DDL) -> None:
    """Create ``table`` over a pymysql connection and insert the detections (by objectId, or
    in ``order``), indexed on ``index``."""
    with conn.cursor() as cur:
        cur.execute(ddl.format(table=table))
        cur.execute(INDEX_DDL.format(table=table, columns=index))
        cols = ",".join(f"`{c}`" for c in CANDIDATE_COLUMNS)
        marks = ",".join(["%s"] * len(CANDIDATE_COLUMNS))
        rows = list(candidate_rows(det, order))
        for i in range(0, len(rows), batch):
            cur.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows[i:i + batch])
    conn.commit()
