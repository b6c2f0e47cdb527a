"""The real-shaped `candidates` table the rebuild_objects benchmarks read, built in one place.

The bundled real sample's 364 objects replicated under new ids (~10 detections per object,
real NULL patterns and duplicate jd: ``sources.replicate``), rows inserted in jd order across
all objects (as an alert stream fills the table, so it is not clustered by object), index on
(objectId, jd) only.  MariaDB's copy has no primary key, so InnoDB keeps the rows in insertion
order too.
"""

from __future__ import annotations

import time
from pathlib import Path

from lasair_parallel.apps.rebuild_objects.sources.base import Detections
from lasair_parallel.apps.rebuild_objects.sources.dbwrite import (
    LIVE_INDEX_COLUMNS,
    write_mysql,
    write_sqlite,
)
from lasair_parallel.apps.rebuild_objects.sources.replicate import (
    arrival_order,
    replicated_sample,
)


def live_sqlite(path: Path, objects: int) -> Detections:
    """Write the live-shaped table of ``objects`` objects to a new SQLite file at ``path``;
    prints the setup time (never part of a benchmark's timing) and returns the detections."""
    det = replicated_sample(objects)
    t = time.perf_counter()
    write_sqlite(path, det, order=arrival_order(det), index=LIVE_INDEX_COLUMNS)
    print(f"setup: {objects:,} objects, {det.n_rows:,} rows in arrival order, SQLite "
          f"{time.perf_counter() - t:.1f} s (not timed)", flush=True)
    return det


def live_mariadb(server, database: str, det: Detections) -> None:
    """The same rows, in the same order, into ``database`` of a running MariaDB (the tests'
    ``fixtures_mariadb`` server), statistics refreshed so the optimizer sees the table."""
    t = time.perf_counter()
    with server.connect(database) as conn:
        write_mysql(conn, det, order=arrival_order(det), index=LIVE_INDEX_COLUMNS, batch=20_000)
        with conn.cursor() as cur:
            cur.execute("ANALYZE TABLE candidates")
    print(f"setup: MariaDB {time.perf_counter() - t:.1f} s (not timed)", flush=True)
