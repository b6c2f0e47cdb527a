"""A pymysql connection that sends a local file only when the loader itself asked for it.

With ``LOAD DATA LOCAL INFILE`` the *server* names the file the client must send, and it may
do so in answer to any query: stock pymysql with ``local_infile=True`` sends whatever file a
rogue or intercepted server names (a private key, ``/etc/hostname``...). Here every command's
first reply packet is inspected before pymysql acts on it; a LOCAL INFILE request (0xFB) is
honoured only inside :meth:`GuardedConnection.allow_infile` and only for exactly the file
named there. Anything else closes the connection, sends nothing, and raises
:class:`RefusedFileRequest`.

TLS is also set up here from :class:`~lasair_parallel.csv_to_database.tls.TLS`: pymysql's
own TLS handling is switched off so it can never silently fall back to weaker settings.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Iterator

import pymysql
from lasair_parallel.csv_to_database.errors import RefusedFileRequest, show_path
from lasair_parallel.csv_to_database.tls import TLS
from pymysql.protocol import MysqlPacket

CR_SSL_CONNECTION_ERROR = 2026  # the client error code MySQL uses for "TLS required, none"
# The guard hooks these pymysql internals; if a pymysql release renames one, the guard
# would silently do nothing, so refuse to work at all instead.
_HOOKED = ("_read_packet", "_execute_command", "_read_query_result", "_force_close")
_missing = [n for n in _HOOKED if not callable(getattr(pymysql.connections.Connection, n, None))]
if _missing:
    raise ImportError(f"pymysql {pymysql.__version__} lacks {', '.join(_missing)}: the file "
                      "request guard cannot work with it (use pymysql 1.1 or 2.x)")


class GuardedConnection(pymysql.connections.Connection):
    """A pymysql connection with TLS from :class:`TLS` and LOCAL INFILE under the loader's control.

    ``local_infile`` (default False) only advertises the capability; even with it on, a file
    is sent only inside :meth:`allow_infile`.
    """

    def __init__(self, *, tls: TLS | None = None, **kwargs) -> None:
        self._infile_allowed: bytes | None = None
        self._first_reply = False
        self._tls = tls or TLS()
        kwargs.pop("ssl", None)
        kwargs["ssl_disabled"] = True  # pymysql's own TLS defaults verify nothing: ours do
        defer = kwargs.pop("defer_connect", False)
        super().__init__(defer_connect=True, **kwargs)
        ctx = self._tls.context()
        if ctx is not None:
            self.ssl, self._ssl_required, self.ctx = True, self._tls.required, ctx
        if not defer:
            self.connect()

    def connect(self, sock=None) -> None:
        """Connect; refuse a plain connection when the TLS mode requires TLS."""
        super().connect(sock)
        # pymysql 2.2 refuses this itself; older versions fell back to plain text silently.
        if self._tls.required and not isinstance(self._sock, ssl.SSLSocket):
            self._force_close()
            raise pymysql.err.OperationalError(
                CR_SSL_CONNECTION_ERROR,
                f"ssl-mode={self._tls.mode} but the server did not offer TLS")

    def set_timeouts(self, seconds: float) -> None:
        """Read and write timeout from now on (pymysql applies them at the next I/O)."""
        self._read_timeout = self._write_timeout = seconds

    @property
    def encrypted(self) -> bool:
        """True if this connection runs over TLS."""
        return isinstance(self._sock, ssl.SSLSocket)

    @contextlib.contextmanager
    def allow_infile(self, path: str) -> Iterator[None]:
        """Within the block, a LOCAL INFILE request for exactly ``path`` is answered."""
        self._infile_allowed = os.fsencode(path)
        try:
            yield
        finally:
            self._infile_allowed = None

    # Every command's reply starts with the packet read right after the command was sent
    # (or, for the next result of a multi-result reply, inside _read_query_result). Only
    # that packet can be a LOCAL INFILE request: 0xFB inside a result set is a NULL field.
    def _execute_command(self, command, sql):
        super()._execute_command(command, sql)
        self._first_reply = True

    def _read_query_result(self, unbuffered=False):
        self._first_reply = True
        return super()._read_query_result(unbuffered)

    def _read_packet(self, packet_type=MysqlPacket):
        first, self._first_reply = self._first_reply, False
        packet = super()._read_packet(packet_type)
        if first and packet.is_load_local_packet():
            self._vet_infile(packet.get_all_data()[1:])
        return packet

    def _vet_infile(self, name: bytes) -> None:
        if self._infile_allowed is not None and name == self._infile_allowed:
            return
        # Close without a word: the server gets neither the file nor an empty reply.
        self._force_close()
        shown = show_path(name.decode("utf-8", errors="replace"))[:200]
        raise RefusedFileRequest(
            f"{self.host}:{self.port} asked for local file {shown}, which the loader did not "
            "ask to load: refused, nothing sent (a rogue or intercepted server? connect with "
            "ssl-mode=VERIFY_IDENTITY and ssl-ca)")


def open_guarded(tls: TLS | None = None, local_infile: bool = False,
                 **kwargs) -> GuardedConnection:
    """A :class:`GuardedConnection` (``kwargs`` as for ``pymysql.connect``)."""
    return GuardedConnection(tls=tls, local_infile=local_infile, **kwargs)
