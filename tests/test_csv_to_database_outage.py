"""The database goes away mid-run: a short outage is waited out inside the shard's backoff,
a lasting one fails the remaining shards quickly, one line each, nothing half-committed.

Real parts: the session's MariaDB server, reached only through a loopback TCP proxy this
test controls. "Down" closes every open connection and hangs up on each new one at once,
as a crashed node's port does (or a Galera cluster whose nodes all left the primary
component, which connect_mysql sees the same way: no usable host).
"""

from __future__ import annotations

import socket
import threading
import time

from fixtures_mariadb import PASSWORD, USER
from lasair_parallel.csv_to_database import LoadOptions, find_shards, load_shards, parse_db_urls
from lasair_parallel.csv_to_database.targets import Credentials, Secret
from test_csv_to_database_common import EVENTS_MYSQL, schema_file
from test_csv_to_database_exactly_once import write_events


class SwitchProxy:
    """127.0.0.1:``port`` -> 127.0.0.1:``backend`` while :attr:`up`; :meth:`down` cuts all."""

    def __init__(self, backend: int) -> None:
        self.backend = backend
        self.up = True
        self.refused = 0  # connections hung up on while down
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(32)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def down(self, for_seconds: float | None = None) -> None:
        with self._lock:
            self.up = False
            for s in self._open:
                _cut(s)
            self._open.clear()
        if for_seconds is not None:
            threading.Timer(for_seconds, self._set_up).start()

    def _set_up(self) -> None:
        self.up = True

    def close(self) -> None:
        self.sock.close()
        self.down()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                if not self.up:
                    self.refused += 1
                    _cut(client)
                    continue
                server = socket.create_connection(("127.0.0.1", self.backend))
                self._open += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        _cut(src)
        _cut(dst)


def _cut(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()


def _run(server, proxy: SwitchProxy, tmp_path, db: str, nshards: int, on_first_bytes):
    """Load ``nshards`` small event shards through ``proxy``; ``on_first_bytes()`` runs once,
    when the first shard's rows are being read (after the loader has connected)."""
    write_events(tmp_path / "s", nshards, 300)
    target = parse_db_urls([f"mysql://{USER}@127.0.0.1:{proxy.port}/{db}"])
    creds = Credentials(USER, Secret(PASSWORD), "test")
    opts = LoadOptions(table="events", create=True,
                       schema=schema_file(tmp_path, EVENTS_MYSQL, "events.sql"))
    fired = []

    def progress(_nbytes: int) -> None:
        if not fired:
            fired.append(True)
            on_first_bytes()

    t0 = time.monotonic()
    summary = load_shards(target, find_shards([str(tmp_path / "s")]), opts, creds, progress)
    return summary, time.monotonic() - t0


def test_outage_shorter_than_the_backoff_is_waited_out(mariadb_server, tmp_path):
    server = mariadb_server
    db = server.create_database("t_outage_short")
    proxy = SwitchProxy(server.port)
    try:
        # 2.5 s: longer than connect_mysql's own ~1 s round, so only the shard's backoff
        # (0.25 s .. 32 s) can carry the load over it
        summary, _ = _run(server, proxy, tmp_path, db, 4, lambda: proxy.down(2.5))
    finally:
        proxy.close()
    statuses = [r.status for r in summary.results]
    assert statuses == ["loaded"] * 4, [r.error for r in summary.results]
    assert proxy.refused >= 2  # the outage was real: reconnects were hung up on
    with server.connect(db) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*), COUNT(DISTINCT objectId) FROM events")
        assert cur.fetchone() == (1200, 1200)
        cur.execute("SELECT COUNT(*) FROM csv_to_database_ledger")
        assert cur.fetchone() == (4,)


def test_lasting_outage_fails_the_rest_quickly_and_commits_nothing(mariadb_server, tmp_path):
    server = mariadb_server
    db = server.create_database("t_outage_long")
    proxy = SwitchProxy(server.port)
    try:
        summary, took = _run(server, proxy, tmp_path, db, 5, proxy.down)
    finally:
        proxy.close()
    assert [r.status for r in summary.results] == ["failed"] * 5
    for r in summary.results:
        assert "database unavailable" in r.error and "\n" not in r.error, r.error
        assert "rerun" in r.error
    # The first shard spends the whole backoff (sum 0.25..16 s = 31.75 s plus connect rounds);
    # the other four one connect round each (~1 s), not another 32 s apiece (~160 s).
    assert took < 31.75 + 4 * 8 + 15, took
    with server.connect(db) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM events")
        assert cur.fetchone() == (0,)
