"""Where detections come from: ``open_source(spec)``.

Specs: ``sample`` (the bundled real ZTF data), ``csv:PATH``, ``synthetic:N[:SEED]``,
``sqlite:///path.db``, ``mysql://user@host:port/db`` and ``cassandra://h1,h2:9042/keyspace``
(query options: ``?table=candidates``; sqlite and mysql also ``?reader=auto|scan|seek|rows``,
how a block is read, see ``sql``; mysql also ``unix_socket=``).  Every source lists its
objects in a stable order with detection counts and reads a block of objects in a few batched
queries.
"""

from __future__ import annotations

from typing import Protocol

from lasair_parallel.apps.rebuild_objects.lazynp import np
from lasair_parallel.apps.rebuild_objects.sources.base import Detections


class Source(Protocol):
    """What the planner and the task need from a source.

    A source may also offer ``scanned_blocks(max_rows_of)``: the blocks of a table whose every
    block is read by a whole-table scan, cut without listing the objects (``SqlSource``'s:
    ``sqlite_blocks``, ``mysql_blocks``); the planner asks for it first and lists the objects
    when it is missing or answers None.
    """

    #: True when a contiguous block can be read by its first and last objectId; otherwise the
    #: planner names the block's objects in a block file.
    ranges: bool

    def list_objects(self) -> tuple[np.ndarray, np.ndarray]:
        """(objectIds in a stable order, detection counts)."""

    def read_range(self, first: str, last: str) -> Detections:
        """Detections of the objects with first <= objectId <= last (listing order)."""

    def read_ids(self, ids: list[str]) -> Detections:
        """Detections of the given objects."""

    def close(self) -> None:
        """Release connections."""


def open_source(spec: str) -> Source:
    """A source from its spec string (see the module docstring)."""
    if spec == "sample" or spec.startswith("csv:"):
        from lasair_parallel.apps.rebuild_objects.sources.sample import CsvSource
        return CsvSource(None if spec == "sample" else spec[4:])
    if spec.startswith("synthetic:"):
        from lasair_parallel.apps.rebuild_objects.sources.synthetic import SyntheticSource
        return SyntheticSource.from_spec(spec)
    if spec.startswith("sqlite:"):
        from lasair_parallel.apps.rebuild_objects.sources.sql import sqlite_source
        return sqlite_source(spec)
    if spec.startswith("mysql:"):
        from lasair_parallel.apps.rebuild_objects.sources.sql import mysql_source
        return mysql_source(spec)
    if spec.startswith("cassandra:"):
        from lasair_parallel.apps.rebuild_objects.sources.cassandra import CassandraSource
        return CassandraSource.from_spec(spec)
    raise ValueError(
        f"unknown source {spec!r}: use sample, csv:PATH, synthetic:N, sqlite:///path.db, "
        "mysql://user@host:port/db or cassandra://host[,host]:port/keyspace")
