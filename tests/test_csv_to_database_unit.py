"""Library pieces without a database: URLs, option files, schema lookup, headers, scanning."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from lasair_parallel.csv_to_database.errors import ShardError, UsageError, show_path
from lasair_parallel.csv_to_database.schema import (
    check_create_sql,
    find_app_schemas,
    kind_of,
    load_schema,
    sqlite_statements,
)
from lasair_parallel.csv_to_database.shard import Column, Shard, match_header, scan
from lasair_parallel.csv_to_database.targets import (
    Secret,
    find_credentials,
    parse_db_url,
    parse_db_urls,
    read_option_file,
)


def test_parse_sqlite_urls():
    assert parse_db_url("sqlite:///lasair.db").path == "lasair.db"
    assert parse_db_url("sqlite:////abs/x.db").path == "/abs/x.db"
    with pytest.raises(UsageError):
        parse_db_url("sqlite://x.db")


def test_parse_mysql_urls_and_galera_host_lists():
    t = parse_db_url("mysql://user@h1:3307,h2,h3:3309/ztf")
    assert (t.user, t.database, t.hosts) == ("user", "ztf", (("h1", 3307), ("h2", 3306), ("h3", 3309)))
    t = parse_db_urls(["mysql://u@a:1/d", "mysql://u@b:2/d"])
    assert t.hosts == (("a", 1), ("b", 2))
    assert parse_db_url("mysql://u@localhost/d?unix_socket=/s.sock").unix_socket == "/s.sock"
    with pytest.raises(UsageError, match="same user and database"):
        parse_db_urls(["mysql://u@a:1/d", "mysql://u@b:2/other"])


def test_password_in_url_is_refused_without_echo():
    with pytest.raises(UsageError) as e:
        parse_db_url("mysql://u:topsecret@h/d")
    assert "topsecret" not in str(e.value)


def test_secret_hides_itself():
    s = Secret("pw-123")
    assert "pw-123" not in repr(s) and "pw-123" not in str(s)
    assert s.scrub("login pw-123 failed") == "login *** failed"


def test_option_file_and_env_precedence(tmp_path, monkeypatch):
    cnf = tmp_path / "my.cnf"
    cnf.write_text("[mysqld]\npassword=nope\n[client]\nuser = bob\npassword = 'quoted pw'\n")
    assert read_option_file(cnf) == {"user": "bob", "password": "quoted pw"}
    t = parse_db_url("mysql://h/d")
    monkeypatch.delenv("MYSQL_PWD", raising=False)
    c = find_credentials(t, defaults_file=cnf)
    assert (c.user, c.password.get(), c.source) == ("bob", "quoted pw", "option file")
    monkeypatch.setenv("MYSQL_PWD", "from-env")
    assert find_credentials(t, defaults_file=cnf).password.get() == "from-env"
    with pytest.raises(UsageError):
        find_credentials(t, defaults_file=tmp_path / "missing.cnf")


def test_find_app_schemas_through_entry_points(tmp_path, monkeypatch):
    """A distribution declaring a schema package is found; an apps folder is never scanned."""
    pkg = tmp_path / "fakeapps_ctd"
    (pkg / "one" / "schema").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "one" / "__init__.py").write_text("")
    (pkg / "one" / "schema" / "things.sql").write_text("CREATE TABLE things (a INT PRIMARY KEY);")
    (pkg / "two" / "schema").mkdir(parents=True)  # not declared: must not be found
    (pkg / "two" / "__init__.py").write_text("")
    (pkg / "two" / "schema" / "things.sql").write_text("CREATE TABLE things (b INT);")
    dist = tmp_path / "fakeapps_ctd-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeapps-ctd\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[lasair_parallel.schemas]\none = fakeapps_ctd.one\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = [f for f in find_app_schemas("things") if f[0].startswith("fakeapps_ctd")]
    assert found == [("fakeapps_ctd/one/schema/things.sql",
                      "CREATE TABLE things (a INT PRIMARY KEY);")]
    assert find_app_schemas("nothing") == []
    assert [o for o, _ in find_app_schemas("objects")] == \
        ["lasair_parallel/apps/rebuild_objects/schema/objects.sql"]
    for m in [m for m in sys.modules if m.startswith("fakeapps_ctd")]:
        sys.modules.pop(m)


def test_schema_file_checks(tmp_path):
    assert check_create_sql("-- c\nCREATE TABLE IF NOT EXISTS `t` (a INT);\n", "t", "f") == \
        "CREATE TABLE IF NOT EXISTS `t` (a INT)"
    with pytest.raises(UsageError, match="not a CREATE TABLE"):
        check_create_sql("DROP TABLE t", "t", "f")
    with pytest.raises(UsageError, match="no app ships"):
        load_schema("no_such_table_xyz", None)


def test_kinds_follow_sqlite_affinity():
    assert [kind_of(t) for t in ("INT", "bigint", "DOUBLE", "float", "VARCHAR(30)", "")] == \
        ["int", "int", "float", "float", "text", "text"]


def test_header_errors_name_the_columns():
    cols = {"objectid": Column("objectId", "text", pk=True), "ncand": Column("ncand", "int")}
    assert [c.name for c in match_header(Path("f.csv"), ["NCAND", "objectid"], "t", cols)] == \
        ["ncand", "objectId"]
    with pytest.raises(ShardError) as e:
        match_header(Path("f.csv"), ["objectId", "colour"], "t", cols)
    assert "f.csv:1" in str(e.value) and "'colour'" in str(e.value) and "ncand" in str(e.value)
    with pytest.raises(ShardError, match="primary key"):
        match_header(Path("f.csv"), ["ncand"], "t", cols)


def test_scan_detects_files_mysql_can_read_as_is(tmp_path):
    plain = tmp_path / "a.csv"
    plain.write_bytes(b"a,b\n1,2\n3,\n")
    s = scan(plain)
    assert s.simple and s.newlines == 3 and s.commas == 3
    s.columns = [Column("a", "int"), Column("b", "int")]
    assert s.simple_rows() == 2 and s.simple_shape_ok() and s.line_of(2) == 3
    for body in (b'a,b\n"1",2\n', b"a,b\r\n1,2\r\n", b"a,b\n\n1,2\n", b"a,b\n1,\x002\n"):
        plain.write_bytes(body)
        assert not scan(plain).simple, body
    plain.write_bytes(b"a,b\n1\n3,4,5\n")  # same comma count, ragged: LOAD DATA warns (1262)
    s = scan(plain)
    s.columns = [Column("a", "int"), Column("b", "int")]
    assert s.simple_shape_ok()
    plain.write_bytes(b"a,b\n1\n")
    s = scan(plain)
    s.columns = [Column("a", "int"), Column("b", "int")]
    assert not s.simple_shape_ok()


def test_one_line_errors_for_odd_file_names():
    e = ShardError(Path("we'ird\nname.csv"), 3, "bad\nthing", "fix")
    assert "\n" not in str(e) and ":3" in str(e)
    assert show_path("plain.csv") == "plain.csv"
    assert Shard(Path("x/y.csv")).name == "y.csv"


def test_mysql_inline_keys_become_sqlite_indexes():
    import sqlite3

    sql = ("CREATE TABLE t (a VARCHAR(9) PRIMARY KEY, b BIGINT, c INT,\n  KEY b (b),\n"
           "  UNIQUE KEY `bc` (`b`, c)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")
    stmts = sqlite_statements(sql, "t")
    conn = sqlite3.connect(":memory:")
    for s in stmts:
        conn.execute(s)
    names = {r[1] for r in conn.execute("PRAGMA index_list('t')")}
    assert {"t_b", "t_bc"} <= names


# -- TLS options (issue 11): resolved as the mysql client resolves them ---------------------

def _tls(url_params: dict, file_text: str | None, tmp_path: Path):
    from lasair_parallel.csv_to_database.tls import tls_options

    opts = {}
    if file_text is not None:
        cnf = tmp_path / "my.cnf"
        cnf.write_text("[client]\n" + file_text)
        opts = read_option_file(cnf)
    return tls_options(url_params, opts)


def test_tls_defaults_and_precedence(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not read until connecting")
    assert _tls({}, None, tmp_path).mode == "PREFERRED"  # the mysql client's default
    assert _tls({"ssl-ca": str(ca)}, None, tmp_path).mode == "VERIFY_CA"  # a CA is for checking
    assert _tls({}, "ssl-verify-server-cert\n", tmp_path).mode == "VERIFY_IDENTITY"  # MariaDB's
    t = _tls({"ssl_mode": "verify_identity"}, f"ssl-mode=DISABLED\nssl-ca={ca}\n", tmp_path)
    assert (t.mode, t.ca) == ("VERIFY_IDENTITY", str(ca))  # the URL wins, the file fills in
    assert _tls({}, "ssl-cipher=AES\n", tmp_path).mode == "PREFERRED"  # mysql client's, ignored
    assert not _tls({"ssl-mode": "PREFERRED"}, None, tmp_path).required
    assert _tls({"ssl-mode": "REQUIRED"}, None, tmp_path).required
    assert _tls({"ssl-mode": "DISABLED"}, None, tmp_path).context() is None


def test_tls_options_survive_url_parsing_and_merging():
    t = parse_db_urls(["mysql://u@h1/db?ssl-mode=REQUIRED", "mysql://u@h2/db"])
    assert dict(t.params) == {"ssl-mode": "REQUIRED"} and len(t.hosts) == 2
    with pytest.raises(UsageError, match="same ssl"):
        parse_db_urls(["mysql://u@h1/db?ssl-mode=REQUIRED", "mysql://u@h2/db?ssl-mode=DISABLED"])
    with pytest.raises(UsageError, match="ssl-mode 'NEVER'"):
        parse_db_url("mysql://u@h/db?ssl-mode=never")


def test_bad_tls_line_in_the_option_file_is_one_line(tmp_path):
    cnf = tmp_path / "my.cnf"
    cnf.write_text("[client]\nssl-ca=/nonexistent/ca.pem\n")
    with pytest.raises(UsageError, match=r"ssl-ca /nonexistent/ca.pem \(from option file\)"):
        find_credentials(parse_db_url("mysql://u@h/db"), defaults_file=cnf)


def test_tls_asked_tells_readers_when_only_a_tls_capable_client_will_do(tmp_path):
    from lasair_parallel.csv_to_database.targets import tls_asked

    cnf = tmp_path / "my.cnf"
    cnf.write_text("[client]\nuser=u\n")
    assert not tls_asked({"table": "candidates"}, cnf)
    assert not tls_asked({"ssl-mode": "DISABLED"})
    assert tls_asked({"ssl-mode": "REQUIRED"})
    cnf.write_text("[client]\nssl-verify-server-cert\n")
    assert tls_asked({}, cnf)
