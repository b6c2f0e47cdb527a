"""Orchestration: find shards, prepare the table, load shards over N connections, summarise."""

from __future__ import annotations

import glob
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lasair_parallel.csv_to_database.errors import (
    LoadError,
    RefusedFileRequest,
    ShardError,
    UsageError,
    show_path,
)
from lasair_parallel.csv_to_database.schema import load_schema, mysql_columns, sqlite_columns
from lasair_parallel.csv_to_database.scratch import scratch_dir
from lasair_parallel.csv_to_database.shard import scan
from lasair_parallel.csv_to_database.targets import (
    Credentials,
    Target,
    check_identifier,
    connect_mysql,
)


@dataclass
class LoadOptions:
    """What to load and how (the CLI's flags)."""

    table: str
    mode: str = "replace"  # "replace" (upsert by primary key), "ignore", "insert"
    reload: bool = False
    create: bool = False
    schema: str | Path | None = None
    parallel: int = 1


@dataclass
class ShardResult:
    """Outcome of one shard."""

    path: Path
    status: str  # "loaded", "skipped" or "failed"
    rows: int = 0
    size: int = 0
    error: str | None = None


@dataclass
class Summary:
    """Outcome of a run: one result per shard."""

    results: list[ShardResult] = field(default_factory=list)

    def count(self, status: str) -> tuple[int, int]:
        """``(shards, rows)`` with ``status``."""
        rs = [r for r in self.results if r.status == status]
        return len(rs), sum(r.rows for r in rs)

    @property
    def failed(self) -> int:
        return self.count("failed")[0]

    def line(self) -> str:
        """A one-line summary of shards and rows loaded, skipped and failed."""
        parts = []
        for status in ("loaded", "skipped", "failed"):
            n, rows = self.count(status)
            parts.append(f"{n} {status} ({rows} rows)" if status != "failed" else f"{n} failed")
        return f"shards: {len(self.results)} total, " + ", ".join(parts)


def find_shards(sources: list[str] | tuple[str, ...]) -> list[Path]:
    """Shard files from directories (their ``*.csv``), glob patterns and file names; sorted, unique."""
    found: list[Path] = []
    for src in sources:
        p = Path(src)
        if p.is_dir():
            found += sorted(q for q in p.glob("*.csv") if q.is_file())
        elif p.is_file():
            found.append(p)
        elif glob.has_magic(src):
            found += sorted(Path(q) for q in glob.glob(src) if Path(q).is_file())
        else:
            raise UsageError(f"{show_path(src)}: no such file or directory")
    if not found:
        raise UsageError(f"no CSV shards in {' '.join(show_path(s) for s in sources)} "
                         "(give a directory of *.csv, a quoted glob or file names)")
    unique = list(dict.fromkeys(found))
    names: dict[str, Path] = {}
    for path in unique:
        other = names.setdefault(path.name, path)
        if other != path:  # the ledger keys shards by file name
            raise UsageError(f"two shards named {show_path(path.name)}: {show_path(other)} and "
                             f"{show_path(path)} (load them in separate runs or rename one)")
    return unique


def _make_loader(target: Target, creds: Credentials | None, opts: LoadOptions, tmpdir: str,
                 index: int):
    if target.kind == "sqlite":
        from lasair_parallel.csv_to_database.sqlite_load import SQLiteLoader
        return SQLiteLoader(target, opts.table, opts.mode, opts.reload)
    from lasair_parallel.csv_to_database.mysql_load import MySQLLoader
    # Every worker starts on the first host: writing through one Galera node avoids
    # certification conflicts; failover moves a worker to the next node.
    return MySQLLoader(target, creds or Credentials(), opts.table, opts.mode, opts.reload,
                       tmpdir, first_host=0)


def _check_options(opts: LoadOptions) -> str | None:
    """Refuse bad options up front; return the CREATE TABLE for ``opts.create`` (else None)."""
    check_identifier(opts.table)
    if opts.mode not in ("replace", "ignore", "insert"):
        raise UsageError(f"unknown mode {opts.mode!r}")
    if opts.parallel < 1:
        raise UsageError("--parallel must be at least 1")
    return load_schema(opts.table, opts.schema)[1] if opts.create else None


def check_target(target: Target, opts: LoadOptions, creds: Credentials | None = None,
                 create_flag: str = "--create") -> None:
    """Check, without writing anything, that a load into ``target`` could start: the options,
    the schema for ``opts.create``, the login, and that the table exists (unless created).

    For callers that load later (``parallel --stream-to``): a wrong password or a missing
    table is reported before any work is done. Raises :class:`UsageError`.
    """
    _check_options(opts)
    missing = (f"table {opts.table} does not exist in {target.display()} "
               f"(add {create_flag}, or create the table first)")
    if target.kind == "sqlite":
        path = Path(target.path)
        if not path.exists():
            if not opts.create:
                raise UsageError(missing)
            if not os.access(path.parent if str(path.parent) else ".", os.W_OK):
                raise UsageError(f"cannot create {target.display()}: directory "
                                 f"{show_path(path.parent)} is not writable")
            return
        try:  # read-only: a check must not create or change anything
            conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
            try:
                cols = sqlite_columns(conn, opts.table)
            finally:
                conn.close()
        except sqlite3.Error as e:
            raise UsageError(f"cannot open {target.display()}: {e} "
                             "(check the path in the URL)") from None
    else:
        conn, _ = connect_mysql(target, creds or Credentials())
        try:
            with conn.cursor() as cur:
                cols = mysql_columns(cur, opts.table)
        finally:
            conn.close()
    if not cols and not opts.create:
        raise UsageError(missing)


def load_shards(target: Target, shards: list[Path], opts: LoadOptions,
                creds: Credentials | None = None,
                progress: Callable[[int], None] | None = None,
                on_result: Callable[[ShardResult], None] | None = None) -> Summary:
    """Load ``shards`` into ``opts.table`` of ``target``, each exactly once.

    ``progress(nbytes)`` is called as shard bytes are processed, ``on_result`` after each
    shard. Raises :class:`UsageError` for problems that concern every shard (no table,
    bad schema, unreachable database); per-shard problems are failed results.
    """
    create_sql = _check_options(opts)
    summary = Summary()
    lock = threading.Lock()
    todo: queue.Queue[tuple[int, Path]] = queue.Queue()
    for item in enumerate(shards):
        todo.put(item)
    results: list[ShardResult | None] = [None] * len(shards)

    fatal: list[BaseException] = []  # a server that asked for a file it may not have: stop
    with scratch_dir() as tmpdir:
        first = _make_loader(target, creds, opts, tmpdir, 0)
        try:
            columns = first.prepare(create_sql)
        except BaseException:
            first.close()
            raise

        def report(nbytes: int) -> None:
            if progress:
                with lock:
                    progress(nbytes)

        def work(loader) -> None:
            loader.columns = columns
            try:
                while not fatal:
                    try:
                        i, path = todo.get_nowait()
                    except queue.Empty:
                        return
                    try:
                        res = _load_one(loader, path, report)
                    except RefusedFileRequest as e:
                        fatal.append(e)
                        return
                    with lock:
                        results[i] = res
                        if on_result:
                            on_result(res)
            finally:
                loader.close()

        n = min(opts.parallel, len(shards)) or 1
        loaders = [first] + [_make_loader(target, creds, opts, tmpdir, k) for k in range(1, n)]
        threads = [threading.Thread(target=work, args=(ld,), daemon=True) for ld in loaders[1:]]
        for t in threads:
            t.start()
        work(first)
        for t in threads:
            t.join()
    if fatal:
        raise fatal[0]
    summary.results = [r for r in results if r is not None]
    return summary


def _load_one(loader, path: Path, report: Callable[[int], None]) -> ShardResult:
    size = 0
    done = 0

    def counted(nbytes: int) -> None:
        nonlocal done
        done += nbytes
        report(nbytes)

    try:
        shard = scan(path)
        size = shard.size
        status = loader.load(shard, counted)
        counted(max(size - done, 0))  # skipped shards were never read: count them now
        return ShardResult(path, status, shard.rows, size)
    except ShardError as e:
        return ShardResult(path, "failed", 0, size, str(e))
    except RefusedFileRequest:
        raise  # not this shard's fault: the server is not to be trusted with any
    except LoadError as e:  # e.g. every Galera node down: this shard fails, others may not
        return ShardResult(path, "failed", 0, size, f"{show_path(path)}: {e}")
    except OSError as e:
        return ShardResult(path, "failed", 0, size,
                           f"{show_path(path)}: cannot read: {os.strerror(e.errno or 0)}")
