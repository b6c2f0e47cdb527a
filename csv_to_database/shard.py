"""Read one CSV shard: digest, header check, row-by-row validation with file:line.

The shard is parsed once by Python's ``csv`` module (RFC 4180 quoting: quotes, commas and
newlines inside quoted fields). For MySQL the rows are rewritten to a private temp file in
LOAD DATA's native escaped format, so what the server loads is exactly what we validated,
and empty fields become ``\\N`` (NULL) instead of LOAD DATA's '' or 0.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import re
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path

from lasair_parallel.csv_to_database.errors import ShardError

# Largest field accepted (bytes of text). csv's default is 128 KiB; 16 MiB is MySQL's
# default max_allowed_packet, far above any column of the tables we load.
FIELD_LIMIT = 16 * 1024 * 1024
PROGRESS_EVERY = 20000  # rows between progress callbacks: ~50 calls per million rows
_SPECIAL = re.compile(r"[\\\n\r\x00]").search
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


@dataclass(frozen=True)
class Column:
    """A column of the target table: canonical name, value kind and key flags."""

    name: str
    kind: str  # "int", "float" or "text": how SQLite values are checked/converted
    pk: bool = False
    notnull: bool = False
    auto: bool = False  # filled in by the database (AUTO_INCREMENT, SQLite INTEGER PRIMARY KEY)


@dataclass
class Shard:
    """A shard file with its identity (what the ledger records)."""

    path: Path
    size: int = 0
    sha256: str = ""
    rows: int = 0
    columns: list[Column] = field(default_factory=list)
    # physical line number where each data record starts (to map "at row N" to file:line)
    lines: array = field(default_factory=lambda: array("q"))
    # "simple": no quote, CR, NUL or blank line anywhere, so every line after the header is
    # exactly one record and MySQL can read the file itself (record N = line N + 1)
    simple: bool = False
    newlines: int = 0
    commas: int = 0
    ends_with_newline: bool = True
    stat: tuple[int, int] = (0, 0)  # (size, mtime_ns) when scanned

    def unchanged(self) -> bool:
        """Whether the file still has the size and mtime it had when scanned (MySQL read it
        itself, so this is checked before commit instead of hashing it again)."""
        st = self.path.stat()
        return (st.st_size, st.st_mtime_ns) == self.stat

    @property
    def name(self) -> str:
        """The ledger key: the file's base name."""
        return self.path.name

    def line_of(self, record: int) -> int | None:
        """File line of 1-based data record ``record``."""
        if self.simple and not self.lines:
            return record + 1 if record > 0 else None
        return self.lines[record - 1] if 0 < record <= len(self.lines) else None

    def simple_rows(self) -> int:
        """Data records of a simple shard: its lines minus the header."""
        lines = self.newlines + (0 if self.ends_with_newline else 1)
        return max(lines - 1, 0)

    def simple_shape_ok(self) -> bool:
        """Whether a simple shard has exactly (columns - 1) commas per line in total.

        A short row then implies a long one, which LOAD DATA reports (warning 1262); a
        mismatch sends the shard through the Python parser, which names the line.
        """
        lines = self.simple_rows() + 1
        return self.commas == (len(self.columns) - 1) * lines


def digest(path: Path) -> tuple[int, str]:
    """``(size, sha256 hex)`` of a file, read in 1 MiB chunks."""
    shard = scan(path)
    return shard.size, shard.sha256


def scan(path: Path) -> Shard:
    """Size, sha256, line count and whether the file is "simple" (see :class:`Shard`).

    One pass of C-speed byte searches; costs about as much as the hashing itself.
    """
    h = hashlib.sha256()
    n = newlines = commas = 0
    odd = False
    last = b"\n"  # a blank first line counts as a blank line
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        while chunk := f.read(1 << 20):
            h.update(chunk)
            n += len(chunk)
            newlines += chunk.count(b"\n")
            commas += chunk.count(b",")
            if not odd:
                odd = (b'"' in chunk or b"\r" in chunk or b"\x00" in chunk
                       or b"\n\n" in chunk or (last == b"\n" and chunk[:1] == b"\n"))
            last = chunk[-1:]
    return Shard(Path(path), n, h.hexdigest(), simple=not odd and n > 0, newlines=newlines, commas=commas,
                 ends_with_newline=last == b"\n", stat=(st.st_size, st.st_mtime_ns))


def read_header(shard: Shard, table: str, table_cols: dict[str, Column]) -> list[Column]:
    """Parse and check only the header line of a simple shard; sets ``shard.columns``."""
    with open(shard.path, "rb") as f:
        first = f.readline(FIELD_LIMIT)
    try:
        text = first.decode("utf-8-sig").rstrip("\n")
    except UnicodeDecodeError as e:
        raise ShardError(shard.path, 1, f"header is not UTF-8: {e.reason}",
                         "re-export the shard as UTF-8") from None
    header = next(csv.reader([text]), [])
    shard.columns = match_header(shard.path, header, table, table_cols)
    return shard.columns


class _HashingReader(io.RawIOBase):
    """A raw reader that hashes and counts the bytes as the CSV parser consumes them."""

    def __init__(self, f) -> None:
        self.f = f
        self.h = hashlib.sha256()
        self.n = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self.f.readinto(b)
        if n:
            self.h.update(memoryview(b)[:n])
            self.n += n
        return n or 0


def match_header(path: Path, header: list[str], table: str,
                 table_cols: dict[str, Column]) -> list[Column]:
    """Map header names onto table columns (case-insensitive); every problem names the columns."""
    names = [h.strip() for h in header]
    if not names or names == [""]:
        raise ShardError(path, 1, "empty header line", "the first line must name the columns")
    seen: set[str] = set()
    dups = [n for n in names if n.lower() in seen or seen.add(n.lower())]
    if dups:
        raise ShardError(path, 1, f"duplicate header column(s): {', '.join(dups)}",
                         "each column may appear once")
    unknown = [n for n in names if n.lower() not in table_cols]
    if unknown:
        missing = [c.name for c in table_cols.values() if c.name.lower() not in seen]
        hint = f"; table columns not in the header: {', '.join(missing[:10])}" if missing else ""
        raise ShardError(path, 1, f"header column(s) not in table {table}: "
                         f"{', '.join(repr(u) for u in unknown[:10])}{hint}",
                         "fix the header or the table schema")
    cols = [table_cols[n.lower()] for n in names]
    pk_missing = [c.name for c in table_cols.values()
                  if c.pk and not c.auto and c.name.lower() not in seen]
    if pk_missing:
        raise ShardError(path, 1, f"header lacks primary key column(s) {', '.join(pk_missing)} "
                         f"of table {table}", "add them to the CSV")
    return cols


class ShardReader:
    """Iterate a shard's records as lists of strings, checking shape, NULs and the digest."""

    def __init__(self, shard: Shard, table: str, table_cols: dict[str, Column],
                 progress: Callable[[int], None] | None = None) -> None:
        self.shard = shard
        self.table = table
        self.table_cols = table_cols
        self.progress = progress

    def records(self) -> Iterator[list[str]]:
        """Yield data records; fills ``shard.columns``, ``shard.rows`` and ``shard.lines``."""
        shard = self.shard
        path = shard.path
        csv.field_size_limit(FIELD_LIMIT)
        with open(path, "rb", buffering=0) as raw:
            hr = _HashingReader(raw)
            text = io.TextIOWrapper(io.BufferedReader(hr, 1 << 20), encoding="utf-8-sig",
                                    newline="")
            reader = csv.reader(text, strict=True)
            line = 0
            try:
                header = next(reader, None)
                if header is None:
                    raise ShardError(path, 1, "empty file: no header line",
                                     "a shard starts with a header naming the columns")
                if any("\x00" in h for h in header):
                    raise ShardError(path, 1, "NUL byte in the header", "remove it")
                shard.columns = match_header(path, header, self.table, self.table_cols)
                ncols = len(shard.columns)
                line = reader.line_num
                lines = shard.lines
                sent = 0
                for row in reader:
                    start = line + 1
                    line = reader.line_num
                    if not row:
                        continue  # blank line
                    if len(row) != ncols:
                        raise ShardError(path, start, f"{len(row)} fields, header has {ncols}",
                                         "quote fields that contain commas or newlines")
                    lines.append(start)
                    if self.progress and len(lines) % PROGRESS_EVERY == 0:
                        self.progress(hr.n - sent)
                        sent = hr.n
                    yield row
            except csv.Error as e:
                raise ShardError(path, reader.line_num or line + 1, f"malformed CSV: {e}",
                                 "check quoting") from None
            except UnicodeDecodeError as e:
                raise ShardError(path, line + 1, f"not UTF-8: {e.reason} at byte {e.start}",
                                 "re-export the shard as UTF-8") from None
            if hr.n != shard.size or hr.h.hexdigest() != shard.sha256:
                raise ShardError(path, None, "file changed while it was being loaded",
                                 "wait for the writer to finish, then rerun")
            shard.rows = len(lines)
            if self.progress:
                self.progress(hr.n - sent)


def nul_error(shard: Shard, record: int, row: list[str]) -> ShardError:
    """The error for a NUL byte in ``row``: NUL is not text, and MySQL would cut the value."""
    col = next(c.name for c, v in zip(shard.columns, row, strict=True) if "\x00" in v)
    return ShardError(shard.path, shard.line_of(record), f"NUL byte in column {col}",
                      "remove NUL bytes from the data")


def write_mysql_file(reader: ShardReader, out) -> None:
    """Write records to ``out`` in LOAD DATA's default format: tab-separated, ``\\``-escaped,
    ``\\N`` for empty fields (= NULL)."""
    write = out.write
    special = _SPECIAL
    ncols = 0
    for row in reader.records():
        if not ncols:
            ncols = len(reader.shard.columns)
        joined = "\t".join(row)
        if special(joined) or joined.count("\t") != ncols - 1:
            # rare path: escape each field (and refuse NUL)
            if "\x00" in joined:
                raise nul_error(reader.shard, len(reader.shard.lines), row)
            row = [v.translate(_ESCAPES) if v else "\\N" for v in row]
            joined = "\t".join(row)
        elif "" in row:
            joined = "\t".join([v if v else "\\N" for v in row])
        write(joined)
        write("\n")


def sqlite_rows(reader: ShardReader) -> Iterator[tuple]:
    """Records converted for SQLite: '' -> None, ints and floats parsed and checked.

    SQLite's type affinity would store 'abc' in a DOUBLE column as text; MySQL would refuse
    it, so we refuse it here too, with the file:line.
    """
    shard = reader.shard
    convs: list[Callable[[str], object]] | None = None
    required: list[int] = []
    for row in reader.records():
        if convs is None:
            convs = [_CONVERTERS[c.kind] for c in shard.columns]
            # SQLite accepts NULL in a non-INTEGER PRIMARY KEY; MySQL does not: refuse it
            required = [i for i, c in enumerate(shard.columns) if (c.pk and not c.auto) or c.notnull]
        try:
            values = tuple([conv(v) if v else None for conv, v in zip(convs, row, strict=True)])
        except ValueError:
            values = _bad_value(shard, convs, row)
        for i in required:
            if values[i] is None:
                raise ShardError(shard.path, shard.line_of(len(shard.lines)),
                                 f"empty value for NOT NULL column {shard.columns[i].name}",
                                 "every row needs a value there")
        yield values


def _text(v: str) -> str:
    if "\x00" in v:
        raise ValueError("NUL")
    return v


def _float(v: str) -> float:
    x = float(v)
    if not math.isfinite(x):  # MySQL has no NaN/inf in DOUBLE; refuse them in SQLite too
        raise ValueError(v)
    return x


_INT = re.compile(r"[-+]?[0-9]+").fullmatch


def _int(v: str) -> int:
    if not _INT(v):  # as strict as the MySQL check (no '1.5', ' 7', '1_000')
        raise ValueError(v)
    x = int(v)
    if not -(1 << 63) <= x < (1 << 63):  # SQLite's INTEGER is 64-bit (BIGINT's range)
        raise ValueError(v)
    return x


_CONVERTERS: dict[str, Callable[[str], object]] = {"int": _int, "float": _float, "text": _text}


def _bad_value(shard: Shard, convs, row: list[str]) -> tuple:
    record = len(shard.lines)
    for col, conv, v in zip(shard.columns, convs, row, strict=True):
        if not v:
            continue
        try:
            conv(v)
        except ValueError:
            if "\x00" in v:
                raise nul_error(shard, record, row) from None
            shown = v if len(v) <= 40 else v[:40] + "..."
            raise ShardError(shard.path, shard.line_of(record),
                             f"bad {col.kind} value {shown!r} for column {col.name}",
                             "fix the value or leave it empty for NULL") from None
    raise AssertionError("unreachable: a value failed to convert")


# --- SQLite fast path: simple shards, column at a time ----------------------------------------

SIMPLE_CHUNK = 1 << 18  # bytes of whole lines per executemany: ~800 rows of 41 columns
_INT_FIELDS = re.compile(r"(?:[-+]?[0-9]{1,18})?(?:\n(?:[-+]?[0-9]{1,18})?)*").fullmatch
_INF = (math.inf, -math.inf)


class NotSimple(Exception):
    """The fast path met something it does not decide itself (a bad or unusual value, an
    empty required field, a ragged line...): the caller reloads the shard through
    :func:`sqlite_rows`, which accepts or refuses it with the file:line."""


def simple_chunks(shard: Shard, table: str, table_cols: dict[str, Column],
                  progress: Callable[[int], None] | None = None,
                  chunk_size: int = SIMPLE_CHUNK) -> Iterator[list[list]]:
    """Columns of a simple shard (no quotes, CR, NUL or blank lines: one record per line),
    ~``chunk_size`` bytes at a time, for SQLite.

    Accepts exactly what :func:`sqlite_rows` accepts, with the same values, but works a
    column at a time with C-speed string operations instead of a Python call per value:

    - float columns: ``float(v)`` or None for '' (Python's correctly rounded parse: SQLite's
      own text-to-REAL conversion is off by one bit for ~0.02% of values such as '70.882714');
      'nan'/'inf' text and overflow to infinity are refused, as by ``_float``.
    - int and text columns: the CSV strings themselves; the INSERT maps '' to NULL
      (``NULLIF(?, '')``) and INTEGER affinity stores the digits as the same integer
      ``int(v)`` gives. Int columns are checked as ``[-+]?[0-9]{1,18}`` (longer ones go to
      the slow path, which checks the 64-bit range).

    Anything else raises :class:`NotSimple`. Sets ``shard.columns`` and, at the end,
    ``shard.rows``; checks the bytes read against the scanned size and sha256.
    """
    cols = read_header(shard, table, table_cols)
    ncols = len(cols)
    kinds = [c.kind for c in cols]
    required = [(c.pk and not c.auto) or c.notnull for c in cols]
    h = hashlib.sha256()
    rows = 0
    with open(shard.path, "rb") as f:
        first = f.readline(FIELD_LIMIT)
        if not first.endswith(b"\n") and f.read(1):
            raise NotSimple("header line too long")
        h.update(first)
        size = sent = len(first)
        rest = b""
        while True:
            block = f.read(chunk_size)
            if block:
                h.update(block)
                size += len(block)
                block = rest + block
                end = block.rfind(b"\n") + 1
                rest, block = block[end:], block[:end]
                if not block:
                    continue
            elif rest:
                block, rest = rest + b"\n", b""  # last line without a newline
            else:
                break
            try:
                text = block.decode("utf-8")
            except UnicodeDecodeError:
                raise NotSimple("not UTF-8") from None
            lines = text.split("\n")
            lines.pop()  # the block ends with a newline
            if set(map(str.count, lines, repeat(","))) != {ncols - 1}:
                raise NotSimple("ragged line")
            fields = ",".join(lines).split(",")
            if len(block) > FIELD_LIMIT and max(map(len, fields)) > FIELD_LIMIT:
                raise NotSimple("field over the size limit")
            nonfinite_text = "n" in text or "N" in text  # 'nan', 'inf', 'infinity'
            out: list[list] = []
            for i, kind in enumerate(kinds):
                col = fields[i::ncols]
                if required[i] and "" in col:
                    raise NotSimple("empty required field")
                if kind == "float":
                    if nonfinite_text:
                        joined = "".join(col)
                        if "n" in joined or "N" in joined:
                            raise NotSimple("nan or inf")
                    try:
                        values = [float(v) if v else None for v in col]
                    except ValueError:
                        raise NotSimple("bad float") from None
                    if _INF[0] in values or _INF[1] in values:
                        raise NotSimple("float overflow")
                    out.append(values)
                else:
                    if kind == "int":
                        digits = "".join(col)
                        if digits.isascii() and digits.isdigit():
                            if max(map(len, col)) > 18:
                                raise NotSimple("long int")  # the row path checks the range
                        elif digits and not _INT_FIELDS("\n".join(col)):
                            raise NotSimple("bad or long int")
                    out.append(col)
            rows += len(lines)
            yield out
            if progress:
                progress(size - sent)
                sent = size
    if size != shard.size or h.hexdigest() != shard.sha256:
        raise ShardError(shard.path, None, "file changed while it was being loaded",
                         "wait for the writer to finish, then rerun")
    shard.rows = rows
    if progress and size > sent:
        progress(size - sent)
