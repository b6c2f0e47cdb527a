"""Table schemas: find an app's ``schema/<table>.sql``, create the table, read its columns."""

from __future__ import annotations

import importlib.resources
import re
from pathlib import Path

from lasair_parallel.csv_to_database.errors import UsageError
from lasair_parallel.csv_to_database.shard import Column

_CREATE = re.compile(r"^\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?[`\"\[]?(\w+)[`\"\]]?",
                     re.IGNORECASE)


SCHEMA_GROUP = "lasair_parallel.schemas"  # entry points: name = package holding schema/*.sql


def find_app_schemas(table: str) -> list[tuple[str, str]]:
    """``(origin, sql)`` for every ``<package>/schema/<table>.sql`` that an installed
    distribution declares in the :data:`SCHEMA_GROUP` entry-point group (the built-in apps do,
    in setup.cfg; so can plugins).  The loader knows packages by entry point, not by scanning
    an apps folder."""
    from importlib import metadata

    eps = metadata.entry_points()
    group = eps.select(group=SCHEMA_GROUP) if hasattr(eps, "select") else \
        eps.get(SCHEMA_GROUP, [])  # pragma: no cover - Python < 3.10
    found = []
    for ep in sorted(group, key=lambda e: e.name):
        package = ep.value.split(":")[0].strip()
        try:
            f = importlib.resources.files(package) / "schema" / f"{table}.sql"
        except ModuleNotFoundError:
            continue
        if f.is_file():
            found.append((f"{package.replace('.', '/')}/schema/{table}.sql",
                          f.read_text("utf-8")))
    return found


def load_schema(table: str, schema_file: str | Path | None) -> tuple[str, str]:
    """The CREATE TABLE for ``table``: from ``schema_file`` or the one app that ships it."""
    if schema_file is not None:
        try:
            sql = Path(schema_file).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"--schema {schema_file}: cannot read ({type(e).__name__})") from None
        origin = str(schema_file)
    else:
        found = find_app_schemas(table)
        if not found:
            raise UsageError(f"--create: no app ships schema/{table}.sql "
                             "(give the CREATE TABLE with --schema FILE.sql)")
        if len(found) > 1:
            raise UsageError(f"--create: several apps ship {table}.sql: "
                             f"{', '.join(o for o, _ in found)} (choose one with --schema)")
        origin, sql = found[0]
    return origin, check_create_sql(sql, table, origin)


def check_create_sql(sql: str, table: str, origin: str) -> str:
    """``sql`` stripped of comments and the final ';', if it is ONE CREATE TABLE of ``table``."""
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    body = body.strip().rstrip(";").strip()
    m = _CREATE.match(body)
    if not m:
        raise UsageError(f"{origin}:1: not a CREATE TABLE statement (a schema file holds one)")
    if m.group(1).lower() != table.lower():
        raise UsageError(f"{origin}:1: creates table {m.group(1)}, not {table} "
                         "(fix --table or the schema file)")
    if ";" in body:
        raise UsageError(f"{origin}: more than one statement (a schema file holds one CREATE TABLE)")
    return body


_INLINE_INDEX = re.compile(
    r",\s*(UNIQUE\s+)?(?:KEY|INDEX)\s+[`\"]?(\w+)[`\"]?\s*\(([^)]*)\)", re.IGNORECASE)
_TABLE_OPTIONS = re.compile(r"\)\s*(?:ENGINE|DEFAULT\s+CHARSET|CHARSET|COLLATE)\b[^)]*$",
                            re.IGNORECASE)


def sqlite_statements(sql: str, table: str) -> list[str]:
    """A MySQL-flavoured CREATE TABLE as SQLite statements.

    SQLite has no inline ``KEY name (cols)`` and no ``ENGINE=`` options: the keys become
    CREATE INDEX statements after the table; the options are dropped.
    """
    indexes = []

    def pull(m: re.Match) -> str:
        unique = "UNIQUE " if m.group(1) else ""
        cols = m.group(3).replace("`", '"')
        indexes.append(f'CREATE {unique}INDEX IF NOT EXISTS "{table}_{m.group(2)}"'
                       f' ON "{table}" ({cols})')
        return ""

    body = _INLINE_INDEX.sub(pull, sql)
    body = _TABLE_OPTIONS.sub(")", body)
    return [body, *indexes]


def kind_of(sql_type: str) -> str:
    """Value kind of a declared type, by SQLite's affinity rules (INT -> int; REAL/FLOA/DOUB -> float)."""
    t = sql_type.upper()
    if "INT" in t:
        return "int"
    if any(k in t for k in ("CHAR", "CLOB", "TEXT", "BLOB")) or not t:
        return "text"
    if any(k in t for k in ("REAL", "FLOA", "DOUB", "DEC", "NUMERIC")):
        return "float"
    return "text"


def mysql_columns(cur, table: str) -> dict[str, Column]:
    """Columns of ``table`` in the connection's database, keyed by lower-case name ({} if none)."""
    cur.execute(
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_KEY, IS_NULLABLE, EXTRA"
        " FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
        (table,))
    return {name.lower(): Column(name, kind_of(dtype), key == "PRI", nullable == "NO",
                                 "auto_increment" in (extra or "").lower())
            for name, dtype, key, nullable, extra in cur.fetchall()}


def sqlite_columns(conn, table: str) -> dict[str, Column]:
    """Columns of SQLite ``table`` keyed by lower-case name ({} if the table does not exist)."""
    rows = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
    npk = sum(1 for r in rows if r[5] > 0)
    # a lone INTEGER PRIMARY KEY is the rowid: SQLite fills it in when omitted
    return {name.lower(): Column(name, kind_of(ctype), pk > 0, bool(notnull),
                                 pk > 0 and npk == 1 and ctype.upper() == "INTEGER")
            for _cid, name, ctype, notnull, _dflt, pk in rows}
