"""Rows streamed by running tasks, spooled on the head and kept only for successful attempts.

Each attempt that streams gets a spool file ``<run>/.spool/<task>.<attempt>``; rows are
appended as they arrive (in the pump greenlet, so a slow disk slows the reading of that host's
channel, and back-pressure reaches the task through the agent's pipe).  When the attempt
succeeds, the spool is renamed to the task's ``stream`` path in the run directory: the output
appears whole, once.  Any other end (failure, timeout, lost host, interrupt) deletes it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import gevent
from gevent.lock import Semaphore


class Spools:
    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self._open: dict[str, tuple[BinaryIO, Path, Path]] = {}
        self.bytes_in = 0
        self.on_commit: Callable[[Path], None] | None = None

    def start(self, key: str, stream: str) -> None:
        """Prepare the spool of attempt ``key`` whose rows go to ``<run>/<stream>``."""
        spool_dir = self.run_dir / ".spool"
        spool_dir.mkdir(parents=True, exist_ok=True)
        tmp = spool_dir / key.replace("/", "_").replace("#", ".")
        final = self.run_dir / stream
        self._open[key] = (open(tmp, "wb"), tmp, final)  # noqa: SIM115 - closed in end()

    def write(self, key: str, data: str) -> None:
        entry = self._open.get(key)
        if entry is None:
            return  # rows of an attempt already given up: discarded
        raw = data.encode()
        entry[0].write(raw)
        self.bytes_in += len(raw)

    def end(self, key: str, keep: bool) -> None:
        """Commit (``keep``) or discard the attempt's rows."""
        entry = self._open.pop(key, None)
        if entry is None:
            return
        f, tmp, final = entry
        if keep:
            f.flush()
            os.fsync(f.fileno())
            f.close()
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            if self.on_commit is not None:
                self.on_commit(final)
        else:
            f.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def close(self) -> None:
        for key in list(self._open):
            self.end(key, keep=False)


class StreamLoader:
    """Load each committed stream file into a database table with csv_to_database.

    Exactly-once comes from csv_to_database's ledger: a file is loaded in one transaction with
    its ledger row, so loading it again (a resumed run's final sweep) is a no-op.  Loads run in
    gevent's thread pool, one at a time, so the database client never blocks the event loop.
    """

    def __init__(self, db_url: str, table: str, create: bool = False):
        from lasair_parallel.csv_to_database import LoadOptions, parse_db_urls
        from lasair_parallel.csv_to_database.targets import find_credentials

        self.target = parse_db_urls([db_url])
        self.creds = find_credentials(self.target) if self.target.kind == "mysql" else None
        self.opts = LoadOptions(table=table, create=create)
        self._lock = Semaphore()
        self._jobs: list[gevent.Greenlet] = []
        self.loaded_rows = 0
        self.errors: list[str] = []

    def check(self) -> None:
        """Check the target before the run starts: table name, login, the table (or its schema
        with ``--stream-create``). Writes nothing; raises csv_to_database's ``LoadError``."""
        from lasair_parallel.csv_to_database.load import check_target

        check_target(self.target, self.opts, self.creds, create_flag="--stream-create")

    def submit(self, path: Path) -> None:
        self._jobs.append(gevent.spawn(self._load, [path]))

    def _load(self, paths: list[Path]) -> None:
        from lasair_parallel.csv_to_database import LoadError, load_shards

        with self._lock:
            try:
                summary = gevent.get_hub().threadpool.apply(
                    load_shards, (self.target, paths, self.opts, self.creds))
            except LoadError as e:
                self.errors.append(str(e))
                return
        for r in summary.results:
            if r.status == "loaded":
                self.loaded_rows += r.rows
            elif r.status == "failed":
                self.errors.append(f"{r.path.name}: {r.error}")

    def finish(self, paths: list[Path]) -> None:
        """Wait for pending loads, then load whatever committed file is still missing."""
        gevent.joinall(self._jobs)
        if paths:
            self._load(paths)
