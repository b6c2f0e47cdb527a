"""One run, end to end: journal, resume, schedule, stop on a signal, gather, summarise."""

from __future__ import annotations

import logging
import os
import resource
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import gevent
from lasair_parallel.head.connect.hosts import HostSpec, Resolving
from lasair_parallel.head.connect.transport import warm_ssh
from lasair_parallel.head.core import dynjournal
from lasair_parallel.head.core.deps import validate as validate_deps
from lasair_parallel.head.core.early import EarlyAgents
from lasair_parallel.head.core.journal import Journal
from lasair_parallel.head.core.options import Options
from lasair_parallel.head.core.progress import Progress
from lasair_parallel.head.core.runlock import RunLock
from lasair_parallel.head.core.scheduler import Scheduler
from lasair_parallel.tasks import Task
from lasair_parallel.tasks.errors import UsageError

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass
class RunResult:
    total: int
    skipped: int  # already done in an earlier run
    done: int
    failed: int
    skipped_after_failure: int = 0  # not run: a task they run after failed for good
    interrupted: bool = False
    reason: str = ""
    failures: list[dict] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.failed or self.reason or self.skipped + self.done < self.total:
            return EXIT_FAILED
        return EXIT_OK


def execute(hosts: list[HostSpec], tasks: list[Task], run_dir: Path, name: str, opts: Options,
            command_line: str = "", progress: bool = True, app: ModuleType | None = None,
            app_args=None, app_ctx=None, hosts_file: str | None = None,
            procs: int | None = None, stream_loader=None, handle_signals: bool = False,
            notify: Callable[[str], None] | None = None,
            on_task: Callable[[Journal, str], None] | None = None,
            early: EarlyAgents | None = None) -> RunResult:
    """Run ``tasks`` (skipping those an earlier run finished) and return the outcome.

    ``hosts_file`` (with the ``--procs`` override) is watched during the run: workers added
    to it join, workers removed from it are drained (see :mod:`lasair_parallel.head.core.elastic`).
    ``notify`` receives the lines a user should see (the CLI prints them; the library default
    logs them); ``on_task`` is called with the journal and a task id when the task succeeds or
    fails for good; ``handle_signals`` installs SIGINT/SIGTERM handlers that stop the run;
    ``early``: local agents started while the app planned, taken over by the scheduler (the
    caller closes those it did not take).
    """
    notify = notify or log.info
    from lasair_parallel.head.core.elastic import HostWatcher

    # The workers' ``ssh -G`` run while the SSH client is imported, the journal opened and the
    # tasks registered.
    resolving = Resolving([h for h in hosts if h.transport == "ssh"], opts.ssh_config)
    try:
        if resolving.specs:
            warm_ssh()
        make_run_dir(run_dir)
        lock = RunLock(run_dir).acquire()  # before the journal: a second head changes nothing
    except BaseException:
        resolving.abandon()
        raise
    try:
        journal = Journal(run_dir)
    except BaseException:
        resolving.abandon()
        lock.release()
        raise
    try:
        validate_deps(tasks)
        # Tasks spawned by earlier runs' successful attempts are tasks of this run too.
        spawned = dynjournal.spawned_tasks(journal)
        planned = {t.id for t in tasks}
        tasks = tasks + [t for t, _ in spawned if t.id not in planned]
        depths = {t.id: d for t, d in spawned}
        check_same_tasks(journal, tasks)
        dynjournal.reset_skipped(journal)
        lost = journal.recover()
        if lost:
            log.warning("%d attempt(s) were running when the last head stopped; they run again",
                        lost)
        journal.register(tasks)
        dynjournal.record_after(journal, tasks)
        journal.set_meta(name=name, command=command_line, started=time.time(),
                         hosts=[h.label for h in hosts], total=len(tasks), head_pid=os.getpid(),
                         hosts_file=str(Path(hosts_file).resolve()) if hosts_file else None,
                         finished=None)
        done_before = journal.done_ids()
        todo = [t for t in tasks if t.id not in done_before]
        skipped = len(tasks) - len(todo)
        if skipped:
            notify(f"resuming {name}: {skipped} of {len(tasks)} task(s) already done")
        bar = Progress(len(tasks), skipped, enabled=progress)
        def on_change(s: Scheduler) -> None:
            bar.total = skipped + s.total  # spawned tasks join the count
            bar.update(s)

        sched = Scheduler(hosts, todo, journal, opts, name, on_change=on_change,
                          on_task=(lambda tid: on_task(journal, tid)) if on_task else None,
                          depths=depths, resolving=resolving, early=early)
        if stream_loader is not None:
            sched.spools.on_commit = stream_loader.submit
        stop = _install_signal_handlers(sched, notify) if handle_signals else (lambda: None)
        watcher = HostWatcher(sched, run_dir, hosts_file, procs).start()
        try:
            sched.run()
        finally:
            watcher.stop()
            stop()
            bar.close()
        result = RunResult(total=len(tasks) + sched.dyn.spawned, skipped=skipped,
                           done=sched.done, failed=sched.failed,
                           skipped_after_failure=sched.dyn.skipped,
                           interrupted=sched.interrupted, reason=sched.abort_reason)
        log.debug("scheduler returned")
        result.failures = failures(journal)
        if stream_loader is not None:
            # Also what an earlier, interrupted run committed but had not loaded yet.
            committed = [run_dir / t.stream for t in tasks
                         if t.stream and (run_dir / t.stream).exists()]
            stream_loader.finish(committed)
            if stream_loader.errors:
                result.reason = "loading streamed rows failed: " + stream_loader.errors[0]
        journal.set_meta(finished=time.time(), exit_status=result.exit_status,
                         head_maxrss_kb=_peak_rss_kb(),
                         streamed_bytes=sched.spools.bytes_in)
        # An app naming its gather's outputs (GATHER_OUTPUTS) had it run as a task of the plan.
        if (app is not None and result.exit_status == EXIT_OK and hasattr(app, "gather")
                and not getattr(app, "GATHER_OUTPUTS", None)):
            app.gather(app_args, app_ctx)
        return result
    finally:
        resolving.abandon()  # a no-op once the scheduler has read the targets
        journal.close()
        lock.release()
        log.debug("run ended, journal closed")


def make_run_dir(run_dir: Path) -> None:
    """Create the run directory, or say in one line why it cannot be."""
    try:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        probe = Path(run_dir) / ".writable"
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise UsageError(f"{run_dir}: cannot create the run directory ({e.strerror}); give "
                         "--run-dir a writable place") from None


def check_same_tasks(journal: Journal, tasks: list[Task]) -> None:
    """Refuse to mix two task lists in one run directory.

    A rerun resumes the same tasks; a list that adds tasks extends the run (as GNU parallel's
    --resume with appended lines).  A list missing tasks the journal has is another run: its
    status and totals would mix the two.
    """
    old = {r[0] for r in journal.db.execute("SELECT id FROM tasks")}
    gone = old - {t.id for t in tasks}
    if gone:
        raise UsageError(
            f"{journal.run_dir}: holds a run of other tasks ({len(gone)} of its {len(old)} "
            "task(s) are not in this list); give this run its own --run-dir or --name, or "
            "remove that directory")


def _peak_rss_kb() -> int:
    """This process's own peak RSS: VmHWM on Linux (ru_maxrss would carry over the peak of a
    parent that forked us, e.g. a big test runner), ru_maxrss elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _install_signal_handlers(sched: Scheduler, notify: Callable[[str], None]):
    """Ctrl-C / SIGTERM: stop every remote task, record it, exit; rerun resumes."""
    handlers = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        name = signal.Signals(signum).name

        def on_signal(name=name):
            notify(f"\n{name}: stopping all tasks (rerun the same command to resume)")
            gevent.spawn(sched.interrupt, f"run interrupted by {name}")

        handlers.append(gevent.signal_handler(signum, on_signal))

    def restore():
        for h in handlers:
            h.cancel()

    return restore


def failures(journal: Journal, limit: int = 20) -> list[dict]:
    """The latest failed attempt of each task that finally failed, newest first."""
    rows = journal.db.execute(
        "SELECT a.task_id, a.attempt, a.host, a.exit_code, a.signal, a.outcome, a.reason, "
        "a.err_tail, t.command FROM attempts a JOIN tasks t ON t.id = a.task_id "
        "WHERE t.state = 'failed' AND a.attempt = t.attempts ORDER BY a.end DESC LIMIT ?",
        (limit,)).fetchall()
    keys = ("task", "attempt", "host", "exit_code", "signal", "outcome", "reason", "err_tail",
            "command")
    return [dict(zip(keys, r)) for r in rows]
