"""Bulk-load CSV shards into MySQL/MariaDB (LOAD DATA LOCAL INFILE, Galera failover) or SQLite.

Every shard is loaded exactly once: its rows and a ledger row (name, size, sha256, rows,
time) commit in one transaction, so a rerun skips what is already in and a killed load
leaves nothing half-done. The library never prints; :mod:`lasair_parallel.csv_to_database.cli` does.
"""

from lasair_parallel.csv_to_database.errors import LoadError, ShardError, UsageError
from lasair_parallel.csv_to_database.load import (
    LoadOptions,
    ShardResult,
    Summary,
    find_shards,
    load_shards,
)
from lasair_parallel.csv_to_database.targets import Target, parse_db_urls

__all__ = [
    "LoadError", "ShardError", "UsageError", "LoadOptions", "ShardResult", "Summary",
    "find_shards", "load_shards", "Target", "parse_db_urls",
]
