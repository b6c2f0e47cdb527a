"""Malformed and hostile shards: each fails alone with file:line, and nothing of it is committed."""

from __future__ import annotations

import pytest
import test_csv_to_database_common as common
from test_csv_to_database_common import (
    HEADER,
    assert_one_line_error,
    load,
    object_rows,
    schema_file,
    write_csv,
)

db = common.db  # the SQLite + MariaDB fixture, used by name


def _only_good_loaded(target, proc, bad_name: str, line: int | None) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert_one_line_error(proc)
    where = f"{bad_name}:{line}" if line else bad_name
    assert where in proc.stderr, proc.stderr
    assert target.scalar("SELECT COUNT(*) FROM objects") == 2  # good.csv only
    assert target.query("SELECT name FROM csv_to_database_ledger") == [("good.csv",)]


def _with_good(tmp_path):
    write_csv(tmp_path / "s" / "good.csv", object_rows(100, 2))
    return tmp_path / "s"


def test_ragged_row_fails_its_shard_with_the_line(db, tmp_path):
    d = _with_good(tmp_path)
    (d / "ragged.csv").write_text(",".join(HEADER) + "\nZ1,1,1,1,1,a\nZ2,2,2,2,2,b\nZ3,3,3\n")
    proc = load(db, d, schema=schema_file(tmp_path))
    _only_good_loaded(db, proc, "ragged.csv", 4)


def test_too_many_fields(db, tmp_path):
    d = _with_good(tmp_path)
    (d / "wide.csv").write_text(",".join(HEADER) + "\nZ1,1,1,1,1,a\nZ2,2,2,2,2,b,extra\n")
    proc = load(db, d, schema=schema_file(tmp_path))
    _only_good_loaded(db, proc, "wide.csv", 3)


def test_bad_number_is_refused_not_truncated(db, tmp_path):
    d = _with_good(tmp_path)
    (d / "num.csv").write_text(",".join(HEADER) + "\nZ1,1,1,1,1,a\nZ2,2,12abc,2,2,b\n")
    proc = load(db, d, schema=schema_file(tmp_path))
    _only_good_loaded(db, proc, "num.csv", 3)


def test_bad_number_in_a_quoted_file(db, tmp_path):
    d = _with_good(tmp_path)
    write_csv(d / "numq.csv", [["Z1", 1, 1, 1, 1, "a,b"], ["Z2", "1.5e", 1, 1, 1, "c"]])
    proc = load(db, d, schema=schema_file(tmp_path))
    _only_good_loaded(db, proc, "numq.csv", 3)


def test_quotes_commas_newlines_backslashes_and_tabs_survive(db, tmp_path):
    texts = ['a "quoted" word', "comma, inside", "two\nlines", "back\\slash \\N", "tab\there",
             "crlf\r\nin field", "unicodé ✓", "NULL", "\\"]
    rows = [[f"Z{i}", i, i, i, i, t] for i, t in enumerate(texts)]
    write_csv(tmp_path / "s" / "q.csv", rows, lineterminator="\r\n")
    proc = load(db, tmp_path / "s", schema=schema_file(tmp_path))
    assert proc.returncode == 0, proc.stderr
    got = dict(db.query("SELECT objectId, ssnamenr FROM objects"))
    assert got == {f"Z{i}": t for i, t in enumerate(texts)}


def test_unbalanced_quote_fails_with_its_line(db, tmp_path):
    d = _with_good(tmp_path)
    (d / "quote.csv").write_text(",".join(HEADER) + '\nZ1,1,1,1,1,"ok"\nZ2,2,2,2,2,"bad"x\n')
    proc = load(db, d, schema=schema_file(tmp_path))
    _only_good_loaded(db, proc, "quote.csv", 3)


def test_file_name_with_quotes_and_spaces(db, tmp_path):
    name = "it's a \"shard\"; DROP TABLE objects.csv"
    write_csv(tmp_path / "s" / name, object_rows(0, 4))
    proc = load(db, tmp_path / "s", schema=schema_file(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert db.scalar("SELECT COUNT(*) FROM objects") == 4
    assert db.query("SELECT name FROM csv_to_database_ledger") == [(name,)]
    again = load(db, tmp_path / "s")
    assert "1 skipped" in again.stdout


def test_nul_byte_fails_with_its_line(db, tmp_path):
    d = _with_good(tmp_path)
    (d / "nul.csv").write_bytes((",".join(HEADER) + "\nZ1,1,1,1,1,a\nZ2,2,2,2,2,b\x00c\n").encode())
    proc = load(db, d, schema=schema_file(tmp_path))
    _only_good_loaded(db, proc, "nul.csv", 3)
    assert "NUL" in proc.stderr


def test_not_utf8_fails(db, tmp_path):
    d = _with_good(tmp_path)
    (d / "latin.csv").write_bytes((",".join(HEADER) + "\nZ1,1,1,1,1,caf").encode() + b"\xe9\n")
    proc = load(db, d, schema=schema_file(tmp_path))
    _only_good_loaded(db, proc, "latin.csv", None)


def test_field_over_the_size_limit_fails(db, tmp_path):
    d = _with_good(tmp_path)
    big = "x" * (17 * 1024 * 1024)  # above the loader's 16 MiB field limit
    write_csv(d / "huge.csv", [["Z1", 1, 1, 1, 1, big]])
    proc = load(db, d, schema=schema_file(tmp_path))
    _only_good_loaded(db, proc, "huge.csv", None)
    assert len(proc.stderr) < 2000  # the field is not echoed


def test_long_text_into_a_short_column(db, tmp_path):
    d = _with_good(tmp_path)
    write_csv(d / "long.csv", [["Z1", 1, 1, 1, 1, "y" * 300]])  # ssnamenr is VARCHAR(200)
    proc = load(db, d, schema=schema_file(tmp_path))
    if db.kind == "mysql":  # MySQL would truncate with a warning: that is an error here
        _only_good_loaded(db, proc, "long.csv", 2)
    else:  # SQLite does not enforce VARCHAR lengths: the value is kept whole
        assert proc.returncode == 0, proc.stderr
        assert db.scalar("SELECT LENGTH(ssnamenr) FROM objects WHERE objectId = 'Z1'") == 300


def test_int_column_refuses_a_fraction(db, tmp_path):
    d = _with_good(tmp_path)
    (d / "frac.csv").write_text(",".join(HEADER) + "\nZ1,1.5,1,1,1,a\n")
    proc = load(db, d, schema=schema_file(tmp_path))
    _only_good_loaded(db, proc, "frac.csv", 2)


def test_empty_primary_key_is_refused(db, tmp_path):
    d = _with_good(tmp_path)
    (d / "nokey.csv").write_text(",".join(HEADER) + "\nZ1,1,1,1,1,a\n,2,2,2,2,b\n")
    proc = load(db, d, schema=schema_file(tmp_path))
    assert proc.returncode == 1
    assert "nokey.csv" in proc.stderr
    assert db.scalar("SELECT COUNT(*) FROM objects WHERE objectId = 'Z1'") == 0


def test_empty_file_and_header_only(db, tmp_path):
    d = _with_good(tmp_path)
    (d / "empty.csv").write_text("")
    (d / "header.csv").write_text(",".join(HEADER) + "\n")
    proc = load(db, d, schema=schema_file(tmp_path))
    assert proc.returncode == 1
    assert "empty.csv:1" in proc.stderr
    assert "2 loaded (2 rows)" in proc.stdout  # good.csv and header.csv (0 rows)


def test_duplicate_header_column(db, tmp_path):
    d = _with_good(tmp_path)
    (d / "dup.csv").write_text("objectId,ncand,ncand\nZ1,1,2\n")
    proc = load(db, d, schema=schema_file(tmp_path))
    _only_good_loaded(db, proc, "dup.csv", 1)
    assert "duplicate" in proc.stderr


def test_backslashes_in_a_plain_file_are_literal(db, tmp_path):
    # no quotes: MySQL gets a byte-level copy; a literal \N must stay text, not become NULL
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "bs.csv").write_text(
        ",".join(HEADER) + "\nZ1,1,1,1,1,a\\b\nZ2,2,2,2,2,\\N\nZ3,,,,,\\\\\nZ4,4,4,4,4,\n")
    proc = load(db, tmp_path / "s", schema=schema_file(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert db.query("SELECT objectId, ncand, ssnamenr FROM objects ORDER BY objectId") == [
        ("Z1", 1, "a\\b"), ("Z2", 2, "\\N"), ("Z3", None, "\\\\"), ("Z4", 4, None)]


def test_non_strict_server_warnings_are_errors(db, tmp_path):
    """With sql_mode '' (old MySQL default) bad values are only warnings: still refused."""
    if db.kind != "mysql":
        pytest.skip("SQLite has no sql_mode; the other tests cover its checks")
    d = _with_good(tmp_path)
    (d / "warn.csv").write_text(",".join(HEADER) + "\nZ1,1,1,1,1,a\nZ2,2,12abc,2,2,b\n")
    write_csv(d / "long.csv", [["Z3", 1, 1, 1, 1, "y" * 300]])
    with db.server.root() as conn, conn.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.sql_mode")
        mode = cur.fetchone()[0]
        cur.execute("SET GLOBAL sql_mode = ''")
    try:
        proc = load(db, d, schema=schema_file(tmp_path))
    finally:
        with db.server.root() as conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL sql_mode = %s", (mode,))
    assert proc.returncode == 1
    assert "warn.csv:3" in proc.stderr and "long.csv:2" in proc.stderr
    assert db.scalar("SELECT COUNT(*) FROM objects") == 2
