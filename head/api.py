"""The Python API: plan and run work from a script or a notebook; the CLI is a layer over it.

    import lasair_parallel as lp

    result = lp.run(["echo one", "echo two"], workers="hosts.yaml", retries=1)
    for t in result.failed:
        print(t.id, t.command, t.attempts[-1].host, t.attempts[-1].err_tail)

    result = lp.run("./my_app", args=["--min-rate", "0.5"], on_result=print)

Nothing here prints, configures logging or installs a signal handler unless asked
(``handle_signals=True``).  The run happens on a gevent hub of its own thread's, so it does not
touch a notebook's asyncio loop; a notebook cell simply blocks until the run ends (interrupt
it with the kernel's stop button when ``handle_signals`` is off: the run then stops at once and
kills its remote tasks, as Ctrl-C does).
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from lasair_parallel.head.appload import AppRef, import_planner, plan_context, resolve
from lasair_parallel.head.connect.hosts import MAX_PROCS, WHY_MAX_PROCS, HostsError, HostSpec
from lasair_parallel.head.connect.hosts import read_hosts as _read_hosts_file
from lasair_parallel.head.core.dynjournal import measured_rate
from lasair_parallel.head.core.options import HaltPolicy, Options
from lasair_parallel.head.core.spawns import SPAWN_DEPTH, SPAWN_MAX
from lasair_parallel.head.version import head_version
from lasair_parallel.head.views.results import Attempt, TaskResult, open_readonly, read_results
from lasair_parallel.tasks.app import AppError, PlanContext
from lasair_parallel.tasks.errors import RunFailed, UsageError
from lasair_parallel.tasks.model import Task, command_ids
from lasair_parallel.tasks.tasklist import read_task_list

if TYPE_CHECKING:  # imported where agents start: it imports gevent (~30 ms)
    from lasair_parallel.head.core.early import EarlyAgents

__all__ = ["Attempt", "Prepared", "RunResult", "TaskResult", "Worker", "default_workers",
           "execute", "load_app", "prepare", "read_hosts", "run"]

Worker = HostSpec  # one worker host: hosts.yaml's fields as keyword arguments



def default_workers(procs: int | None = None) -> list[HostSpec]:
    """The one rule for every command: ``./hosts.yaml`` when present, else this machine (local
    subprocesses, one slot per core)."""
    if Path("hosts.yaml").exists():
        return _read_hosts_file("hosts.yaml", procs)
    return [HostSpec(host="localhost", transport="local", procs=procs or os.cpu_count() or 1)]


def read_hosts(workers: str | os.PathLike | Sequence[HostSpec | str | dict] | None = None,
               procs: int | None = None) -> list[HostSpec]:
    """Workers from a hosts.yaml / sshloginfile path, a list of :class:`Worker` (or dicts of
    its fields, or ``"user@host:port"`` strings), or None for :func:`default_workers`.
    ``procs`` overrides every worker's slot count."""
    if procs is not None and not 1 <= procs <= MAX_PROCS:
        raise HostsError(f"procs {procs}: give 1 to {MAX_PROCS} slots per worker; "
                         f"{WHY_MAX_PROCS}")
    if workers is None:
        return default_workers(procs)
    if isinstance(workers, (str, os.PathLike)):
        return _read_hosts_file(workers, procs)
    out = []
    for i, w in enumerate(workers):
        if isinstance(w, HostSpec):
            spec = w
        elif isinstance(w, dict):
            try:
                spec = HostSpec(**w)
            except TypeError as e:
                raise HostsError(f"workers[{i}]: {e}") from None
        elif isinstance(w, str):
            user, _, rest = w.rpartition("@")
            host, _, port = rest.partition(":")
            spec = HostSpec(host=host, user=user or None, port=int(port) if port else None,
                            transport="local" if host in ("", "localhost") and not user
                            and not port else "ssh")
        else:
            raise HostsError(f"workers[{i}]: {w!r} is not a worker (a Worker, dict or string)")
        out.append(replace(spec, procs=procs) if procs else spec)
    if not out:
        raise HostsError("no workers given")
    return out


@dataclass
class RunResult:
    """What a run did: counts, per-task results and where the journal is."""

    run_dir: Path
    total: int
    skipped: int  # finished by an earlier run of the same run directory
    interrupted: bool
    reason: str
    tasks: dict[str, TaskResult] = field(default_factory=dict)
    exit_status: int = 0  # as the CLI exits: 0 ok, 1 failures, 130 interrupted

    @property
    def succeeded(self) -> list[TaskResult]:
        return [t for t in self.tasks.values() if t.succeeded]

    @property
    def failed(self) -> list[TaskResult]:
        return [t for t in self.tasks.values() if t.failed]

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def check(self) -> RunResult:
        """Raise :class:`RunFailed` unless every task succeeded; return self otherwise."""
        if not self.ok:
            why = self.reason or f"{len(self.failed)} of {self.total} task(s) failed"
            raise RunFailed(f"{self.run_dir}: {why}", self)
        return self


@dataclass
class Prepared:
    """A planned run, ready for :func:`execute`: what the CLI and :func:`run` share."""

    tasks: list[Task]
    hosts: list[HostSpec]
    run_dir: Path
    name: str
    opts: Options
    app: ModuleType | None = None
    app_ref: AppRef | None = None
    app_args: argparse.Namespace | None = None
    plan_ctx: PlanContext | None = None
    description: str = ""
    hosts_file: str | None = None
    procs: int | None = None
    early: EarlyAgents | None = None  # local agents started during the plan (start_agents)


class _ArgError(Exception):
    pass


def _raise_usage(message: str) -> None:
    raise _ArgError(message)


def load_app(spec: str) -> tuple[AppRef, ModuleType]:
    """Resolve and import an app's planner (see :mod:`lasair_parallel.head.appload`)."""
    ref = resolve(spec)
    return ref, import_planner(ref)


def parse_app_args(app: ModuleType, ref: AppRef, args: Sequence[str]) -> argparse.Namespace:
    parser = app.build_parser()
    parser.error = _raise_usage  # type: ignore[method-assign]
    try:
        return parser.parse_args([str(a) for a in args])
    except _ArgError as e:
        raise AppError(f"{ref.name}: {e} (see parallel run {ref.name} --help)") from None


def prepare(work: str | os.PathLike | Sequence[str | Task], workers=None, *,
            args: Sequence[str] = (), name: str | None = None,
            run_dir: str | os.PathLike | None = None, procs: int | None = None,
            retries: int = 0, retry_delay: float = 1.0, timeout: float | None = None,
            halt: str = "never", heartbeat_timeout: float = 10.0, memfree: int | None = None,
            ssh_config: str | None = None, verify_host_keys: bool = True,
            clean_workers: bool = False,
            hosts_file: str | None = None, task_seconds: float | None = None,
            backups: bool = True, spawn_depth: int = SPAWN_DEPTH,
            spawn_max: int = SPAWN_MAX, start_agents: bool = False) -> Prepared:
    """Check every input and plan the tasks; nothing is written but an app's code snapshot.
    Raises :class:`UsageError` subclasses with the fix.

    Nothing runs but, with ``start_agents`` and an app, the local workers' agents: started
    before the app is imported, they come up while it plans, and :func:`execute` takes them
    over.  They run nothing and write nothing before that; they exit when this raises, or
    when the process ends without :func:`execute`.

    ``task_seconds``: the longest wanted task (splittable tasks spawn the rest; None: from
    the measured rate); ``backups``: copies of stragglers on idle slots at the end;
    ``spawn_depth`` / ``spawn_max``: bounds on spawned tasks (depth, count per run)."""
    check_values(retries=retries, retry_delay=retry_delay, timeout=timeout,
                 heartbeat_timeout=heartbeat_timeout, ssh_config=ssh_config)
    hosts = read_hosts(workers, procs)
    opts = Options(retries=retries, retry_delay=retry_delay, timeout=timeout,
                   halt=HaltPolicy.parse(halt), heartbeat_timeout=heartbeat_timeout,
                   verify_host_keys=verify_host_keys, ssh_config=ssh_config, memfree=memfree,
                   clean_workers=clean_workers,
                   task_seconds=task_seconds, backups=backups, spawn_depth=spawn_depth,
                   spawn_max=spawn_max)
    if task_seconds is not None and not task_seconds > 0:
        raise UsageError(f"--task-seconds {task_seconds}: give seconds above 0")
    if spawn_depth < 0 or spawn_max < 0:
        raise UsageError("--spawn-depth and --spawn-max: give whole numbers, 0 or more")
    early = None
    if start_agents and isinstance(work, str):  # an app: its import and plan take a while
        from lasair_parallel.head.core.early import EarlyAgents

        early = EarlyAgents(hosts, opts.heartbeat, opts.heartbeat_timeout)
    try:
        app = ref = app_args = ctx = None
        description = ""
        if isinstance(work, os.PathLike):
            tasks = read_task_list(work)
            name = name or Path(work).stem
        elif isinstance(work, str):
            ref, app = load_app(work)
            name = name or ref.name
            # An app's tasks import this project on the workers: the same version only.
            opts = replace(opts, require_version=head_version())
        else:
            tasks = _tasks_from_list(work)
            name = name or "tasks"
        rdir = Path(run_dir) if run_dir else Path("runs") / name
        if app is not None:
            if args and not isinstance(args, (list, tuple)):
                raise UsageError("args: give the app's options as a list of strings")
            app_args = parse_app_args(app, ref, args)
            tasks, ctx, description = _plan(app, ref, app_args, hosts, rdir, task_seconds)
        elif args:
            raise UsageError(f"unexpected app arguments {shlex.join(map(str, args))!r} with a "
                             "task list")
    except BaseException:
        if early is not None:
            early.close()
        raise
    return Prepared(tasks=tasks, hosts=hosts, run_dir=rdir, name=name, opts=opts, app=app,
                    app_ref=ref, app_args=app_args, plan_ctx=ctx, description=description,
                    hosts_file=hosts_file or (str(workers) if isinstance(workers, (str, os.PathLike))
                                              else None), procs=procs, early=early)


def _plan(app: ModuleType, ref: AppRef, app_args: argparse.Namespace, hosts: list[HostSpec],
          rdir: Path, task_seconds: float | None) -> tuple[list[Task], PlanContext, str]:
    """The app's tasks (with its gather task, if it names outputs), its plan context and its
    description of the plan."""
    ctx = plan_context(ref, rdir, slots=sum(h.procs for h in hosts), hosts=len(hosts))
    # What an earlier run in this run directory measured (head.core.sizing).
    ctx = replace(ctx, rate=measured_rate(rdir), task_seconds=task_seconds)
    try:
        tasks = list(app.plan(app_args, ctx))
    except AppError:
        raise
    except ValueError as e:
        raise AppError(f"{ref.name}: {e}") from None
    description = app.describe(app_args, ctx, tasks) if hasattr(app, "describe") else ""
    if hasattr(app, "gather") and getattr(app, "GATHER_OUTPUTS", None):
        # The reduction as a journaled task on a worker, after every planned task.
        outputs = [str(ctx.run_dir / name) for name in app.GATHER_OUTPUTS]
        tasks.append(ctx.gather_task(app_args, tasks, outputs, id=f"{ref.name}-gather"))
    return tasks, ctx, description


def check_values(*, retries: int, retry_delay: float, timeout: float | None,
                 heartbeat_timeout: float, ssh_config: str | None) -> None:
    """Refuse nonsense run options up front, one line each (before: some looped forever,
    some traced back mid-run).  Names are the CLI's flags; the API's keywords match."""
    heartbeat = Options().heartbeat
    if not _finite(heartbeat_timeout) or heartbeat_timeout <= heartbeat:
        raise UsageError(f"--heartbeat-timeout {heartbeat_timeout}: give seconds above the "
                         f"agents' {heartbeat:g} s heartbeat period (default 10)")
    if timeout is not None and (not _finite(timeout) or timeout <= 0):
        raise UsageError(f"--timeout {timeout}: give a number of seconds above 0, or leave it "
                         "out for no timeout")
    if not _finite(retry_delay) or retry_delay < 0:
        raise UsageError(f"--retry-delay {retry_delay}: give seconds, 0 or more")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise UsageError(f"--retries {retries}: give a whole number, 0 or more")
    if ssh_config is not None and not Path(ssh_config).expanduser().is_file():
        raise UsageError(f"--ssh-config {ssh_config}: no such file; give an ssh_config file "
                         "(or leave it out to use ~/.ssh/config)")


def _finite(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _tasks_from_list(items: Sequence[str | Task]) -> list[Task]:
    items = list(items)
    if all(isinstance(t, Task) for t in items):
        return items
    if all(isinstance(t, str) for t in items):
        return [Task(id=i, command=c) for i, c in zip(command_ids(items), items)]
    raise UsageError("work: give an app name, a task-list path, or a list of commands or Tasks")


def execute(p: Prepared, *, on_result: Callable[[TaskResult], None] | None = None,
            progress: bool = False, handle_signals: bool = False, notify=None,
            stream_loader=None, command_line: str = "") -> RunResult:
    """Run a :class:`Prepared` plan and return every task's result."""
    from lasair_parallel.head.core.runner import execute as run_tasks

    callback = None
    if on_result is not None:
        def callback(journal, task_id):
            on_result(read_results(journal.db, [task_id])[task_id])
    try:
        outcome = run_tasks(p.hosts, p.tasks, p.run_dir, p.name, p.opts,
                            command_line=command_line, progress=progress, app=p.app,
                            app_args=p.app_args, app_ctx=p.plan_ctx, hosts_file=p.hosts_file,
                            procs=p.procs, stream_loader=stream_loader,
                            handle_signals=handle_signals, notify=notify, on_task=callback,
                            early=p.early)
    finally:
        if p.early is not None:
            p.early.close()  # those the scheduler did not take over (nothing left to run)
    db = open_readonly(p.run_dir)
    try:
        results = read_results(db)  # the planned tasks and those they spawned
    finally:
        db.close()
    return RunResult(run_dir=p.run_dir.resolve(), total=outcome.total, skipped=outcome.skipped,
                     interrupted=outcome.interrupted, reason=outcome.reason, tasks=results,
                     exit_status=outcome.exit_status)


def run(work: str | os.PathLike | Sequence[str | Task], workers=None, *,
        args: Sequence[str] = (), on_result: Callable[[TaskResult], None] | None = None,
        progress: bool = False, handle_signals: bool = False, **options) -> RunResult:
    """Run ``work`` on ``workers`` and return a :class:`RunResult`.

    ``work``: an app (``"busy"``, ``"./path/to/app"``, ``"mypkg.myapp"``) with its options in
    ``args``; a task list (a :class:`pathlib.Path`); or a list of shell commands or
    :class:`Task` objects.  ``workers``: a hosts file path, a list of :class:`Worker`, or None
    (``./hosts.yaml`` if present, else this machine).  ``options``: ``name``, ``run_dir``,
    ``procs``, ``retries``, ``retry_delay``, ``timeout``, ``halt``, ``heartbeat_timeout``,
    ``memfree`` (bytes), ``ssh_config``, ``verify_host_keys``, as the CLI's flags.
    ``on_result`` is called with each task's :class:`TaskResult` as it succeeds or fails for
    good.  Rerunning with the same ``run_dir`` resumes: finished tasks are not run again.
    """
    p = prepare(work, workers, args=args, start_agents=True, **options)
    return execute(p, on_result=on_result, progress=progress, handle_signals=handle_signals,
                   command_line=shlex.join([sys.argv[0] if sys.argv else "python", "(api)"]))
