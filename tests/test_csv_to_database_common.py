"""Shared helpers and fixtures for the csv_to_database tests (imported by the other files).

Every CLI test runs ``python -m lasair_parallel.csv_to_database.cli`` as a real subprocess against a real
database: a fresh MariaDB database (session server) or a fresh SQLite file per test.
"""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from fixtures_mariadb import PASSWORD

REPO = Path(__file__).resolve().parents[1]

# The objects-table shape, small: a PK, ints, doubles, floats and a free-text column.
SCHEMA = """CREATE TABLE objects (
    objectId VARCHAR(30) PRIMARY KEY,
    ncand INT,
    ramean DOUBLE,
    decmean DOUBLE,
    gmag FLOAT,
    ssnamenr VARCHAR(200)
)"""
HEADER = ["objectId", "ncand", "ramean", "decmean", "gmag", "ssnamenr"]

# No natural key: loading a shard twice would double its rows, so counts prove exactly-once.
EVENTS_MYSQL = """CREATE TABLE events (id BIGINT AUTO_INCREMENT PRIMARY KEY,
    objectId VARCHAR(30) NOT NULL, jd DOUBLE, mag DOUBLE)"""
EVENTS_SQLITE = """CREATE TABLE events (id INTEGER PRIMARY KEY,
    objectId VARCHAR(30) NOT NULL, jd DOUBLE, mag DOUBLE)"""


@dataclass
class DB:
    """A target database for one test: its URL and a way to query it directly."""

    kind: str
    url: str
    server: object = None
    name: str = ""

    def query(self, sql: str) -> list[tuple]:
        if self.kind == "sqlite":
            with sqlite3.connect(self.url.removeprefix("sqlite:///")) as conn:
                return conn.execute(sql).fetchall()
        with self.server.connect(self.name) as conn, conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())

    def scalar(self, sql: str):
        return self.query(sql)[0][0]

    def events_schema(self) -> str:
        return EVENTS_SQLITE if self.kind == "sqlite" else EVENTS_MYSQL


def make_db(kind: str, tmp_path: Path, request, name: str) -> DB:
    """A fresh empty database of ``kind`` ("sqlite" or "mysql")."""
    if kind == "sqlite":
        return DB("sqlite", f"sqlite:///{tmp_path / 'test.db'}")
    server = request.getfixturevalue("mariadb_server")
    server.create_database(name)
    return DB("mysql", server.url(name), server, name)


@pytest.fixture(params=["sqlite", "mysql"])
def db(request, tmp_path) -> DB:
    """Each test using ``db`` runs once on SQLite and once on MariaDB."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[-50:]
    return make_db(request.param, tmp_path, request, name)


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for the CLI subprocess: the repo importable, the password in MYSQL_PWD."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["MYSQL_PWD"] = PASSWORD
    env["HOME"] = extra.pop("HOME", env.get("HOME", "/root"))
    env.update(extra)
    return env


def cli_argv(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "lasair_parallel.csv_to_database.cli", *map(str, args)]


def run_cli(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the CLI to completion; stdout/stderr captured as text."""
    return subprocess.run(cli_argv(*args), capture_output=True, text=True,
                          env=env or cli_env(), cwd=cwd, timeout=timeout)


def write_csv(path: Path, rows: list[list], header: list[str] = HEADER,
              lineterminator: str = "\n") -> Path:
    """Write a CSV shard with the csv module (so quoting is RFC 4180)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator=lineterminator)
        w.writerow(header)
        w.writerows(rows)
    return path


def object_rows(start: int, n: int, ncand: int = 1) -> list[list]:
    """``n`` plain rows (no quotes needed) with distinct objectIds from ``start``."""
    return [[f"ZTF{i:08d}", ncand, 10.0 + i / 1e5, -5.5, 18.25, "x"] for i in range(start, start + n)]


def schema_file(tmp_path: Path, sql: str = SCHEMA, name: str = "objects.sql") -> Path:
    p = tmp_path / name
    p.write_text(sql + ";\n")
    return p


def load(db: DB, *sources, table: str = "objects", extra: tuple = (), schema: Path | None = None,
         **kw) -> subprocess.CompletedProcess:
    """Run the CLI loading ``sources`` into ``db``; creates the table from ``schema`` if given."""
    args = [*sources, "--db", db.url, "--table", table, *extra]
    if schema is not None:
        args += ["--create", "--schema", schema]
    return run_cli(*args, **kw)


def assert_one_line_error(proc: subprocess.CompletedProcess) -> None:
    """A failed run explains itself on stderr, without a traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if "error" in ln]
    assert errors, proc.stderr
