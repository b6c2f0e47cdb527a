"""Issue 11, cases 10 and 1 for ``parallel run --stream-to``: the target is checked before the
first task (one line, exit 2, no task runs), the loader's trust rules and TLS apply to it.

Real parts: the ``parallel`` CLI as a subprocess, the busy app streaming rows, a real MariaDB
(plain and TLS); the rogue server of tests/mysql_rogue.py plays the attacker.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from fixtures_mariadb import PASSWORD, mariadb_tls_server  # noqa: F401 - a fixture
from helpers import PARALLEL
from mysql_rogue import RogueServer

BUSY = ["--", "--count", "3", "--seconds", "0", "--emit-rows", "20"]


def run_parallel(tmp_path: Path, *args: str, password: str | None = PASSWORD
                 ) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1", HOME=str(tmp_path))
    env.pop("MYSQL_PWD", None)
    if password is not None:
        env["MYSQL_PWD"] = password
    return subprocess.run([*PARALLEL, "run", "apps/busy", "--procs", "2", "-q", *args, *BUSY],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=180)


def _refused_up_front(tmp_path: Path, proc: subprocess.CompletedProcess) -> str:
    """Exit 2, one line on stderr, no traceback, no password, and not one task ran."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("parallel: error: --stream-to:"), lines[0]
    assert PASSWORD not in proc.stderr + proc.stdout
    assert not list(tmp_path.glob("runs/*/stream/*")), "tasks ran and streamed rows"
    assert not list(tmp_path.glob("runs/*/.spool/*")), "tasks ran and streamed rows"
    return lines[0]


def test_wrong_password_before_the_first_task(mariadb_server, tmp_path):
    mariadb_server.create_database("st_pw")
    proc = run_parallel(tmp_path, "--stream-to", mariadb_server.url("st_pw"), "--stream-table",
                        "busy_rows", "--stream-create", password="wrong-password")
    assert "Access denied" in _refused_up_front(tmp_path, proc)


def test_missing_table_without_stream_create(mariadb_server, tmp_path):
    mariadb_server.create_database("st_missing")
    proc = run_parallel(tmp_path, "--stream-to", mariadb_server.url("st_missing"),
                        "--stream-table", "busy_rows")
    line = _refused_up_front(tmp_path, proc)
    assert "busy_rows does not exist" in line and "--stream-create" in line, line


def test_missing_sqlite_table_without_stream_create_creates_no_file(tmp_path):
    db = tmp_path / "rows.db"
    proc = run_parallel(tmp_path, "--stream-to", f"sqlite:///{db}", "--stream-table", "busy_rows")
    assert "--stream-create" in _refused_up_front(tmp_path, proc)
    assert not db.exists()  # the check wrote nothing


@pytest.mark.parametrize("table", ["busy_rows; DROP TABLE x", "1abc", "a" * 65])
def test_bad_identifier(tmp_path, table):
    proc = run_parallel(tmp_path, "--stream-to", f"sqlite:///{tmp_path / 'r.db'}",
                        "--stream-table", table, "--stream-create")
    assert "plain identifier" in _refused_up_front(tmp_path, proc)


def test_no_schema_for_stream_create(tmp_path):
    proc = run_parallel(tmp_path, "--stream-to", f"sqlite:///{tmp_path / 'r.db'}",
                        "--stream-table", "no_such_rows", "--stream-create")
    _refused_up_front(tmp_path, proc)


def test_checked_target_still_loads_every_row(mariadb_server, tmp_path):
    """The check changes nothing for a good target: rows arrive, exactly once."""
    mariadb_server.create_database("st_ok")
    proc = run_parallel(tmp_path, "--stream-to", mariadb_server.url("st_ok"), "--stream-table",
                        "busy_rows", "--stream-create")
    assert proc.returncode == 0, proc.stderr
    with mariadb_server.connect("st_ok") as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*), COUNT(DISTINCT task) FROM busy_rows")
        assert cur.fetchone() == (60, 3)


def test_rogue_stream_target_gets_no_file(tmp_path):
    secret = tmp_path / "id_private"
    secret.write_text("not for any server\n")
    rogue = RogueServer(str(secret), lambda q: "wsrep_on" in q)
    try:
        proc = run_parallel(tmp_path, "--stream-to", f"mysql://u@127.0.0.1:{rogue.port}/db",
                            "--stream-table", "busy_rows", "--stream-create")
        line = _refused_up_front(tmp_path, proc)
        assert "refused" in line and str(secret) in line, line
        assert rogue.requests == 1 and bytes(rogue.received) == b""
    finally:
        rogue.close()


def test_stream_to_over_verified_tls(mariadb_tls_server, tmp_path):  # noqa: F811
    server, certs = mariadb_tls_server
    server.create_database("st_tls")
    base = f"mysql://lasair_tls@127.0.0.1:{server.port}/st_tls?ssl-mode=VERIFY_IDENTITY&ssl-ca="
    bad = run_parallel(tmp_path, "--stream-to", base + quote(str(certs.wrong_ca)),
                       "--stream-table", "busy_rows", "--stream-create")
    assert "certificate verify failed" in _refused_up_front(tmp_path, bad)
    good = run_parallel(tmp_path, "--stream-to", base + quote(str(certs.ca)), "--stream-table",
                        "busy_rows", "--stream-create")
    assert good.returncode == 0, good.stderr
    with server.connect("st_tls") as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM busy_rows")
        assert cur.fetchone()[0] == 60
