"""``csv_to_database``: bulk-load CSV shards into MySQL/MariaDB/Galera or SQLite, exactly once.

A thin layer over :mod:`lasair_parallel.csv_to_database.load`: parses flags, shows progress and turns the
library's exceptions into one-line errors. Exit status: 0 all shards loaded or skipped,
1 some shards failed, 2 bad usage or input.
"""

from __future__ import annotations

import sys

import click
from lasair_parallel.csv_to_database.errors import LoadError
from lasair_parallel.csv_to_database.load import LoadOptions, ShardResult, find_shards, load_shards
from lasair_parallel.csv_to_database.targets import (
    DEFAULT_PASSWORD_ENV,
    find_credentials,
    parse_db_urls,
)

DEFAULT_DB = "sqlite:///lasair.db"

EPILOG = f"""
\b
Examples:
  csv_to_database runs/rebuild_objects/shards --db mysql://user@host:3306/ztf --table objects
  csv_to_database 'shards/*.csv' --db sqlite:///lasair.db --table objects
  csv_to_database shards --db mysql://u@h1:3306,h2:3306,h3:3306/ztf --table objects  # Galera

\b
Password: from ${DEFAULT_PASSWORD_ENV} (or the variable named by --password-env), else the
[client] section of --defaults-file or ~/.my.cnf. Never on the command line.
TLS: ?ssl-mode=VERIFY_IDENTITY&ssl-ca=CA.pem (also ssl-cert, ssl-key) in --db, or the same
ssl-* lines in the option file. The server gets no file but the shard being loaded.
Every shard is recorded in the table csv_to_database_ledger in the same transaction as its
rows: rerunning skips loaded shards; a changed shard is reloaded only with --reload.
"""


class _Progress:
    """Bytes progress: a tqdm bar on a terminal, plain lines per shard otherwise."""

    def __init__(self, total: int, nshards: int, quiet: bool) -> None:
        self.total, self.nshards, self.quiet = total, nshards, quiet
        self.done = 0
        self.shards = 0
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, unit="B", unit_scale=True, desc="loading",
                            file=sys.stderr)

    def bytes(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)

    def result(self, r: ShardResult) -> None:
        self.shards += 1
        if r.status == "failed":
            msg = f"error: {r.error}"
            if self.bar is not None:
                self.bar.write(msg, file=sys.stderr)
            else:
                click.echo(msg, err=True)
        elif self.bar is None and not self.quiet:
            pct = 100.0 * self.done / self.total if self.total else 100.0
            click.echo(f"[{self.shards}/{self.nshards} shards, {pct:5.1f}% of bytes] "
                       f"{r.status} {r.path.name}: {r.rows} rows", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(None, "-V", "--version", package_name="lasair-parallel",
                      prog_name="csv_to_database (lasair-parallel)")
@click.argument("sources", nargs=-1, required=True)
@click.option("--db", "dbs", multiple=True, default=[DEFAULT_DB], show_default=True,
              help="sqlite:///file.db or mysql://user@host:port/db; several hosts "
                   "(h1:p1,h2:p2) or repeated --db = Galera nodes, tried in order.")
@click.option("--table", required=True, help="Table to load into.")
@click.option("--replace", "mode", flag_value="replace", default=True,
              help="Upsert by primary key (default, as Lasair does).")
@click.option("--ignore", "mode", flag_value="ignore", help="Keep existing rows on duplicate keys.")
@click.option("--insert", "mode", flag_value="insert", help="Duplicate keys fail the shard.")
@click.option("--create", is_flag=True,
              help="Create the table if missing, from apps/*/schema/TABLE.sql or --schema.")
@click.option("--schema", type=click.Path(dir_okay=False),
              help="CREATE TABLE file for --create (overrides the app's).")
@click.option("--reload", is_flag=True, help="Reload shards that changed since they were loaded.")
@click.option("--parallel", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Load shards over N connections.")
@click.option("--password-env", default=DEFAULT_PASSWORD_ENV, show_default=True,
              help="Environment variable holding the MySQL password.")
@click.option("--defaults-file", type=click.Path(dir_okay=False),
              help="MySQL option file with [client] user/password (default ~/.my.cnf).")
@click.option("-q", "--quiet", is_flag=True, help="No progress; only errors and the summary.")
def command(sources, dbs, table, mode, create, schema, reload, parallel, password_env,
            defaults_file, quiet) -> None:
    """Load CSV SOURCES (directories of *.csv, quoted globs or files) into --table of --db."""
    creds = None
    try:
        target = parse_db_urls(dbs)
        if target.kind == "mysql":
            creds = find_credentials(target, password_env, defaults_file)
        shards = find_shards(sources)
        opts = LoadOptions(table=table, mode=mode, reload=reload, create=create or bool(schema),
                           schema=schema, parallel=parallel)
        total = sum(p.stat().st_size for p in shards)
        prog = _Progress(total, len(shards), quiet)
        try:
            summary = load_shards(target, shards, opts, creds, prog.bytes, prog.result)
        finally:
            prog.close()
    except LoadError as e:
        msg = creds.password.scrub(str(e)) if creds is not None else str(e)
        click.echo(f"csv_to_database: error: {msg}", err=True)
        sys.exit(2)
    click.echo(summary.line())
    sys.exit(1 if summary.failed else 0)


def main() -> None:
    """Console-script entry point."""
    command(prog_name="csv_to_database")


if __name__ == "__main__":
    main()
