"""Lasair's Cassandra `candidates` table (PRIMARY KEY (objectid, jd, candid)).

One prepared statement per partition read, run concurrently with execute_concurrent_with_args;
the cluster routes each read to a replica of its partition (TokenAwarePolicy, routing key from
the prepared statement).  Reads that time out are retried with backoff.  Partitions are hashed,
so a block cannot be a key range: the planner writes its objectIds in a block file.  Listing uses
``SELECT DISTINCT objectid`` (paged by the driver), sorted here for a stable order; counts are
not known without reading, so every object weighs the same (count 0 = unknown).

Row conversion and the retry decision are pure functions, tested without a server.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from urllib.parse import parse_qs, urlparse

import numpy as np
from lasair_parallel.apps.rebuild_objects.sources.base import (
    FLOAT_COLUMNS,
    Detections,
    clean_ssnamenr,
    concat,
    positive_flags,
)

SELECT_COLUMNS = ("candid", "jd", "fid", "magpsf", "sigmapsf", "isdiffpos", "ra", "dec", "nid",
                  "rb", "drb", "ssnamenr", "sgmag1", "srmag1", "sgscore1", "distpsnr1")
CONCURRENCY = 64  # in-flight partition reads per task (the driver's default is 100)
MAX_ATTEMPTS = 4
RETRYABLE = ("ReadTimeout", "OperationTimedOut", "Unavailable", "ReadFailure", "NoHostAvailable")


def rows_to_detections(ids: Sequence[str], partitions: Sequence[Sequence[tuple]]) -> Detections:
    """Rows (SELECT_COLUMNS order) per object -> Detections; rows without candid are dropped."""
    kept = [[r for r in rows if r[0] is not None] for rows in partitions]
    counts = np.array([len(r) for r in kept], dtype=np.int64)
    flat = [r for rows in kept for r in rows]
    if not flat:
        from lasair_parallel.apps.rebuild_objects.sources.base import empty_detections
        return empty_detections(ids)
    cols_t = list(zip(*flat, strict=True))
    idx = {c: i for i, c in enumerate(SELECT_COLUMNS)}
    cols = {c: np.array(cols_t[idx[c]], dtype=float) for c in FLOAT_COLUMNS}  # None -> NaN
    cols["fid"] = np.array(cols_t[idx["fid"]], dtype=np.int64)
    cols["nid"] = np.array([-1 if v is None else v for v in cols_t[idx["nid"]]], dtype=np.int64)
    cols["positive"] = positive_flags(cols_t[idx["isdiffpos"]])
    return Detections(np.array(list(ids), dtype=object), counts, cols,
                      clean_ssnamenr(cols_t[idx["ssnamenr"]]),
                      np.array(cols_t[idx["candid"]], dtype=np.int64))


def split_results(ids: Sequence[str], results: Sequence) -> tuple[dict, list[str], list]:
    """execute_concurrent results -> ({id: rows} done, ids to retry, fatal exceptions)."""
    done, retry, fatal = {}, [], []
    for oid, (ok, res) in zip(ids, results, strict=True):
        if ok:
            done[oid] = list(res)
        elif type(res).__name__ in RETRYABLE:
            retry.append(oid)
        else:
            fatal.append(res)
    return done, retry, fatal


def backoff(attempt: int, base: float = 0.5, cap: float = 8.0) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): doubling, capped."""
    return min(cap, base * 2 ** (attempt - 1))


class CassandraSource:
    """``cassandra://host1,host2:9042/keyspace?table=candidates``."""

    ranges = False

    def __init__(self, hosts: list[str], port: int, keyspace: str, table: str = "candidates"):
        self.hosts, self.port, self.keyspace, self.table = hosts, port, keyspace, table
        self._cluster = self._session = None

    @classmethod
    def from_spec(cls, spec: str) -> CassandraSource:
        u = urlparse(spec)
        netloc = u.netloc.rsplit("@", 1)[-1]
        hostpart, _, port = netloc.rpartition(":") if ":" in netloc else (netloc, "", "9042")
        keyspace = u.path.strip("/")
        if not hostpart or not keyspace:
            raise ValueError("use cassandra://host[,host]:port/keyspace")
        table = parse_qs(u.query).get("table", ["candidates"])[0]
        return cls(hostpart.split(","), int(port or 9042), keyspace, table)

    def session(self):
        if self._session is None:
            from cassandra.auth import PlainTextAuthProvider
            from cassandra.cluster import Cluster
            from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

            auth = None
            if os.environ.get("CASSANDRA_USER"):
                auth = PlainTextAuthProvider(os.environ["CASSANDRA_USER"],
                                             os.environ.get("CASSANDRA_PASSWORD", ""))
            self._cluster = Cluster(self.hosts, port=self.port, auth_provider=auth,
                                    load_balancing_policy=TokenAwarePolicy(
                                        DCAwareRoundRobinPolicy()))
            self._session = self._cluster.connect(self.keyspace)
        return self._session

    def list_objects(self) -> tuple[np.ndarray, np.ndarray]:
        s = self.session()
        ids = sorted(r[0] for r in s.execute(f"SELECT DISTINCT objectid FROM {self.table}"))
        return np.array(ids, dtype=object), np.zeros(len(ids), dtype=np.int64)

    def read_range(self, first: str, last: str) -> Detections:
        raise NotImplementedError("Cassandra partitions are hashed: read blocks by id")

    def read_ids(self, ids: list[str]) -> Detections:
        from cassandra.concurrent import execute_concurrent_with_args

        if not ids:
            return concat([])
        s = self.session()
        stmt = s.prepare(f"SELECT {', '.join(SELECT_COLUMNS)} FROM {self.table} "
                         "WHERE objectid = ?")
        done: dict = {}
        todo = list(ids)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            results = execute_concurrent_with_args(s, stmt, [(i,) for i in todo],
                                                   concurrency=CONCURRENCY,
                                                   raise_on_first_error=False)
            got, todo, fatal = split_results(todo, results)
            done.update(got)
            if fatal:
                raise fatal[0]
            if not todo:
                break
            if attempt == MAX_ATTEMPTS:
                raise TimeoutError(f"{len(todo)} partitions still timing out after "
                                   f"{MAX_ATTEMPTS} attempts")
            time.sleep(backoff(attempt))
        return rows_to_detections(ids, [done[i] for i in ids])

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.shutdown()
            self._cluster = self._session = None
