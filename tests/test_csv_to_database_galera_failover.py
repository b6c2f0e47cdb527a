"""Issue 11, case 11: a Galera node that drops the connection during the readiness check
(pymysql 2013) is skipped like a node that is down, instead of crashing the loader.

Real parts: the session's Galera cluster; in front of one live node a loopback TCP proxy we
control forwards the MySQL protocol and cuts both sides the moment the client sends a given
query, as a node does when it crashes or leaves the cluster mid-query.
"""

from __future__ import annotations

import socket
import threading

import pytest
from test_csv_to_database_common import run_cli, schema_file
from test_csv_to_database_exactly_once import write_events
from test_csv_to_database_galera import EVENTS, _state


class DroppingProxy:
    """127.0.0.1:``port`` -> 127.0.0.1:``backend``; a client packet containing ``trigger``
    is not forwarded: both connections are closed instead (counted in :attr:`drops`), or with
    ``hang`` left open and silent, as a frozen (SIGSTOPped) node's are."""

    def __init__(self, backend: int, trigger: bytes, hang: bool = False) -> None:
        self.backend, self.trigger, self.hang = backend, trigger, hang
        self.drops = 0
        self._held: list[socket.socket] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.sock.close()
        for s in self._held:
            s.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.backend))
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if from_client and self.trigger in data:
                    self.drops += 1
                    if self.hang:
                        self._held += [src, dst]
                        return  # no answer, no close: the client must give up on its own
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


@pytest.mark.parametrize("trigger", [b"SHOW VARIABLES LIKE 'wsrep_on'",
                                     b"SHOW STATUS LIKE 'wsrep_ready'",
                                     b"SET SESSION max_error_count"])
def test_node_dropping_the_readiness_query_is_failed_over(galera_cluster, tmp_path, trigger):
    g = galera_cluster
    g.restore_primary()  # the kill test ran first: see GaleraCluster.restore_primary
    live = g.alive_nodes()  # two or three: the kill test of test_csv_to_database_galera ran
    db = g.create_database("g_drop_" + trigger.split()[-1].strip(b"'").decode())
    total = write_events(tmp_path / "s", 3, 500)
    proxy = DroppingProxy(live[0].port, trigger)
    try:
        # first the proxied node (it drops us), then a direct one
        url = f"mysql://lasair@127.0.0.1:{proxy.port},127.0.0.1:{live[1].port}/{db}"
        proc = run_cli(tmp_path / "s", "--db", url, "--table", "events", "--create",
                       "--schema", schema_file(tmp_path, EVENTS, "events.sql"), "--parallel", "2")
    finally:
        proxy.close()
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proxy.drops >= 1  # the drop really happened
    assert _state(live[1], db) == (3, total, total)


def test_node_frozen_during_the_readiness_query_is_failed_over(galera_cluster, tmp_path):
    """A node that accepts the query and never answers (frozen) costs READY_TIMEOUT, not the
    hour a LOAD DATA may take."""
    from lasair_parallel.csv_to_database.targets import READY_TIMEOUT

    g = galera_cluster
    g.restore_primary()  # the kill test ran first: see GaleraCluster.restore_primary
    live = g.alive_nodes()
    db = g.create_database("g_frozen")
    total = write_events(tmp_path / "s", 2, 200)
    proxy = DroppingProxy(live[0].port, b"SHOW VARIABLES LIKE 'wsrep_on'", hang=True)
    try:
        url = f"mysql://lasair@127.0.0.1:{proxy.port},127.0.0.1:{live[1].port}/{db}"
        proc = run_cli(tmp_path / "s", "--db", url, "--table", "events", "--create",
                       "--schema", schema_file(tmp_path, EVENTS, "events.sql"),
                       timeout=READY_TIMEOUT * 4)
    finally:
        proxy.close()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proxy.drops >= 1
    assert _state(live[1], db) == (2, total, total)
