"""The MySQL light-curve source never sends a local file to the server.

A rogue (or compromised) MySQL server can answer any query with a LOCAL INFILE request naming a
file on the client; a client with LOCAL INFILE enabled then sends it.  This test runs such a
server on loopback (the handshake, an OK, then a LOCAL INFILE request for a secret file in
reply to every query) and points the source's two connections at it: pymysql (listing, the row
path, the planner's queries) and connectorx (the Arrow reads).  A control client with LOCAL
INFILE on shows that the server does get the file when a client allows it.
"""

from __future__ import annotations

import socket
import struct
import threading

import pymysql
import pytest
from lasair_parallel.apps.rebuild_objects.sources import open_source

SECRET = b"top-secret-4b1d"
CAPS = (0x1 | 0x4 | 0x8 | 0x80 | 0x200 | 0x2000 | 0x8000 | 0x20000 | 0x80000)  # incl. LOCAL_FILES


def _packet(seq: int, body: bytes) -> bytes:
    return struct.pack("<I", len(body))[:3] + bytes([seq & 0xFF]) + body


def _read(conn: socket.socket) -> tuple[int, bytes]:
    head = b""
    while len(head) < 4:
        chunk = conn.recv(4 - len(head))
        if not chunk:
            raise ConnectionError
        head += chunk
    n = int.from_bytes(head[:3], "little")
    body = b""
    while len(body) < n:
        chunk = conn.recv(n - len(body))
        if not chunk:
            raise ConnectionError
        body += chunk
    return head[3], body


class RogueServer:
    """Accepts connections on 127.0.0.1; records every byte clients send after a request."""

    def __init__(self, secret_path: str):
        self.path = secret_path.encode()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            salt = b"abcdefghijklmnopqrst"
            hello = (b"\x0a" + b"5.7.99-rogue\x00" + struct.pack("<I", 7) + salt[:8] + b"\x00"
                     + struct.pack("<H", CAPS & 0xFFFF) + b"\x21" + struct.pack("<H", 2)
                     + struct.pack("<H", CAPS >> 16) + bytes([21]) + b"\x00" * 10
                     + salt[8:] + b"\x00" + b"mysql_native_password\x00")
            conn.sendall(_packet(0, hello))
            _read(conn)  # the login; any password is fine
            conn.sendall(_packet(2, b"\x00\x00\x00\x02\x00\x00\x00"))  # OK
            while True:
                _, cmd = _read(conn)
                if cmd[:1] == b"\x01":  # COM_QUIT
                    return
                if cmd[:1] != b"\x03":  # not COM_QUERY: refuse (prepare, ping...)
                    conn.sendall(_packet(1, b"\xff\x28\x04#HY000unsupported"))
                    continue
                if cmd[1:].lstrip().upper().startswith(b"SET"):  # session set-up: OK
                    conn.sendall(_packet(1, b"\x00\x00\x00\x02\x00\x00\x00"))
                    continue
                self.requests += 1
                conn.sendall(_packet(1, b"\xfb" + self.path))  # "send me this file"
                seq, data = _read(conn)
                while data:  # a file's contents, until the empty packet
                    self.received += data
                    seq, data = _read(conn)
                conn.sendall(_packet(seq + 1, b"\xff\x28\x04#HY000no thanks"))
        except (ConnectionError, OSError):
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def rogue(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(SECRET)
    server = RogueServer(str(secret))
    yield server
    server.close()


def test_control_a_client_with_local_infile_leaks_the_file(rogue):
    conn = pymysql.connect(host="127.0.0.1", port=rogue.port, user="u", password="p",
                           local_infile=True, connect_timeout=5)
    try:
        with conn.cursor() as cur, pytest.raises(pymysql.MySQLError):
            cur.execute("SELECT 1")
    finally:
        conn.close()
    assert SECRET in rogue.received  # the rogue server works: this is what must never happen


def test_source_connections_never_send_a_file(rogue, monkeypatch):
    monkeypatch.setenv("MYSQL_PWD", "p")
    monkeypatch.setenv("HOME", "/nonexistent")
    src = open_source(f"mysql://u@127.0.0.1:{rogue.port}/ztf")
    with pytest.raises(Exception):  # noqa: B017  pymysql: the server's error after refusing
        src.list_objects()
    src.close()
    assert rogue.requests >= 1
    if src.arrow is not None:  # connectorx installed: its connection too
        before = rogue.requests
        with pytest.raises(Exception):  # noqa: B017  ArrowFallback, whatever the driver says
            src.arrow.fetch("SELECT objectId FROM candidates")
        assert rogue.requests > before  # the request reached connectorx's connection
    assert SECRET not in rogue.received and rogue.received == b""
