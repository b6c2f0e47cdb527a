"""Load shards into MySQL/MariaDB: LOAD DATA LOCAL INFILE of a validated temp file, one
transaction per shard together with its ledger row, failover across Galera nodes."""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable

import pymysql
from lasair_parallel.csv_to_database.errors import (
    HostsUnavailable,
    RefusedFileRequest,
    ShardError,
    UsageError,
)
from lasair_parallel.csv_to_database.ledger import Ledger
from lasair_parallel.csv_to_database.schema import mysql_columns
from lasair_parallel.csv_to_database.shard import (
    Column,
    Shard,
    ShardReader,
    read_header,
    write_mysql_file,
)
from lasair_parallel.csv_to_database.targets import (
    NODE_DOWN_CODES,
    RETRY_CODES,
    Credentials,
    Target,
    connect_mysql,
    error_code,
)

MODES = {"replace": "REPLACE", "ignore": "IGNORE", "insert": ""}
DUPLICATE_KEY = 1062  # ER_DUP_ENTRY: expected (and skipped rows) under --ignore only
ATTEMPTS = 8  # tries per shard across failovers/deadlocks: backoff 0.25 s .. 32 s
_AT_ROW = re.compile(r"(?:at row|Row) (\d+)")
_RECORDS = re.compile(rb"Records: (\d+)")
_SESSION_SQL = (
    # Every warning must be seen to be refused (64 is the default cap); 65535 = max.
    "SET SESSION max_error_count = 65535",
    # A concurrent loader holding a shard's ledger key may take long: wait for it.
    "SET SESSION innodb_lock_wait_timeout = 3600",
)


class MySQLLoader:
    """One connection (one worker) loading shards into ``table``; reconnects on node failure."""

    def __init__(self, target: Target, creds: Credentials, table: str, mode: str,
                 reload: bool, tmpdir: str, first_host: int = 0) -> None:
        self.target = target
        self.creds = creds
        self.table = table
        self.mode = mode
        self.reload = reload
        self.tmpdir = tmpdir
        self.host = first_host
        self.conn = None
        self.ledger = Ledger("mysql")
        self.columns: dict[str, Column] = {}
        # Set when a shard spent its whole backoff finding no usable host: the next shards of
        # this worker then try one connect round each, so a database that stays down fails
        # the rest of the run in seconds, not ATTEMPTS' ~32 s per shard.
        self.unavailable = False

    # -- connection -------------------------------------------------------------------------
    def connect(self) -> None:
        """(Re)connect, starting with the current host; on failure the next hosts are tried."""
        self.close()
        # local_infile: this connection runs LOAD DATA LOCAL; the guard still sends only the
        # one file named in _load_once (see guard.py).
        self.conn, self.host = connect_mysql(self.target, self.creds, start=self.host,
                                             local_infile=True, init_sql=_SESSION_SQL)

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001 - a dead connection may fail to close; it is gone anyway
                pass
            self.conn = None

    # -- setup (one loader does this before the workers start) ------------------------------
    def prepare(self, create_sql: str | None) -> dict[str, Column]:
        """Ensure the ledger (and with ``create_sql`` the table) exist; return the table's columns."""
        if self.conn is None:
            self.connect()
        with self.conn.cursor() as cur:
            cur.execute(self.ledger.ddl())
            cols = mysql_columns(cur, self.table)
            if not cols and create_sql:
                try:
                    cur.execute(create_sql)
                except pymysql.err.OperationalError as e:
                    if error_code(e) != 1050:  # 1050: created meanwhile by another loader
                        raise UsageError(f"--create failed: {e.args[-1]} (fix the schema)") from None
                cols = mysql_columns(cur, self.table)
        if not cols:
            raise UsageError(f"table {self.table} does not exist in {self.target.display()} "
                             "(add --create, with --schema FILE.sql if no app ships it)")
        self.columns = cols
        return cols

    # -- one shard ---------------------------------------------------------------------------
    def load(self, shard: Shard, progress: Callable[[int], None] | None = None) -> str:
        """Load one shard exactly once: returns ``"loaded"`` or ``"skipped"``; raises ShardError."""
        source = None  # (file LOAD DATA reads, fd of our temp copy or None)
        try:
            for attempt in range(ATTEMPTS):
                try:
                    if self.conn is None:
                        self.connect()
                    with self.conn.cursor() as cur:
                        entry = self.ledger.lookup(cur, self.table, shard.name)
                    if self.ledger.decide(shard, entry, self.reload) == "skip":
                        shard.rows = entry.nrows
                        return "skipped"
                    self.unavailable = False
                    if source is None:
                        source = self._source(shard, progress)
                    return self._load_once(shard, source[0])
                except (pymysql.err.OperationalError, pymysql.err.InterfaceError,
                        pymysql.err.InternalError, ConnectionError, TimeoutError) as e:
                    code = error_code(e)
                    retryable = code in RETRY_CODES or not isinstance(
                        e, (pymysql.err.OperationalError, pymysql.err.InternalError))
                    if not retryable:
                        raise self._refused(shard, e) from None
                    if attempt + 1 == ATTEMPTS:
                        text = self.creds.password.scrub(str(e))
                        raise ShardError(shard.path, None, f"database unavailable: {text}",
                                         "nothing of this shard was committed; rerun") from None
                    if code in NODE_DOWN_CODES or not isinstance(e, pymysql.err.OperationalError):
                        self.host += 1  # this node is gone: fail over to the next one
                    self.close()
                    time.sleep(min(0.25 * 2 ** attempt, 32))
                except HostsUnavailable as e:
                    # Every node down or out of the primary component for connect_mysql's ~1 s
                    # window: a Galera view change after a node's death takes up to
                    # evs.inactive_timeout (15 s by default), so wait within this shard's backoff
                    # instead of failing it. connect_mysql already went round every host.
                    if attempt + 1 == ATTEMPTS or self.unavailable:
                        self.unavailable = True
                        raise ShardError(shard.path, None, f"database unavailable: {e}",
                                         "nothing of this shard was committed; rerun") from None
                    self.close()
                    time.sleep(min(0.25 * 2 ** attempt, 32))
                except pymysql.err.MySQLError as e:  # DataError, IntegrityError, ...: the data
                    raise self._refused(shard, e) from None
                except RefusedFileRequest:
                    self.close()  # the guard closed the socket already; drop the object too
                    raise
            raise AssertionError("unreachable")
        finally:
            if source is not None and source[1] is not None:
                os.close(source[1])  # the copy's last reference: the kernel frees it
                if not source[0].startswith("/proc/self/fd/"):
                    os.unlink(source[0])  # no /proc: the copy still has its name

    def _refused(self, shard: Shard, e: Exception) -> ShardError:
        text = self.creds.password.scrub(str(e.args[-1] if e.args else e))
        m = _AT_ROW.search(text)
        line = shard.line_of(int(m.group(1))) if m else self._line_of_value(shard, text)
        return ShardError(shard.path, line, f"refused by MySQL: {text}",
                          "fix the data; nothing of this shard was committed")

    def _source(self, shard: Shard, progress) -> tuple[str, int | None]:
        """``(file LOAD DATA reads, fd of our copy or None)``: a simple shard as it is, else a
        private copy of the rows validated and rewritten by the csv module.

        The copy is unlinked as soon as it is written and read back through
        ``/proc/self/fd/N``: whatever kills the loader, even SIGKILL, the kernel frees it.
        Without /proc it keeps its name in the scratch directory (swept at the next start).
        """
        if shard.simple:
            read_header(shard, self.table, self.columns)
            if shard.simple_shape_ok():
                shard.rows = shard.simple_rows()
                if progress:
                    progress(shard.size)
                return str(shard.path.resolve()), None
            shard.simple = False  # some row is ragged: let the Python parser find it
        fd, tmp = tempfile.mkstemp(prefix="shard-", suffix=".txt", dir=self.tmpdir)
        try:
            with os.fdopen(os.dup(fd), "w", encoding="utf-8", newline="\n",
                           buffering=1 << 20) as out:
                write_mysql_file(ShardReader(shard, self.table, self.columns, progress), out)
            by_fd = f"/proc/self/fd/{fd}"
            if os.path.exists(by_fd):
                os.unlink(tmp)
                return by_fd, fd
            return tmp, fd
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise

    def _load_data_sql(self, shard: Shard) -> str:
        """LOAD DATA of the shard's columns, in header order, through user variables.

        A simple shard is read as it is: ``NULLIF(@v, '')`` makes empty fields NULL
        (LOAD DATA alone stores '' or 0). Measured alternatives: writing ``\\N`` into a copy
        with bytes.replace saved 1.6 s of server CPU per million 41-column rows but cost
        2.8 s in Python. Integer columns go through ``CAST(... AS SIGNED)``: MariaDB stores
        '1.5' into an INT as 2 without a word, CAST warns (1292) instead, at no measurable
        cost (a REGEXP check cost 15% of server CPU).
        """
        targets, sets = [], []
        for i, c in enumerate(shard.columns):
            value = f"NULLIF(@v{i}, '')" if shard.simple else f"@v{i}"  # temp file has \N
            targets.append(f"@v{i}")
            sets.append(f"`{c.name}` = " + (f"CAST({value} AS SIGNED)" if c.kind == "int"
                                            else value))
        if shard.simple:
            fmt = "FIELDS TERMINATED BY ',' ESCAPED BY '' LINES TERMINATED BY '\\n' IGNORE 1 LINES"
        else:
            fmt = "FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n'"
        return (f"LOAD DATA LOCAL INFILE %s {MODES[self.mode]} INTO TABLE `{self.table}`"
                f" CHARACTER SET utf8mb4 {fmt} ({', '.join(targets)}) SET {', '.join(sets)}")

    def _load_once(self, shard: Shard, source: str) -> str:
        conn = self.conn
        conn.begin()
        try:
            with conn.cursor() as cur:
                if self.ledger.claim(cur, self.table, shard, self.reload,
                                     pymysql.err.IntegrityError) == "skip":
                    conn.rollback()
                    return "skipped"
                with conn.allow_infile(source):  # the one file the server may ask for
                    cur.execute(self._load_data_sql(shard), (source,))
                self._check_load(cur, shard)
                if shard.simple and not shard.unchanged():  # MySQL read the file itself
                    raise ShardError(shard.path, None, "file changed while it was being loaded",
                                     "wait for the writer to finish, then rerun")
                self.ledger.finish(cur, self.table, shard)
            conn.commit()
            return "loaded"
        except BaseException:
            try:
                conn.rollback()
            except Exception:  # noqa: BLE001 - connection lost: the server rolls back itself
                pass
            raise

    def _check_load(self, cur, shard: Shard) -> None:
        """Refuse the shard if LOAD DATA warned (truncation, bad number, NULL in NOT NULL...)
        or saw a different number of records than we validated."""
        result = getattr(cur, "_result", None)  # pymysql keeps the OK packet's info text here
        message = getattr(result, "message", None) or b""
        if cur.warning_count:
            cur.execute("SHOW WARNINGS")
            for _level, code, text in cur.fetchall():
                if code == DUPLICATE_KEY and self.mode == "ignore":
                    continue
                m = _AT_ROW.search(text)
                line = shard.line_of(int(m.group(1))) if m else self._line_of_value(shard, text)
                if code == DUPLICATE_KEY:
                    raise ShardError(shard.path, line, f"duplicate key: {text}",
                                     "--insert refuses duplicates; use --replace or --ignore")
                raise ShardError(shard.path, line, f"MySQL refused a value: {text}",
                                 "fix the value; nothing of this shard was committed")
        m = _RECORDS.search(message)
        if m and int(m.group(1)) != shard.rows:
            raise ShardError(shard.path, None,
                             f"LOAD DATA read {m.group(1)} records, the CSV has {shard.rows}",
                             "report this as a bug")

    def _line_of_value(self, shard: Shard, text: str) -> int | None:
        """Line of the first record holding the value quoted in a MySQL message (for messages
        without "at row N": duplicate keys, CAST warnings). Error path only: re-reads the file."""
        m = re.search(r"(?:entry|value:) '(.*?)'(?: for|$)", text)
        if not m:
            return None
        want = m.group(1)
        probe = Shard(shard.path, shard.size, shard.sha256)
        try:
            for n, row in enumerate(ShardReader(probe, self.table, self.columns).records(), 1):
                if want in row:
                    return probe.line_of(n)
        except ShardError:
            return None
        return None
