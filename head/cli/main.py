"""The ``parallel`` command: a thin click layer over the head's library.

Library errors become one line on stderr naming the file, line and fix, with exit status 2;
nothing here holds logic that a script could not call directly.
"""

from __future__ import annotations

import gc
import json
import logging
import shlex
import sqlite3
import sys
from pathlib import Path

import click
from lasair_parallel.head.cli.clean import register as register_clean
from lasair_parallel.head.cli.ops import register
from lasair_parallel.head.version import head_version
from lasair_parallel.head.views.status import find_run, render, summary
from lasair_parallel.tasks.errors import ParallelError, UsageError

# Every usage error: one line, exit 2.  A journal that is not one (corrupt, empty, another
# program's file) reaches the read-only views as sqlite3.DatabaseError.
USER_ERRORS = (ParallelError, sqlite3.DatabaseError)


class AppUsageError(ValueError):
    pass


def fail(message: str) -> None:
    click.echo(f"parallel: error: {message}", err=True)
    sys.exit(2)


class _Group(click.Group):
    """The ``parallel`` group: a journal that cannot be read (empty, corrupt, another
    program's file) is one line and exit 2 in every command, not a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except sqlite3.DatabaseError as e:
            fail(f"the run's journal.sqlite cannot be read ({e}): it is empty, corrupt or not "
                 "this program's; give the directory of a run this program made")

    # Subgroups (`hosts`) are of this class too: the same errors, the same command list.
    group_class = type

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each command's summary whole, wrapped: click cuts them to the terminal's width
        with "...", so a summary longer than ~50 characters lost its end."""
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit=1000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(head_version() or "0+unknown", "-V", "--version",
                      prog_name="parallel (lasair-parallel)")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
def main(verbose: int) -> None:
    """Run batch tasks on worker hosts over SSH, with a journal, retries and resume."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
              add_help_option=False, short_help="Run an app or a task list on the workers.")
@click.argument("app", required=False)
@click.option("--tasks", "tasks_file", type=click.Path(dir_okay=False),
              help="A task list: one shell command per line.")
@click.option("--workers", type=click.Path(dir_okay=False),
              help="hosts.yaml or a GNU parallel sshloginfile [default: ./hosts.yaml if present, "
                   "else this machine]")
@click.option("--procs", type=int, help="Slots per worker (overrides every worker's procs).")
@click.option("--retries", type=int, default=0, show_default=True,
              help="Run a failed task again up to N times, preferring another host.")
@click.option("--retry-delay", type=float, default=1.0, show_default=True,
              help="Seconds before the first retry; doubles with each failure of the task.")
@click.option("--timeout", type=float, help="Kill a task (its whole process group) after S s.")
@click.option("--halt", default="never", show_default=True,
              help="Stop early: now,fail=N | soon,fail=N | now,fail=P% (as GNU parallel).")
@click.option("--name", help="Run name [default: the app or task-list name].")
@click.option("--run-dir", type=click.Path(file_okay=False),
              help="Run directory [default: runs/<name>].")
@click.option("--heartbeat-timeout", type=float, default=10.0, show_default=True,
              help="Seconds of silence after which a worker is declared down.")
@click.option("--memfree", type=str, help="Start no task on a host with less available memory "
              "than this (e.g. 2G, 500M).")
@click.option("--ssh-config", type=click.Path(dir_okay=False),
              help="An ssh_config file to use instead of ~/.ssh/config.")
@click.option("--no-host-key-check", is_flag=True,
              help="Do not verify worker host keys (insecure; prints a warning).")
@click.option("--clean-workers", is_flag=True,
              help="At the end, remove the run's folders on workers that do not share this "
                   "machine's files (as `parallel clean RUN`).")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.option("--stream-to", help="Load streamed rows into this database as they arrive "
              "(a csv_to_database URL: sqlite:///x.db or mysql://user@host/db).")
@click.option("--stream-table", help="Table for --stream-to.")
@click.option("--stream-create", is_flag=True,
              help="Create --stream-table from the app's schema if it does not exist.")
@click.option("--task-seconds", type=float, help="Longest wanted task: splittable tasks "
              "(busy, apps using PARALLEL_TASK_SECONDS) spawn the rest as subtasks "
              "[default: from the measured rate].")
@click.option("--no-backups", is_flag=True, help="Start no backup copies of straggling tasks "
              "on idle slots at the end of the run.")
@click.option("--spawn-depth", type=int, default=8, show_default=True,
              help="Longest chain of tasks spawning tasks.")
@click.option("--spawn-max", type=int, default=1_000_000, show_default=True,
              help="Most tasks spawned in one run.")
@click.option("--serve", "serve_port", type=int,
              help="Also serve the live web view on 127.0.0.1:PORT while the run goes on.")
@click.option("--help", "-h", "show_help", is_flag=True, help="Show this message (and the app's).")
@click.pass_context
def run(ctx: click.Context, app: str | None, tasks_file: str | None, workers: str | None,
        procs: int | None, retries: int, retry_delay: float, timeout: float | None, halt: str,
        name: str | None, run_dir: str | None, heartbeat_timeout: float, memfree: str | None,
        ssh_config: str | None, no_host_key_check: bool, clean_workers: bool, quiet: bool,
        stream_to: str | None,
        stream_table: str | None, stream_create: bool, task_seconds: float | None,
        no_backups: bool, spawn_depth: int, spawn_max: int, serve_port: int | None,
        show_help: bool) -> None:
    """Run an app or a task list (--tasks FILE) on the workers.

    APP is a built-in (apps/busy), an installed plugin, a folder (./path/to/app) or a
    module (mypkg.myapp); see `parallel apps`.  App options follow the app, after `--`:
    parallel run apps/busy --workers hosts.yaml -- --count 8 --seconds 1
    """
    from lasair_parallel.head import api

    app_argv = list(ctx.args)
    if show_help:
        click.echo(ctx.get_help())
        if app:
            try:
                click.echo("\n" + api.load_app(app)[1].build_parser().format_help())
            except ParallelError as e:
                fail(str(e))
        return
    try:
        if bool(app) == bool(tasks_file):
            raise UsageError("give either an app (e.g. apps/busy) or --tasks FILE, not both or "
                             "neither")
        work = Path(tasks_file) if tasks_file else app
        hosts_file = workers or ("hosts.yaml" if Path("hosts.yaml").exists() else None)
        prepared = api.prepare(
            work, workers, args=app_argv, name=name, run_dir=run_dir, procs=procs,
            retries=retries, retry_delay=retry_delay, timeout=timeout, halt=halt,
            heartbeat_timeout=heartbeat_timeout,
            memfree=_parse_size(memfree) if memfree else None, ssh_config=ssh_config,
            verify_host_keys=not no_host_key_check, hosts_file=hosts_file,
            clean_workers=clean_workers,
            task_seconds=task_seconds, backups=not no_backups, spawn_depth=spawn_depth,
            spawn_max=spawn_max, start_agents=True)
    except ParallelError as e:
        fail(str(e))
    except (ValueError, OSError) as e:
        fail(f"{app or tasks_file}: {e}")
    if prepared.description:
        click.echo(prepared.description, err=True)
    if no_host_key_check:
        click.echo("parallel: warning: host keys are NOT verified (--no-host-key-check); "
                   "a man-in-the-middle could run your tasks", err=True)
    command_line = shlex.join(["parallel", *sys.argv[1:]])
    loader = _stream_loader(stream_to, stream_table, stream_create)
    if serve_port is not None:
        _check_port(serve_port, "--serve")
        _serve_in_background(prepared.run_dir, serve_port)
    try:
        result = api.execute(prepared, progress=not quiet, handle_signals=True,
                             notify=lambda line: click.echo(line, err=True),
                             stream_loader=loader, command_line=command_line)
    except ParallelError as e:  # the run directory is locked, unwritable, or another run's
        fail(str(e))
    _print_result(result)
    # The run is over and its journal closed: spare the interpreter's final garbage collection
    # of every object the run made (40-190 ms between the last task's end and the process's
    # exit on 4 hosts, benchmarks/startend.py; 20-40 ms with this).  atexit handlers still run.
    gc.freeze()
    sys.exit(result.exit_status)


def _stream_loader(url: str | None, table: str | None, create: bool):
    if not url and not table:
        return None
    if not (url and table):
        fail("--stream-to and --stream-table go together: give both")
    from lasair_parallel.csv_to_database import LoadError
    from lasair_parallel.head.core.streams import StreamLoader

    try:
        loader = StreamLoader(url, table, create)
        loader.check()  # a wrong password or missing table: say so before any task runs
        return loader
    except LoadError as e:
        fail(f"--stream-to: {e}")


def _serve_in_background(rdir: Path, port: int) -> None:
    """The web view in a thread of its own: it only reads the journal, never the scheduler."""
    import threading

    from lasair_parallel.head.views.web import make_server

    try:
        server = make_server(rdir, "127.0.0.1", port)
    except OSError as e:
        fail(f"--serve {port}: cannot listen ({e.strerror}); choose another port")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    click.echo(f"live view: http://127.0.0.1:{port}/", err=True)


def _check_port(port: int, flag: str) -> None:
    """TCP ports are 1-65535 (port 0 would pick a random one nobody could find)."""
    if not 1 <= port <= 65535:
        fail(f"{flag} {port}: give a TCP port from 1 to 65535 (e.g. 8765)")


def _raise_usage(message: str) -> None:
    raise AppUsageError(f"{message} (see --help)")


def _parse_size(text: str) -> int:
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip().upper().rstrip("B")
    num, unit = (t[:-1], t[-1]) if t and t[-1] in units else (t, "")
    try:
        return int(float(num) * units[unit])
    except ValueError:
        raise UsageError(f"--memfree {text!r}: give a size like 2G or 500M") from None


def _print_result(result) -> None:
    failed = result.failed
    ok = len(result.succeeded)
    parts = [f"{ok} ok" + (f" ({result.skipped} already done)" if result.skipped else ""),
             f"{len(failed)} failed"]
    rest = result.total - ok - len(failed)
    skipped = sum(1 for t in result.tasks.values() if t.state == "skipped")
    if skipped:
        parts.append(f"{skipped} skipped (a task they run after failed)")
        rest -= skipped
    if rest:
        parts.append(f"{rest} not run")
    click.echo(f"{', '.join(parts)} of {result.total} task(s); journal: "
               f"{result.run_dir}/journal.sqlite", err=True)
    if result.reason:
        click.echo(f"stopped: {result.reason}", err=True)
    for t in failed[:5]:
        a = t.last
        tail = ((a.err_tail if a else "") or "").strip().splitlines()[-1:] or [""]
        where = f" on {a.host}: {a.reason}" if a else ""
        click.echo(f"  failed: {t.id} ({_short(t.command)}){where}  {tail[0][:160]}", err=True)
    if len(failed) > 5:
        click.echo(f"  ... see `parallel status {result.run_dir}`", err=True)
    if failed:
        click.echo(f"  output of a failed task: parallel logs {result.run_dir} TASK", err=True)


def _short(command: str, width: int = 60) -> str:
    one = " ".join(command.split())
    return one if len(one) <= width else one[:width - 3] + "..."


@main.command(short_help="Progress, hosts and failures of a run.")
@click.argument("run", required=False)
@click.option("--json", "as_json", is_flag=True,
              help="Machine-readable output: times as epoch seconds and, beside each, ISO 8601 "
                   "(`*_iso`); the report's numbers under `report`.")
@click.option("--watch", is_flag=True, help="Redraw as the run's journal changes, until it ends.")
def status(run: str | None, as_json: bool, watch: bool) -> None:
    """Progress, per-host counts and failures (with stderr tails) of RUN [default: latest].

    Says whether the run is running (its head's pid is alive on this machine), was
    interrupted (Ctrl-C: exit 130; rerun the same command to resume) or finished.
    """
    from lasair_parallel.head.views.report import analyse

    try:
        rdir = find_run(run)
        s = summary(rdir)
    except sqlite3.DatabaseError as e:
        fail(f"{rdir / 'journal.sqlite'}: not a readable journal ({e}); give the run "
             "directory of a run this program made")
    except USER_ERRORS as e:
        fail(str(e))
    if watch:
        from lasair_parallel.head.views.watch import watch_status

        sys.exit(watch_status(rdir))
    if as_json:
        r = analyse(rdir)
        r.pop("bars")  # per-attempt rows: `parallel report RUN --json` has them
        s["report"] = r
        click.echo(json.dumps(s, indent=2, default=str))
    else:
        click.echo(render(s))


@main.command(short_help="A live, read-only web view of a run.")
@click.argument("run", required=False)
@click.option("--port", type=int, default=8765, show_default=True, help="TCP port to listen on.")
@click.option("--bind", default="127.0.0.1", show_default=True,
              help="Address to listen on; other interfaces only when asked for explicitly.")
def serve(run: str | None, port: int, bind: str) -> None:
    """A live, read-only web view of RUN [default: latest] at http://BIND:PORT/."""
    from lasair_parallel.head.views.web import make_server

    _check_port(port, "--port")
    try:
        rdir = find_run(run)
        server = make_server(rdir, bind, port)
    except USER_ERRORS as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot listen on {bind}:{port} ({e.strerror}); choose another --port")
    click.echo(f"serving {rdir} at http://{bind}:{port}/ (Ctrl-C to stop)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


@main.command("apps", short_help="List the apps `parallel run` knows.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_apps(as_json: bool) -> None:
    """The apps `parallel run NAME` knows: built-in and installed plugins.

    Any folder holding app.py and task.py (parallel run ./path/to/app) and any importable
    package with app and task modules (parallel run mypkg.myapp) is an app too.
    """
    from lasair_parallel.head.appload import available

    try:
        refs = available()
    except USER_ERRORS as e:
        fail(str(e))
    if as_json:
        click.echo(json.dumps([{"name": r.name, "origin": r.origin, "package": r.package,
                                "description": r.description} for r in refs], indent=2))
        return
    width = max(len(r.name) for r in refs)
    for r in refs:
        click.echo(f"{r.name:<{width}}  {r.origin:<12}  {r.description}")


@main.command(short_help="Print a task's output (stdout and stderr).")
@click.argument("run")
@click.argument("task")
@click.option("--attempt", type=int, help="Which attempt [default: the last].")
@click.option("--stdout", "only", flag_value="out", help="Only the standard output.")
@click.option("--stderr", "only", flag_value="err", help="Only the standard error.")
def logs(run: str, task: str, attempt: int | None, only: str | None) -> None:
    """Print what TASK of RUN wrote: its stdout, then its stderr.

    TASK is the task's id (or the start of it), its line number in the task list, or a piece
    of its command (`parallel logs runs/mylist 'exit 3'`).  A line naming the attempt goes to
    stderr, so the output itself pipes cleanly.
    """
    from lasair_parallel.head.views.logs import find, header, pick_attempt, read_stream

    try:
        rdir = find_run(run)
        t = find(rdir, task)
        a = pick_attempt(t, attempt)
    except USER_ERRORS as e:
        fail(str(e))
    click.echo(header(t, a), err=True)
    for stream in (only,) if only else ("out", "err"):
        text, whole = read_stream(rdir, a, stream)
        if not only:
            name = "stdout" if stream == "out" else "stderr"
            click.echo(f"--- {name}" + ("" if whole else " (its last lines, from the journal: "
                                        "the log file is gone)") + " ---")
        elif not whole:
            click.echo("(the log file is gone; its last lines, from the journal:)", err=True)
        click.echo(text, nl=bool(text) and not text.endswith("\n"))


register(main, fail, USER_ERRORS)
register_clean(main, fail, USER_ERRORS)


if __name__ == "__main__":
    main()
