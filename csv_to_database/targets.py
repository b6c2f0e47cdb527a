"""Where to load: ``--db`` URLs, the password (environment or option file), connections.

URLs::

    sqlite:///relative.db   sqlite:////absolute/path.db
    mysql://user@host:3306/db
    mysql://user@h1:3306,h2:3307,h3/db           (a Galera cluster: tried in order)
    mysql://user@localhost/db?unix_socket=/run/mysqld/mysqld.sock
    mysql://user@host/db?ssl-mode=VERIFY_IDENTITY&ssl-ca=/etc/mysql/ca.pem   (TLS: see tls.py)

A password in a URL is refused: it would be visible in ``ps`` and shell history (Lasair's
old loader passed ``--password=...`` on the command line).
"""

from __future__ import annotations

import configparser
import os
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote

from lasair_parallel.csv_to_database.errors import (
    ConnectError,
    HostsUnavailable,
    RefusedFileRequest,
    UsageError,
)
from lasair_parallel.csv_to_database.tls import TLS, tls_options

MYSQL_SCHEMES = ("mysql", "mysql+pymysql", "mariadb", "mariadb+pymysql")
DEFAULT_PORT = 3306  # MySQL's registered port
DEFAULT_PASSWORD_ENV = "MYSQL_PWD"  # the variable the mysql client itself reads
# pymysql error codes meaning "this node is gone or not usable now, try another":
# 2003 can't connect, 2006 gone away, 2013 lost connection, 1047 WSREP not ready (Galera
# node not in the primary component), 1053 server shutdown in progress.
NODE_DOWN_CODES = {2003, 2006, 2013, 1047, 1053}
# ... and "the transaction lost a race, run it again": 1213 deadlock / Galera certification
# failure, 1205 lock wait timeout, 1180/1181 error during commit/rollback (Galera aborts).
RETRY_CODES = NODE_DOWN_CODES | {1213, 1205, 1180, 1181}
# Seconds a node has to answer the login, the readiness check and the session setup: a
# frozen node (SIGSTOPped, VM paused) still accepts TCP connections and then says nothing.
READY_TIMEOUT = 20.0
LOAD_TIMEOUT = 3600.0  # one LOAD DATA of a big shard, or a wait for another loader's lock
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


@dataclass(frozen=True)
class Target:
    """A parsed ``--db``: SQLite file or MySQL host list (several hosts = Galera failover)."""

    kind: str  # "sqlite" or "mysql"
    database: str = ""
    path: str | None = None
    user: str | None = None
    hosts: tuple[tuple[str, int], ...] = ()
    unix_socket: str | None = None
    params: tuple[tuple[str, str], ...] = ()  # the URL's ssl-* query options

    def display(self) -> str:
        """The target as a string for messages (never holds a password)."""
        if self.kind == "sqlite":
            return f"sqlite:///{self.path}"
        hosts = ",".join(f"{h}:{p}" for h, p in self.hosts)
        user = f"{self.user}@" if self.user else ""
        return f"mysql://{user}{hosts}/{self.database}"


class Secret:
    """A password that does not show itself in repr/str (tracebacks, logs)."""

    def __init__(self, value: str | None) -> None:
        self._value = value

    def get(self) -> str | None:
        return self._value

    def scrub(self, text: str) -> str:
        """``text`` with the password replaced by ``***`` (for error messages)."""
        return text.replace(self._value, "***") if self._value else text

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__


@dataclass
class Credentials:
    """User and password for MySQL; the password comes from the environment or an option file."""

    user: str | None = None
    password: Secret = field(default_factory=lambda: Secret(None))
    source: str = "none"
    options: dict[str, str] = field(default_factory=dict)  # the option file's [client]


def parse_db_url(url: str) -> Target:
    """Parse one ``--db`` URL into a :class:`Target` (raises :class:`UsageError`)."""
    m = re.match(r"^([A-Za-z0-9+]+)://(.*)$", url)
    if not m:
        raise UsageError("--db must look like sqlite:///file.db or mysql://user@host:port/db")
    scheme, rest = m.group(1).lower(), m.group(2)
    if scheme == "sqlite":
        if not rest.startswith("/") or len(rest) < 2:
            raise UsageError("--db sqlite URL must be sqlite:///relative.db or sqlite:////abs/path.db")
        return Target(kind="sqlite", path=unquote(rest[1:]), database=unquote(rest[1:]))
    if scheme not in MYSQL_SCHEMES:
        raise UsageError(f"--db scheme {scheme!r} is not supported (use sqlite:// or mysql://)")
    rest, _, query = rest.partition("?")
    netloc, slash, db = rest.partition("/")
    if not slash or not db or "/" in db:
        raise UsageError("--db mysql URL needs a database: mysql://user@host:port/db")
    user = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        if ":" in userinfo:
            # deliberately not echoing the URL: it holds a password
            raise UsageError("--db must not contain a password (it would show in ps and shell "
                             "history); set MYSQL_PWD or use --defaults-file / ~/.my.cnf")
        user = unquote(userinfo) or None
    hosts = []
    for part in filter(None, netloc.split(",")):
        m = re.fullmatch(r"\[([0-9A-Fa-f:.%a-z]+)\](?::(\d+))?", part)  # IPv6: [::1]:3306
        if m:
            host, colon, port = m[1], ":", m[2] or str(DEFAULT_PORT)
        elif part.count(":") > 1:
            raise UsageError(f"--db host {part!r}: write an IPv6 address in brackets, "
                             "e.g. mysql://user@[::1]:3306/db")
        else:
            host, colon, port = part.rpartition(":") if ":" in part else (part, "", "")
        if not colon:
            host, port = part, str(DEFAULT_PORT)
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(f"--db host {part!r} is not host or host:port")
        hosts.append((host, int(port)))
    params = parse_qs(query, keep_blank_values=True)
    sock = params.get("unix_socket", params.get("socket", [None]))[0]
    if not hosts and not sock:
        raise UsageError("--db mysql URL needs at least one host: mysql://user@host:port/db")
    ssl_params = tuple((k, v[-1]) for k, v in params.items() if k.lower().startswith("ssl"))
    tls_options(dict(ssl_params), {})  # bad ssl-* options are refused now, not at connect
    return Target(kind="mysql", database=unquote(db), user=user, hosts=tuple(hosts),
                  unix_socket=sock, params=ssl_params)


def parse_db_urls(urls: list[str] | tuple[str, ...]) -> Target:
    """Parse one or more ``--db`` values; repeated MySQL URLs to one database merge into one host list."""
    targets = [parse_db_url(u) for u in urls]
    if not targets:
        raise UsageError("--db is required")
    if len(targets) == 1:
        return targets[0]
    first = targets[0]
    if any(t.kind != "mysql" for t in targets):
        raise UsageError("several --db values are only allowed for mysql:// (Galera nodes)")
    if any((t.database, t.user) != (first.database, first.user) for t in targets):
        raise UsageError("repeated --db values must name the same user and database")
    params = {k: v for t in targets for k, v in t.params}
    if any(dict(t.params) != params for t in targets if t.params):
        raise UsageError("repeated --db values must give the same ssl-* options (or none)")
    hosts = tuple(h for t in targets for h in t.hosts)
    return Target(kind="mysql", database=first.database, user=first.user, hosts=hosts,
                  unix_socket=first.unix_socket, params=tuple(params.items()))


def check_identifier(name: str, what: str = "--table") -> str:
    """``name`` if it is a plain SQL identifier (it is interpolated into SQL, quoted)."""
    if not _IDENT.match(name) or len(name) > 64:  # 64 = MySQL's identifier length limit
        raise UsageError(f"{what} {name!r} must be a plain identifier (letters, digits, _)")
    return name


def read_option_file(path: Path) -> dict[str, str]:
    """The ``[client]`` section of a MySQL option file (``user``, ``password``, ...)."""
    cp = configparser.RawConfigParser(allow_no_value=True, strict=False,
                                      comment_prefixes=("#", ";"), inline_comment_prefixes=None)
    try:
        with open(path, encoding="utf-8") as f:
            cp.read_file(f)
    except (OSError, configparser.Error) as e:
        raise UsageError(f"cannot read option file {path}: {type(e).__name__} "
                         "(fix the file or drop --defaults-file)") from None
    out: dict[str, str] = {}
    for section in ("client", "csv_to_database"):
        if cp.has_section(section):
            for k, v in cp.items(section):
                v = (v or "").strip()
                if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
                    v = v[1:-1]
                out[k.replace("-", "_")] = v
    return out


def find_credentials(target: Target, password_env: str = DEFAULT_PASSWORD_ENV,
                     defaults_file: str | Path | None = None) -> Credentials:
    """User and password: the URL's user, the password from ``$password_env``, else the option file.

    The option file is ``defaults_file`` if given, else ``~/.my.cnf`` if it exists.
    """
    opts: dict[str, str] = {}
    if defaults_file is not None:
        if not Path(defaults_file).is_file():
            raise UsageError(f"--defaults-file {defaults_file} does not exist")
        opts = read_option_file(Path(defaults_file))
    else:
        home_cnf = Path(os.path.expanduser("~/.my.cnf"))
        if home_cnf.is_file():
            opts = read_option_file(home_cnf)
    user = target.user or opts.get("user") or os.environ.get("USER")
    tls_options(dict(target.params), opts).context()  # bad ssl-* options: refused now
    if password_env and os.environ.get(password_env) is not None:
        return Credentials(user, Secret(os.environ[password_env]), f"${password_env}", opts)
    if "password" in opts:
        return Credentials(user, Secret(opts["password"]), "option file", opts)
    return Credentials(user, Secret(None), "none", opts)


def target_tls(target: Target, creds: Credentials) -> TLS:
    """The TLS settings of ``target``: its URL's ssl-* options, else the option file's."""
    return tls_options(dict(target.params), creds.options)


def connect_sqlite(target: Target) -> sqlite3.Connection:
    """A SQLite connection in manual-transaction mode (we issue BEGIN IMMEDIATE ourselves)."""
    # timeout: a concurrent loader holds the write lock for one shard; wait it out (10 min).
    conn = sqlite3.connect(target.path, timeout=600, isolation_level=None)
    return conn


def connect_mysql(target: Target, creds: Credentials, start: int = 0, attempts: int = 2,
                  local_infile: bool = False, init_sql: tuple[str, ...] = ()):
    """Connect to the first usable host, starting at index ``start``; return ``(conn, index)``.

    Hosts that refuse, are down, drop the connection during the readiness check or
    ``init_sql``, or are not in Galera's primary component are skipped. The connection is a
    :class:`GuardedConnection`: it sends no local file unless the loader allows that one file
    (``local_infile`` only advertises the capability), and speaks TLS as the URL or option
    file ask. Raises :class:`ConnectError` (bad login, unknown database),
    :class:`HostsUnavailable` (every host down or not ready, ``attempts`` rounds) or
    :class:`RefusedFileRequest` (a server asked for a file: no other host is tried).
    """
    import pymysql  # local import: SQLite-only use never needs it
    from lasair_parallel.csv_to_database.guard import GuardedConnection

    tls = target_tls(target, creds)
    endpoints: list[tuple[str | None, int | None]] = list(target.hosts) or [(None, None)]
    last = "no host"
    for rnd in range(attempts):
        for k in range(len(endpoints)):
            i = (start + k) % len(endpoints)
            host, port = endpoints[i]
            where = f"{host}:{port}" if host is not None else str(target.unix_socket)
            kw = dict(user=creds.user, password=creds.password.get() or "",
                      database=target.database, charset="utf8mb4", autocommit=True,
                      connect_timeout=5, read_timeout=READY_TIMEOUT,
                      write_timeout=READY_TIMEOUT)
            if host is None:
                kw["unix_socket"] = target.unix_socket
            else:
                kw.update(host=host, port=port)
            try:
                conn = GuardedConnection(tls=tls, local_infile=local_infile, **kw)
            except pymysql.err.MySQLError as e:
                code = error_code(e)
                if code in (1045, 1044, 1049):  # access denied / no db privilege / unknown db
                    raise ConnectError(
                        f"{target.display()}: {creds.password.scrub(str(e.args[-1]))} "
                        f"(password taken from {creds.source}; set MYSQL_PWD, --password-env "
                        "or --defaults-file, and check the database name)") from None
                last = f"{where}: {_reason(e, creds, tls)}"
                continue
            try:
                ready = _galera_ready(conn)
                if ready:
                    with conn.cursor() as cur:
                        for sql in init_sql:
                            cur.execute(sql)
            except RefusedFileRequest:
                raise
            except (pymysql.err.MySQLError, OSError) as e:
                # e.g. 2013: the node dropped us mid-query (crashing, or leaving the cluster),
                # or did not answer within READY_TIMEOUT (frozen)
                _close_quietly(conn)
                last = f"{where}: connection lost during the readiness check: {_reason(e, creds, tls)}"
                continue
            if ready:
                conn.set_timeouts(LOAD_TIMEOUT)
                return conn, i
            _close_quietly(conn)
            last = f"{where}: Galera node not ready (not in the primary component)"
        if rnd + 1 < attempts:
            time.sleep(1.0)  # a Galera view change takes ~1-3 s with the usual timeouts
    raise HostsUnavailable(f"cannot connect to {target.display()}: {last} "
                       "(check --db and that the server is running)")


def _reason(e: BaseException, creds: Credentials, tls: TLS) -> str:
    """One line saying why a host failed; TLS failures name the settings to fix."""
    text = creds.password.scrub(str(e.args[-1] if e.args else e)).replace("\n", " ")
    if "SSL" in text or "TLS" in text or error_code(e) == 2026:
        return (f"TLS failed (ssl-mode={tls.mode}): {text} (check ssl-ca/ssl-mode in --db "
                "or the option file)")
    return text


def _close_quietly(conn) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - closing a dropped connection fails; it is gone anyway
        pass


def _galera_ready(conn) -> bool:
    """False for a Galera node that is up but not usable (wsrep_ready OFF); True otherwise."""
    with conn.cursor() as cur:
        cur.execute("SHOW VARIABLES LIKE 'wsrep_on'")
        row = cur.fetchone()
        if row is None or row[1] != "ON":
            return True  # not a Galera node (MariaDB ships wsrep variables even then)
        cur.execute("SHOW STATUS LIKE 'wsrep_ready'")
        row = cur.fetchone()
    return row is not None and row[1] == "ON"


def error_code(exc: BaseException) -> int:
    """The MySQL error code of a pymysql exception, or 0."""
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else 0


def connect_untrusted(url_params: dict[str, str], option_file: str | Path | None = None,
                      **kwargs):
    """A pymysql connection for readers (e.g. the MySQL light-curve source): LOCAL INFILE
    off, any file request refused, TLS from ``url_params``' ssl-* keys and ``option_file``.

    ``kwargs`` are ``pymysql.connect`` arguments (host, port, user, password, database,
    ``read_default_file``...); ``ssl*`` arguments are ignored in favour of ``url_params``.
    Raises :class:`UsageError` for bad ssl-* options, pymysql errors otherwise.
    """
    from lasair_parallel.csv_to_database.guard import open_guarded

    opts = read_option_file(Path(option_file)) if option_file else {}
    tls = tls_options({k: v for k, v in url_params.items() if k.lower().startswith("ssl")}, opts)
    for k in [k for k in kwargs if k.startswith("ssl")]:
        del kwargs[k]
    kwargs["local_infile"] = False
    return open_guarded(tls=tls, **kwargs)


def tls_asked(url_params: dict[str, str], option_file: str | Path | None = None) -> bool:
    """True if ``url_params`` or ``option_file`` set any TLS option other than
    ``ssl-mode=DISABLED``: a client that cannot honour TLS options (e.g. connectorx) must then
    not be used, or it would connect without the verification the user asked for."""
    opts = read_option_file(Path(option_file)) if option_file else {}
    given = {k.replace("-", "_").lower() for k in [*url_params, *opts]}
    if not any(k.startswith("ssl") for k in given):
        return False
    return tls_options({k: v for k, v in url_params.items() if k.lower().startswith("ssl")},
                       opts).mode != "DISABLED"
