"""CLI behaviour: bad usage exits 2 with one line, passwords never appear, schemas are found."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import test_csv_to_database_common as common
from fixtures_mariadb import PASSWORD
from test_csv_to_database_common import (
    DB,
    REPO,
    SCHEMA,
    cli_argv,
    cli_env,
    load,
    object_rows,
    run_cli,
    schema_file,
    write_csv,
)

db = common.db  # the SQLite + MariaDB fixture, used by name


def _usage_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_no_shards_is_usage_error(db, tmp_path):
    (tmp_path / "empty").mkdir()
    _usage_error(load(db, tmp_path / "empty"), "no CSV shards")
    _usage_error(load(db, tmp_path / "missing"), "no such file")


def test_missing_table_without_create(db, tmp_path):
    write_csv(tmp_path / "s" / "a.csv", object_rows(0, 1))
    _usage_error(load(db, tmp_path / "s"), "objects", "--create")


def test_schema_for_another_table_is_refused(db, tmp_path):
    write_csv(tmp_path / "s" / "a.csv", object_rows(0, 1))
    proc = load(db, tmp_path / "s", table="other", schema=schema_file(tmp_path))
    _usage_error(proc, "creates table objects, not other")


def test_bad_urls_and_table_names(tmp_path):
    write_csv(tmp_path / "s" / "a.csv", object_rows(0, 1))
    _usage_error(run_cli(tmp_path / "s", "--db", "postgres://x/y", "--table", "t"), "scheme")
    _usage_error(run_cli(tmp_path / "s", "--db", "mysql://u@h:notaport/db", "--table", "t"),
                 "host:port")
    _usage_error(run_cli(tmp_path / "s", "--db", "mysql://u@h:3306", "--table", "t"), "database")
    _usage_error(run_cli(tmp_path / "s", "--db", f"sqlite:///{tmp_path}/x.db", "--table",
                         "t; DROP TABLE x"), "identifier")
    proc = run_cli(tmp_path / "s", "--table", "t", "--parallel", "0")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_default_db_is_sqlite_lasair_db_in_cwd(tmp_path):
    write_csv(tmp_path / "s" / "a.csv", object_rows(0, 2))
    proc = run_cli("s/*.csv", "--table", "objects", "--create", "--schema",
                   schema_file(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert DB("sqlite", f"sqlite:///{tmp_path / 'lasair.db'}").scalar(
        "SELECT COUNT(*) FROM objects") == 2


def test_create_uses_the_apps_schema(db, tmp_path):
    sql = REPO / "apps" / "rebuild_objects" / "schema" / "objects.sql"
    if not sql.is_file():
        pytest.skip("apps/rebuild_objects/schema/objects.sql not written yet")
    write_csv(tmp_path / "s" / "a.csv", [["ZTF1", 3, 0, 0, 0]],
              header=["objectId", "ncand", "ncandgp", "ncandgp_7", "ncandgp_14"])
    proc = run_cli(tmp_path / "s", "--db", db.url, "--table", "objects", "--create")
    assert proc.returncode == 0, proc.stderr
    assert db.query("SELECT objectId, ncand, ramean FROM objects") == [("ZTF1", 3, None)]


# -- passwords (MariaDB only) -------------------------------------------------------------

@pytest.fixture
def mysql_db(request, tmp_path) -> DB:
    server = request.getfixturevalue("mariadb_server")
    server.create_database("t_cli_pw")
    return DB("mysql", server.url("t_cli_pw"), server, "t_cli_pw")


def _no_password(proc: subprocess.CompletedProcess, password: str = PASSWORD) -> None:
    assert password not in proc.stdout and password not in proc.stderr


def test_password_from_env_never_in_argv_or_output(mysql_db, tmp_path):
    write_csv(tmp_path / "s" / "a.csv", object_rows(0, 50000))
    argv = cli_argv(tmp_path / "s", "--db", mysql_db.url, "--table", "objects", "--create",
                    "--schema", schema_file(tmp_path))
    assert not any(PASSWORD in a for a in argv)
    proc = subprocess.Popen(argv, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    # while it runs, what `ps` would show of it holds no password
    cmdlines = []
    while proc.poll() is None:
        try:
            cmdlines.append(Path(f"/proc/{proc.pid}/cmdline").read_bytes())
        except OSError:
            break
        time.sleep(0.02)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert cmdlines and not any(PASSWORD.encode() in c for c in cmdlines)
    assert PASSWORD not in out + err
    assert mysql_db.scalar("SELECT COUNT(*) FROM objects") == 50000


def test_wrong_or_missing_password_is_a_one_line_error(mysql_db, tmp_path):
    write_csv(tmp_path / "s" / "a.csv", object_rows(0, 1))
    wrong = "hunter2-not-it"
    proc = run_cli(tmp_path / "s", "--db", mysql_db.url, "--table", "objects",
                   env=cli_env(MYSQL_PWD=wrong))
    _usage_error(proc, "Access denied", "MYSQL_PWD")
    _no_password(proc, wrong)
    env = cli_env(HOME=str(tmp_path))
    del env["MYSQL_PWD"]
    proc = run_cli(tmp_path / "s", "--db", mysql_db.url, "--table", "objects", env=env)
    _usage_error(proc, "Access denied")


def test_password_in_url_is_refused_and_not_echoed(mysql_db, tmp_path):
    write_csv(tmp_path / "s" / "a.csv", object_rows(0, 1))
    s = mysql_db.server
    proc = run_cli(tmp_path / "s", "--db", f"mysql://lasair:{PASSWORD}@127.0.0.1:{s.port}/t_cli_pw",
                   "--table", "objects")
    _usage_error(proc, "password")
    _no_password(proc)


def test_password_from_option_files_and_named_env(mysql_db, tmp_path):
    write_csv(tmp_path / "s" / "a.csv", object_rows(0, 3))
    env = cli_env(HOME=str(tmp_path))
    del env["MYSQL_PWD"]
    cnf = tmp_path / "client.cnf"
    cnf.write_text(f'[client]\nuser = lasair\npassword = "{PASSWORD}"\n')
    proc = run_cli(tmp_path / "s", "--db", mysql_db.url, "--table", "objects", "--create",
                   "--schema", schema_file(tmp_path), "--defaults-file", cnf, env=env)
    assert proc.returncode == 0, proc.stderr
    _no_password(proc)
    # ~/.my.cnf (HOME is tmp_path here), and a URL without a user takes it from the file
    (tmp_path / ".my.cnf").write_text(f"[client]\nuser=lasair\npassword={PASSWORD}\n")
    url_no_user = mysql_db.url.replace("lasair@", "")
    proc = run_cli(tmp_path / "s", "--db", url_no_user, "--table", "objects", "--reload", env=env)
    assert proc.returncode == 0 and "1 skipped" in proc.stdout, proc.stderr
    (tmp_path / ".my.cnf").unlink()
    env["LASAIR_DB_PASSWORD"] = PASSWORD
    proc = run_cli(tmp_path / "s", "--db", mysql_db.url, "--table", "objects",
                   "--password-env", "LASAIR_DB_PASSWORD", env=env)
    assert proc.returncode == 0 and "1 skipped" in proc.stdout, proc.stderr


def test_unreachable_server_is_a_one_line_error(tmp_path):
    write_csv(tmp_path / "s" / "a.csv", object_rows(0, 1))
    proc = run_cli(tmp_path / "s", "--db", "mysql://lasair@127.0.0.1:1/db", "--table", "objects")
    _usage_error(proc, "cannot connect", "127.0.0.1:1")


def test_schema_sql_is_a_single_create_table(tmp_path):
    write_csv(tmp_path / "s" / "a.csv", object_rows(0, 1))
    bad = tmp_path / "two.sql"
    bad.write_text(SCHEMA + ";\nDROP TABLE objects;\n")
    proc = run_cli(tmp_path / "s", "--db", f"sqlite:///{tmp_path}/x.db", "--table", "objects",
                   "--schema", bad)
    _usage_error(proc, "more than one statement")


def test_progress_bar_on_a_terminal(tmp_path):
    """On a terminal, progress is a tqdm bar in bytes (plain lines are for logs)."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    for k in range(3):
        write_csv(tmp_path / "s" / f"{k}.csv", object_rows(k * 10, 10))
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 24x100
    proc = subprocess.Popen(
        cli_argv(tmp_path / "s", "--db", f"sqlite:///{tmp_path}/x.db", "--table", "objects",
                 "--create", "--schema", schema_file(tmp_path)),
        env=cli_env(), stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    out, _ = proc.communicate(timeout=60)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    tty_text = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0
    assert "100%" in tty_text and "loading" in tty_text and "shards," not in tty_text
    assert b"3 loaded (30 rows)" in out
