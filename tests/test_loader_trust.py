"""Issue 11, case 1: the loader sends a server no file but the one it asked to load, and
speaks TLS as the mysql client does (ssl-mode, ssl-ca, ssl-cert, ssl-key; URL or option file).

The attacker is a tiny MySQL-protocol server on loopback (tests/mysql_rogue.py); TLS is
checked against a real MariaDB serving a certificate from a CA generated for the test.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pymysql
import pytest
from fixtures_mariadb import PASSWORD, mariadb_tls_server  # noqa: F401 - a fixture
from lasair_parallel.csv_to_database.errors import RefusedFileRequest, UsageError
from lasair_parallel.csv_to_database.targets import connect_untrusted
from mysql_rogue import RogueServer
from test_csv_to_database_common import cli_env, object_rows, run_cli, write_csv

SECRET = b"-----BEGIN PRIVATE KEY----- not for any server\n"


@pytest.fixture
def secret(tmp_path) -> Path:
    p = tmp_path / "id_private"
    p.write_bytes(SECRET)
    return p


def _env(tmp_path: Path) -> dict[str, str]:
    return cli_env(HOME=str(tmp_path))  # no ~/.my.cnf of the machine's


def _one_line_exit_2(proc) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert PASSWORD not in proc.stderr
    return lines[0]


TRIGGERS = {
    "first query": lambda q: True,  # pymysql's own SET AUTOCOMMIT during the login
    "readiness query": lambda q: "wsrep_on" in q,  # as seen in the issue
    "LOAD DATA (intercepted: another file)": lambda q: q.startswith("LOAD DATA"),
}


@pytest.mark.parametrize("when", list(TRIGGERS))
def test_rogue_server_gets_no_file_it_was_not_asked_for(tmp_path, secret, when):
    rogue = RogueServer(str(secret), TRIGGERS[when])
    try:
        write_csv(tmp_path / "s" / "a.csv", object_rows(0, 3))
        proc = run_cli(tmp_path / "s", "--db", f"mysql://lasair@127.0.0.1:{rogue.port}/x",
                       "--table", "objects", env=_env(tmp_path))
        line = _one_line_exit_2(proc)
        assert rogue.requests >= 1  # the attack really happened
        assert bytes(rogue.received) == b""  # ... and got nothing, not even an empty file
        assert str(secret) in line and "refused" in line, line
        assert SECRET.decode().strip() not in proc.stderr + proc.stdout
    finally:
        rogue.close()


def test_server_asking_for_the_shard_named_by_the_loader_gets_it(tmp_path):
    """The check is on the name, not a blanket refusal: the loader's own file is sent."""
    shard = write_csv(tmp_path / "s" / "a.csv", object_rows(0, 3))
    rogue = RogueServer(str(shard.resolve()), lambda q: q.startswith("LOAD DATA"))
    try:
        proc = run_cli(tmp_path / "s", "--db", f"mysql://lasair@127.0.0.1:{rogue.port}/x",
                       "--table", "objects", env=_env(tmp_path))
        assert proc.returncode == 0, proc.stderr
        assert bytes(rogue.received) == shard.read_bytes()
    finally:
        rogue.close()


def test_reader_connection_never_sends_a_file(tmp_path, secret):
    """connect_untrusted (for the MySQL light-curve source): LOCAL INFILE off and guarded."""
    rogue = RogueServer(str(secret), lambda q: "candidates" in q)
    try:
        conn = connect_untrusted({}, None, host="127.0.0.1", port=rogue.port, user="u",
                                 password="p")
        with pytest.raises(RefusedFileRequest, match="refused"), conn.cursor() as cur:
            cur.execute("SELECT objectId FROM candidates")
        assert bytes(rogue.received) == b""
    finally:
        rogue.close()


# -- TLS against a real MariaDB ------------------------------------------------------------

def _tls_url(server, user: str, db: str, host: str = "127.0.0.1", **params: str) -> str:
    query = "&".join(f"{k}={quote(str(v))}" for k, v in params.items())
    return f"mysql://{user}@{host}:{server.port}/{db}" + (f"?{query}" if query else "")


def _load_tls(tmp_path: Path, url: str, *extra: str):
    write_csv(tmp_path / "s" / "a.csv", object_rows(0, 5))
    schema = tmp_path / "objects.sql"
    schema.write_text("CREATE TABLE objects (objectId VARCHAR(30) PRIMARY KEY, ncand INT, "
                      "ramean DOUBLE, decmean DOUBLE, gmag FLOAT, ssnamenr VARCHAR(200));\n")
    return run_cli(tmp_path / "s", "--db", url, "--table", "objects", "--create", "--schema",
                   schema, *extra, env=_env(tmp_path))


@pytest.fixture
def tls_db(mariadb_tls_server, request):  # noqa: F811 - the fixture imported above
    server, certs = mariadb_tls_server
    name = "tls_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[-40:]
    server.create_database(name)
    return server, certs, name


def _rows(server, db: str) -> int:
    with server.connect(db) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM objects")
        return cur.fetchone()[0]


def test_verify_identity_with_the_right_ca_loads_over_tls(tls_db, tmp_path):
    server, certs, db = tls_db
    # lasair_tls is REQUIRE SSL: the load succeeding proves the connection was TLS
    proc = _load_tls(tmp_path, _tls_url(server, "lasair_tls", db, **{
        "ssl-mode": "VERIFY_IDENTITY", "ssl-ca": certs.ca}))
    assert proc.returncode == 0, proc.stderr
    assert _rows(server, db) == 5


def test_tls_options_from_the_option_file(tls_db, tmp_path):
    server, certs, db = tls_db
    cnf = tmp_path / "my.cnf"
    cnf.write_text(f"[client]\npassword={PASSWORD}\nssl-mode = VERIFY_IDENTITY\n"
                   f"ssl-ca = {certs.ca}\n")
    env = _env(tmp_path)
    del env["MYSQL_PWD"]
    write_csv(tmp_path / "s" / "a.csv", object_rows(0, 5))
    (tmp_path / "o.sql").write_text("CREATE TABLE objects (objectId VARCHAR(30) PRIMARY KEY,"
                                    " ncand INT, ramean DOUBLE, decmean DOUBLE, gmag FLOAT,"
                                    " ssnamenr VARCHAR(200));\n")
    proc = run_cli(tmp_path / "s", "--db", _tls_url(server, "lasair_tls", db), "--table",
                   "objects", "--create", "--schema", tmp_path / "o.sql", "--defaults-file",
                   cnf, env=env)
    assert proc.returncode == 0, proc.stderr
    # the same file with the wrong CA: refused, so the file's ssl-ca was really used
    cnf.write_text(cnf.read_text().replace(str(certs.ca), str(certs.wrong_ca)))
    bad = run_cli(tmp_path / "s", "--db", _tls_url(server, "lasair_tls", db), "--table",
                  "objects", "--defaults-file", cnf, env=env)
    assert "certificate verify failed" in _one_line_exit_2(bad)


def test_verify_identity_with_a_wrong_ca_fails_with_one_line(tls_db, tmp_path):
    server, certs, db = tls_db
    proc = _load_tls(tmp_path, _tls_url(server, "lasair", db, **{
        "ssl-mode": "VERIFY_IDENTITY", "ssl-ca": certs.wrong_ca}))
    line = _one_line_exit_2(proc)
    assert "TLS failed" in line and "certificate verify failed" in line, line
    with server.connect(db) as conn, conn.cursor() as cur:
        cur.execute("SHOW TABLES")
        assert cur.fetchall() == ()  # nothing was created, nothing written


def test_verify_identity_checks_the_name_verify_ca_does_not(tls_db, tmp_path):
    server, certs, db = tls_db  # the certificate names 127.0.0.1, not localhost
    bad = _load_tls(tmp_path, _tls_url(server, "lasair_tls", db, host="localhost", **{
        "ssl-mode": "VERIFY_IDENTITY", "ssl-ca": certs.ca}))
    assert "Hostname mismatch" in _one_line_exit_2(bad)
    good = _load_tls(tmp_path, _tls_url(server, "lasair_tls", db, host="localhost", **{
        "ssl-mode": "VERIFY_CA", "ssl-ca": certs.ca}))
    assert good.returncode == 0, good.stderr


def test_client_certificate_and_key(tls_db, tmp_path):
    server, certs, db = tls_db  # lasair_x509 is REQUIRE X509: no certificate, no login
    without = _load_tls(tmp_path, _tls_url(server, "lasair_x509", db, **{"ssl-ca": certs.ca}))
    assert "Access denied" in _one_line_exit_2(without)
    with_cert = _load_tls(tmp_path, _tls_url(server, "lasair_x509", db, **{
        "ssl-ca": certs.ca, "ssl-cert": certs.client_cert, "ssl-key": certs.client_key}))
    assert with_cert.returncode == 0, with_cert.stderr
    assert _rows(server, db) == 5


def test_disabled_means_plain_and_required_refuses_a_server_without_tls(tls_db, mariadb_server,
                                                                        tmp_path):
    server, _certs, db = tls_db
    plain = _load_tls(tmp_path, _tls_url(server, "lasair_tls", db, **{"ssl-mode": "DISABLED"}))
    assert "Access denied" in _one_line_exit_2(plain)  # REQUIRE SSL user, no TLS
    mariadb_server.create_database("tls_required")  # this server has no TLS at all
    proc = _load_tls(tmp_path, _tls_url(mariadb_server, "lasair", "tls_required",
                                        **{"ssl-mode": "REQUIRED"}))
    line = _one_line_exit_2(proc)
    assert "TLS" in line or "SSL" in line, line


@pytest.mark.parametrize("query, what", [
    ("ssl-mode=SOMETIMES", "ssl-mode 'SOMETIMES'"),
    ("ssl-ca=/nonexistent/ca.pem", "ssl-ca /nonexistent/ca.pem"),
    ("ssl-verify=1", "'ssl-verify' is not supported"),
    ("ssl-key=/etc/hostname", "ssl-key without ssl-cert"),
    ("ssl-cert=/etc/passwd", "cannot use ssl-cert/ssl-key /etc/passwd"),
    ("ssl-ca=/etc/passwd", "cannot use ssl-ca /etc/passwd"),
])
def test_bad_tls_options_are_one_line_before_connecting(tmp_path, query, what):
    write_csv(tmp_path / "s" / "a.csv", object_rows(0, 1))
    # port 1: nothing listens; the options must be refused before any connection is tried
    proc = run_cli(tmp_path / "s", "--db", f"mysql://u@127.0.0.1:1/db?{query}", "--table",
                   "objects", env=_env(tmp_path))
    line = _one_line_exit_2(proc)
    assert what in line, line


def test_reader_connection_takes_the_same_tls_options(tls_db):
    server, certs, _db = tls_db
    kw = dict(host="127.0.0.1", port=server.port, user="lasair_tls", password=PASSWORD)
    conn = connect_untrusted({"ssl-mode": "VERIFY_IDENTITY", "ssl-ca": str(certs.ca)}, **kw)
    assert conn.encrypted
    conn.close()
    with pytest.raises(pymysql.err.OperationalError, match="certificate verify failed"):
        connect_untrusted({"ssl-mode": "VERIFY_IDENTITY", "ssl-ca": str(certs.wrong_ca)}, **kw)
    with pytest.raises(UsageError, match="ssl-mode"):
        connect_untrusted({"ssl_mode": "maybe"}, **kw)


def test_light_curve_source_refuses_file_requests_and_verifies_tls(tls_db, tmp_path, secret,
                                                                  monkeypatch):
    """apps/rebuild_objects' MySQL source connects through connect_untrusted."""
    from lasair_parallel.apps.rebuild_objects.sources.sql import mysql_source

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MYSQL_PWD", PASSWORD)
    rogue = RogueServer(str(secret), lambda q: "candidates" in q)
    try:
        src = mysql_source(f"mysql://u@127.0.0.1:{rogue.port}/db?reader=rows")
        with pytest.raises(RefusedFileRequest):
            src.list_objects()
        assert rogue.requests == 1 and bytes(rogue.received) == b""
    finally:
        rogue.close()
    server, certs, db = tls_db
    base = f"mysql://lasair_tls@127.0.0.1:{server.port}/{db}?ssl-mode=VERIFY_IDENTITY&ssl-ca="
    good = mysql_source(base + quote(str(certs.ca)))
    assert good.conn().encrypted
    assert good.arrow is None  # connectorx cannot verify TLS: block reads stay on pymysql
    good.close()
    with pytest.raises(pymysql.err.OperationalError, match="certificate verify failed"):
        mysql_source(base + quote(str(certs.wrong_ca))).conn()
