"""Real MariaDB servers for tests and benchmarks: one server, or a 3-node Galera cluster.

Each server gets its own datadir, option file, socket and loopback ports, runs as root
(``--user=root``, this box has no ``mysql`` login we may rely on), and is stopped by PID.
The starting code lives here only; ``benchmarks/load.py`` imports :func:`start_mariadb`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pymysql
import pytest

MARIADBD = "/usr/sbin/mariadbd"
INSTALL_DB = "mariadb-install-db"
GALERA_PROVIDER = "/usr/lib/galera/libgalera_smm.so"
USER = "lasair"
# A fixed test password: it is the thing the tests check never leaks into argv or output.
PASSWORD = "s3cret-Pw-7f1c"
DATABASE = "lasair"


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the kernel picks; a tiny race is acceptable in tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class MariaDB:
    """A running mariadbd: where it listens and how to reach it."""

    base: Path
    port: int
    socket: str
    proc: subprocess.Popen | None = None
    host: str = "127.0.0.1"
    user: str = USER
    password: str = PASSWORD
    name: str = "mariadb"
    extra: dict = field(default_factory=dict)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def url(self, db: str = DATABASE) -> str:
        """A ``mysql://`` URL for ``db``; never contains the password."""
        return f"mysql://{self.user}@{self.host}:{self.port}/{db}"

    def connect(self, db: str | None = None, **kw) -> pymysql.connections.Connection:
        """A pymysql connection as the test user over TCP."""
        return pymysql.connect(host=self.host, port=self.port, user=self.user,
                               password=self.password, database=db, autocommit=True,
                               charset="utf8mb4", **kw)

    def root(self) -> pymysql.connections.Connection:
        """A root connection over the server's own socket (root has no password here)."""
        return pymysql.connect(unix_socket=self.socket, user="root", autocommit=True,
                               charset="utf8mb4")

    def create_database(self, name: str) -> str:
        """Create (or empty and recreate) database ``name``; return ``name``."""
        with self.root() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        return name

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        """Stop this server by its PID (SIGTERM = clean shutdown, SIGKILL = crash)."""
        if not self.alive():
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        """Crash this server: SIGKILL by PID."""
        self.stop(signal.SIGKILL)


def _write_cnf(node: MariaDB, extra: dict[str, str]) -> Path:
    datadir = node.base / "data"
    lines = [
        "[mysqld]",
        f"datadir={datadir}",
        f"socket={node.socket}",
        f"port={node.port}",
        "bind-address=127.0.0.1",
        f"pid-file={node.base / 'mariadbd.pid'}",
        f"log-error={node.base / 'error.log'}",
        "user=root",
        "skip-name-resolve",
        # small footprint: these are throwaway servers on a 2-core box
        "innodb-buffer-pool-size=256M",
        "innodb-log-file-size=256M",
        "max-connections=200",
        "local-infile=1",
        "character-set-server=utf8mb4",
        "collation-server=utf8mb4_general_ci",
    ]
    lines += [f"{k}={v}" if v is not None else k for k, v in extra.items()]
    cnf = node.base / "my.cnf"
    cnf.write_text("\n".join(lines) + "\n")
    return cnf


def _install(node: MariaDB, cnf: Path) -> None:
    subprocess.run(
        [INSTALL_DB, f"--defaults-file={cnf}", "--user=root",
         "--auth-root-authentication-method=normal", "--skip-test-db"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _spawn(node: MariaDB, cnf: Path, args: list[str] = ()) -> None:
    log = open(node.base / "stdout.log", "ab")  # noqa: SIM115 - lives as long as the server
    node.proc = subprocess.Popen([MARIADBD, f"--defaults-file={cnf}", *args],
                                 stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)


def _wait_ready(node: MariaDB, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not node.alive():
            raise RuntimeError(f"{node.name} exited; see {node.base / 'error.log'}:\n"
                               + _tail(node.base / "error.log"))
        try:
            with node.root() as conn, conn.cursor() as cur:
                cur.execute("SELECT 1")
                if node.extra.get("galera"):
                    cur.execute("SHOW STATUS LIKE 'wsrep_ready'")
                    row = cur.fetchone()
                    if not row or row[1] != "ON":
                        raise pymysql.err.OperationalError(0, "wsrep not ready")
            return
        except pymysql.err.MySQLError:
            time.sleep(0.2)
    raise RuntimeError(f"{node.name} not ready after {timeout}s:\n" + _tail(node.base / "error.log"))


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _create_user(node: MariaDB) -> None:
    with node.root() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'")
        cur.execute(f"CREATE USER IF NOT EXISTS '{USER}'@'localhost' IDENTIFIED BY '{PASSWORD}'")
        cur.execute(f"GRANT ALL ON *.* TO '{USER}'@'%'")
        cur.execute(f"GRANT ALL ON *.* TO '{USER}'@'localhost'")
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}` CHARACTER SET utf8mb4")


def start_mariadb(base: Path, extra: dict[str, str] | None = None) -> MariaDB:
    """Install and start one mariadbd under ``base`` with user ``lasair`` and database ``lasair``."""
    base.mkdir(parents=True, exist_ok=True)
    node = MariaDB(base=base, port=free_port(), socket=str(base / "mysqld.sock"))
    cnf = _write_cnf(node, extra or {})
    _install(node, cnf)
    _spawn(node, cnf)
    try:
        _wait_ready(node)
        _create_user(node)
    except BaseException:
        node.kill()
        raise
    return node


@dataclass
class GaleraCluster:
    """Three Galera nodes on loopback; ``nodes[i].kill()`` crashes node i by PID."""

    nodes: list[MariaDB]

    def url(self, db: str = DATABASE, order: list[int] | None = None) -> str:
        """One URL naming every node, ``mysql://user@h:p1,h:p2,h:p3/db`` (failover order)."""
        idx = order if order is not None else range(len(self.nodes))
        hosts = ",".join(f"{self.nodes[i].host}:{self.nodes[i].port}" for i in idx)
        return f"mysql://{USER}@{hosts}/{db}"

    def alive_nodes(self) -> list[MariaDB]:
        return [n for n in self.nodes if n.alive()]

    def create_database(self, name: str) -> str:
        """Create (or recreate) ``name`` through the first live node; Galera replicates DDL."""
        return self.alive_nodes()[0].create_database(name)

    def stop(self) -> None:
        for n in reversed(self.nodes):
            n.stop()

    def status(self) -> dict[str, dict[str, str]]:
        """Each live node's wsrep status (cluster status, state, size), for waits and messages."""
        out = {}
        for n in self.alive_nodes():
            try:
                with n.root() as conn, conn.cursor() as cur:
                    cur.execute("SHOW STATUS WHERE Variable_name IN ('wsrep_cluster_status',"
                                " 'wsrep_local_state_comment', 'wsrep_cluster_size',"
                                " 'wsrep_last_committed')")
                    out[n.name] = dict(cur.fetchall())
            except pymysql.err.MySQLError as e:
                out[n.name] = {"error": str(e)}
        return out

    def synced(self) -> bool:
        """Every live node is Synced in one primary component holding exactly the live nodes."""
        alive = len(self.alive_nodes())
        st = self.status()
        return len(st) == alive and all(
            v.get("wsrep_cluster_status") == "Primary"
            and v.get("wsrep_local_state_comment") == "Synced"
            and v.get("wsrep_cluster_size") == str(alive) for v in st.values())

    def wait_synced(self, timeout: float = 60.0) -> None:
        """Wait until :meth:`synced`; raise with every node's status when it does not come."""
        deadline = time.monotonic() + timeout
        while not self.synced():
            if time.monotonic() > deadline:
                raise RuntimeError(f"Galera cluster not synced after {timeout} s: {self.status()}")
            time.sleep(0.2)

    def restore_primary(self, timeout: float = 12.0) -> None:
        """Make the live nodes one primary component again, as an operator would.

        A Galera component re-forms a primary by itself only when every member of the last
        primary component is back; after the kill test one never is. So if the survivors
        went non-primary (they lost each other for a moment on a starved machine, then
        re-merged), bootstrap the most advanced one (pc.bootstrap=YES, Galera's documented
        recovery) and wait for the others to sync to it. ``timeout`` (12 s) outlasts the
        8 s evs.inactive_timeout of :func:`start_galera`: a view change still under way ends
        first. Checked by hand: kill node 1, isolate node 2 (gmcast.isolate) for 12 s, rejoin:
        the pair sat non-Primary (size 2); this made it Primary and Synced.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.synced():
                return
            time.sleep(0.5)
        st = self.status()
        if any(v.get("wsrep_cluster_status") != "Primary" for v in st.values()):
            best = max(self.alive_nodes(),
                       key=lambda n: int(st.get(n.name, {}).get("wsrep_last_committed", -1)))
            with best.root() as conn, conn.cursor() as cur:
                cur.execute("SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'")
        self.wait_synced(timeout)


def start_galera(base: Path, size: int = 3) -> GaleraCluster:
    """Start ``size`` Galera nodes: node 0 bootstraps (--wsrep-new-cluster), the rest join by rsync SST."""
    nodes: list[MariaDB] = []
    os.chmod(base, 0o755)  # mkdtemp makes 0700; the SST daemon (uid nobody) must traverse it
    gports = [free_port() for _ in range(size)]
    addr = "gcomm://" + ",".join(f"127.0.0.1:{p}" for p in gports)
    for i in range(size):
        nb = base / f"node{i}"
        nb.mkdir(parents=True)
        node = MariaDB(base=nb, port=free_port(), socket=str(nb / "mysqld.sock"),
                       name=f"galera{i}", extra={"galera": True})
        # EVS timeouts: suspect after 5 s (Galera's default), evict after 8 s (default 15 s)
        # so the kill test's failover takes ~8 s, well inside the loader's ~32 s backoff.
        # With 2 s / 3 s (used before) one CI run's kill test left the two survivors never
        # primary again (1047 in every later Galera test). The likely way: on a starved
        # machine (10-13% steal) they suspected each other, each became a non-primary
        # component of one, and a pair re-merging without the dead node stays non-primary.
        opts = (f"gmcast.listen_addr=tcp://127.0.0.1:{gports[i]};"
                f"ist.recv_addr=127.0.0.1:{free_port()};"
                "evs.keepalive_period=PT1S;evs.suspect_timeout=PT5S;"
                "evs.inactive_timeout=PT8S;evs.inactive_check_period=PT0.5S;"
                "gcache.size=64M;pc.wait_prim_timeout=PT10S")
        cnf = _write_cnf(node, {
            "wsrep_on": "ON",
            "wsrep_provider": GALERA_PROVIDER,
            "wsrep_cluster_address": addr,
            "wsrep_cluster_name": "lasair_test",
            "wsrep_node_name": f"node{i}",
            "wsrep_node_address": "127.0.0.1",
            "wsrep_node_incoming_address": f"127.0.0.1:{node.port}",
            "wsrep_sst_receive_address": f"127.0.0.1:{free_port()}",
            "wsrep_sst_method": "rsync",
            "wsrep_provider_options": f'"{opts}"',
            "binlog_format": "ROW",
            "default_storage_engine": "InnoDB",
            "innodb_autoinc_lock_mode": "2",
            "innodb-buffer-pool-size": "128M",
            "innodb-log-file-size": "64M",
        })
        if i == 0:
            _install(node, cnf)
            _spawn(node, cnf, ["--wsrep-new-cluster"])
            try:
                _wait_ready(node)
                _create_user(node)
            except BaseException:
                node.kill()
                raise
        else:
            # The rsync SST daemon started by a root mariadbd drops to uid "nobody"
            # (rsyncd's default), so the joiner's datadir must be nobody's to write into.
            (nb / "data").mkdir()
            shutil.chown(nb / "data", "nobody", "nogroup")
            _spawn(node, cnf)
            # One joiner at a time: two simultaneous state transfers from one donor on a busy
            # 2-core box is what made a joiner give up waiting for the primary component.
            try:
                _wait_ready(node, timeout=120)
            except BaseException:
                GaleraCluster(nodes + [node]).stop()
                raise
        nodes.append(node)
    return GaleraCluster(nodes)


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDB]:
    """A real MariaDB server for the whole session (user ``lasair``, database ``lasair``)."""
    if not os.path.exists(MARIADBD):
        pytest.skip("mariadbd not installed")
    base = Path(tempfile.mkdtemp(prefix="mariadb-test-"))
    server = start_mariadb(base)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Certs:
    """A test CA, a server certificate it signed (for IP 127.0.0.1 only), a client certificate
    it signed, and a second, unrelated CA (the "wrong CA")."""

    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    wrong_ca: Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(["openssl", *map(str, args)], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_certs(base: Path) -> Certs:
    """Generate the :class:`Certs` under ``base`` with openssl (RSA 2048, valid 2 days)."""
    base.mkdir(parents=True, exist_ok=True)
    for ca in ("ca", "wrong-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key",
                 "-out", f"{ca}.pem", "-days", "2", "-subj", f"/CN=lasair test {ca}", cwd=base)
    # The server's name is 127.0.0.1 only: connecting as "localhost" is a wrong identity.
    for who, san in (("server", "IP:127.0.0.1"), ("client", "DNS:lasair-client")):
        (base / f"{who}.ext").write_text(f"subjectAltName={san}\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{who}.key", "-out",
                 f"{who}.csr", "-subj", f"/CN={who}", cwd=base)
        _openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{who}.pem", "-days", "2", "-extfile",
                 f"{who}.ext", cwd=base)
    for key in base.glob("*.key"):
        key.chmod(0o600)
    return Certs(base, base / "ca.pem", base / "server.pem", base / "server.key",
                 base / "client.pem", base / "client.key", base / "wrong-ca.pem")


def start_tls_mariadb(base: Path) -> tuple[MariaDB, Certs]:
    """One mariadbd with TLS (plain connections still allowed) and two more users:
    ``lasair_tls`` (REQUIRE SSL) and ``lasair_x509`` (REQUIRE X509: a client certificate)."""
    certs = make_certs(base / "certs")
    server = start_mariadb(base / "db", {"ssl-ca": str(certs.ca),
                                         "ssl-cert": str(certs.server_cert),
                                         "ssl-key": str(certs.server_key)})
    with server.root() as conn, conn.cursor() as cur:
        for user, req in (("lasair_tls", "SSL"), ("lasair_x509", "X509")):
            cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{PASSWORD}' REQUIRE {req}")
            cur.execute(f"GRANT ALL ON *.* TO '{user}'@'%'")
    return server, certs


@pytest.fixture(scope="session")
def mariadb_tls_server() -> Iterator[tuple[MariaDB, Certs]]:
    """A real MariaDB serving TLS with a generated CA, for the whole session."""
    if not os.path.exists(MARIADBD):
        pytest.skip("mariadbd not installed")
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    base = Path(tempfile.mkdtemp(prefix="mariadb-tls-test-"))
    server, certs = start_tls_mariadb(base)
    try:
        yield server, certs
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def galera_cluster() -> Iterator[GaleraCluster]:
    """A real 3-node Galera cluster on loopback for the whole session."""
    if not (os.path.exists(MARIADBD) and os.path.exists(GALERA_PROVIDER)):
        pytest.skip("mariadbd or galera-4 not installed")
    if shutil.which("rsync") is None:
        pytest.skip("rsync (Galera SST) not installed")
    for attempt in range(3):  # a cluster that fails to form on a loaded box gets a fresh start
        base = Path(tempfile.mkdtemp(prefix="galera-test-"))
        try:
            cluster = start_galera(base)
            break
        except RuntimeError:
            shutil.rmtree(base, ignore_errors=True)
            if attempt == 2:
                raise
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
