"""Free-slot dispatch over worker agents, with retries, timeouts, host failure and halting.

Everything runs in gevent greenlets of one thread: one *host loop* per worker (connect, pump
events, reconnect with backoff), and the handlers those pumps call.  A task is handed to a
slot the moment one frees (an ``exit`` event), so no slot idles while work is queued.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import gevent
from gevent.event import Event
from lasair_parallel.head.connect.hosts import HostSpec, Resolving, SSHTarget
from lasair_parallel.head.connect.staging import Stager
from lasair_parallel.head.connect.transport import (
    Connection,
    HostDown,
    open_connection,
    warm_ssh,
)
from lasair_parallel.head.core.dynamic import Dynamic
from lasair_parallel.head.core.early import EarlyAgents
from lasair_parallel.head.core.failures import (
    describe_error,
    exited_well,
    failure_reason,
    is_permanent,
)
from lasair_parallel.head.core.hostset import HostSet
from lasair_parallel.head.core.journal import Journal
from lasair_parallel.head.core.options import HaltError, HaltPolicy, Options  # noqa: F401 - re-exported
from lasair_parallel.head.core.streams import Spools
from lasair_parallel.tasks import Task
from lasair_parallel.tasks.protocol import ENV_RUN_DIR

log = logging.getLogger(__name__)

# Reconnect backoff: 1, 2, 4, ... capped at 30 s, so a rebooting worker (typically back within
# a minute) rejoins quickly, and a dead one costs one failed handshake per 30 s.
RECONNECT_FIRST = 1.0
RECONNECT_MAX = 30.0
# With no host up, give up after every host has failed this many connection attempts in a row:
# enough to ride out a brief network blip (~7 s of backoff), short enough to fail a typo fast.
GIVE_UP_AFTER = 3
# Longest wait at a stop for agents that still had tasks to kill, so none outlives the head:
# an agent TERMs its tasks, KILLs them after its KILL_GRACE (1 s, head/worker/agent.py),
# waits 0.5 s more for their reapers and exits; plus 1 s for a loaded worker.  An agent with
# nothing to kill is not waited for.
KILL_WAIT = 2.5


@dataclass
class Running:
    task: Task
    attempt: int
    slot: int
    key: str
    more: tuple[int, ...] = ()  # further slots a multi-core task holds (Task.cores)

    @property
    def slots(self) -> tuple[int, ...]:
        return (self.slot, *self.more)


@dataclass
class HostState:
    spec: HostSpec
    state: str = "connecting"  # connecting | up | down | failed
    conn: Connection | None = None
    free: list[int] = field(default_factory=list)
    running: dict[str, Running] = field(default_factory=dict)
    connect_failures: int = 0
    reason: str = ""
    hello: dict = field(default_factory=dict)
    memfree: int | None = None
    done: int = 0
    failed: int = 0
    stager: Stager | None = None
    target: SSHTarget | None = None  # ~/.ssh/config applied, for SSH workers
    draining: bool = False  # removed from the run: finish running tasks, start no more
    mem_low: bool = False  # below --memfree at the last check (logged on each transition)

    @property
    def label(self) -> str:
        return self.spec.label


class Scheduler(HostSet):
    """Run ``tasks`` on ``hosts``; the journal records everything as it happens."""

    def __init__(self, hosts: list[HostSpec], tasks: list[Task], journal: Journal,
                 opts: Options, run_name: str,
                 on_change: Callable[[Scheduler], None] | None = None,
                 on_task: Callable[[str], None] | None = None,
                 depths: dict[str, int] | None = None, resolving: Resolving | None = None,
                 early: EarlyAgents | None = None):
        """``resolving``: the SSH workers' ``ssh -G``, already started (runner.execute);
        ``early``: local agents started while the app planned, taken over here."""
        self.early = early
        self.t0 = time.monotonic()  # for the debug log's timeline of a run's start and end
        self.opts = opts
        self.journal = journal
        self.run_name = run_name
        self.run_dir = journal.run_dir.resolve()
        # Resolve ~/.ssh/config (``ssh -G``) now, before any greenlet runs: a child process
        # started while another connection is in its handshake interrupts it (SIGCHLD).
        # runner.execute started them (and warm_ssh) before opening the journal.
        ssh = [h for h in hosts if h.transport == "ssh"]
        meanwhile = None  # runner.execute ran warm_ssh while its ssh -G ran
        if resolving is None or resolving.specs != ssh:
            if resolving is not None:
                resolving.abandon()
            resolving, meanwhile = Resolving(ssh, opts.ssh_config), warm_ssh
        resolved = resolving.result(meanwhile=meanwhile)
        targets = dict(zip(map(id, ssh), resolved, strict=True))
        self.hosts = [HostState(h, target=targets.get(id(h))) for h in hosts]
        self._mark("ssh -G resolved for %d host(s)", len(hosts))
        self.tasks = {t.id: t for t in tasks}
        self.total = len(tasks)
        self.dyn = Dynamic(self, tasks, depths)  # dependencies, spawns, sizing, backups
        self.heap: list[tuple[float, int, str]] = [(-t.weight, i, t.id) for i, t in enumerate(tasks)
                                                   if not self.dyn.blocked(t.id)]
        heapq.heapify(self.heap)
        self.retry_ready: list[str] = []
        self.delayed = 0
        self.copying = 0  # attempts whose outputs are being copied back
        self._launched = False  # a task was sent (the debug timeline marks the first)
        self._killing: list[HostState] = []  # stopped with tasks running: their agents kill them
        self.spools = Spools(self.run_dir)  # rows streamed by running attempts
        self.failures: dict[str, int] = {}
        self.failed_hosts: dict[str, set[str]] = {}
        self.attempt_no: dict[str, int] = {}
        self.queued_at = time.time()
        self.ready_at: dict[str, float] = {}  # a retried task's queue time (its requeue)
        self.done = 0
        self.failed = 0
        self.finished = Event()
        self.stopping = False  # no more dispatch; set by halt or interrupt
        self.interrupted = False
        self.halted = False
        self.abort_reason = ""
        self.on_change = on_change or (lambda s: None)
        self.on_task = on_task  # a task reached done or failed (for the API's callbacks)
        self._loops: list[tuple[gevent.Greenlet, HostState]] = []  # host loops (hostset.py)
        journal.on_fatal = self._journal_failed

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        if not self.tasks:
            return
        self._mark("scheduler running")
        for h in self.hosts:
            self.start_host(h)
        self.finished.wait()
        self._mark("all tasks finished")
        if self._killing:
            # Their agents exit once their tasks are dead (the channel then ends and so does
            # the host's loop): the head exiting first would leave them running meanwhile.
            killing = {id(h) for h in self._killing}
            gevent.joinall([g for g, h in self._loops if id(h) in killing], timeout=KILL_WAIT)
            self._mark("agents with tasks to kill have exited")
        if self.opts.clean_workers:
            self.clean_worker_folders()
        self._close_all()
        self._mark("connections closed")
        self.stop_loops()
        self._mark("host loops ended")

    def _mark(self, what: str, *args: object) -> None:
        """A debug line with the seconds since the scheduler was built (start/end costs)."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("+%.3f s " + what, time.monotonic() - self.t0, *args)

    def interrupt(self, why: str = "interrupted") -> None:
        """Stop now: kill every running task (their attempts are recorded as killed)."""
        if self.finished.is_set():
            return
        self.interrupted = True
        self.abort_reason = why
        self._stop_now("killed", why)

    def _stop_now(self, outcome: str, why: str) -> None:
        self.stopping = True
        for h in self.hosts:
            if h.running and h.conn is not None:
                self._killing.append(h)
            for r in list(h.running.values()):
                self._end(h, r, outcome, None, reason=why)
            h.running.clear()
        self._close_all(stop=self._killing)
        self.finished.set()

    def _journal_failed(self, why: str) -> None:
        """The journal cannot be written (a full disk): stop now, without writing.

        Closing the connections makes every agent kill its tasks; what the journal last
        committed is what a rerun resumes from (the attempts it shows running become lost).
        """
        if self.finished.is_set():
            return
        self.abort_reason = why
        self.stopping = True
        log.debug("%s", why)  # the CLI prints abort_reason once, at the end

        def stop() -> None:
            for h in self.hosts:
                h.running.clear()
            self._close_all()
            self.finished.set()

        gevent.spawn(stop)  # not inside the journal call that failed: it may be mid-handler

    def _close_all(self, stop: list[HostState] | tuple = ()) -> None:
        """Close every connection; those of ``stop`` are asked to stop instead (their agent
        kills its tasks and exits, which ends the connection)."""
        for h in self.hosts:
            if h.conn is not None and any(h is x for x in stop):
                h.conn.send({"op": "stop"})
                continue
            if h.conn is not None:
                try:
                    h.conn.close()
                except Exception as e:  # a broken socket on the way out changes nothing
                    log.debug("closing %s: %s", h.label, e)
            if h.stager is not None:
                h.stager.close()
        self.spools.close()

    # ------------------------------------------------------------------ hosts
    def _host_loop(self, h: HostState) -> None:
        delay = RECONNECT_FIRST
        while not self.stopping and not self.finished.is_set():
            if h.draining:
                self._drained(h)
                return
            h.state = "connecting"
            conn = self._claimed(h) or self._connection(h)
            h.conn = conn
            try:
                hello = conn.open()
            except Exception as e:
                log.debug("connecting to %s failed", h.label, exc_info=True)
                conn.close()
                if self.stopping or self.finished.is_set():
                    return  # the run ended while this host was still connecting
                permanent = is_permanent(e)
                self._host_failed(h, describe_error(e), permanent)
                if permanent:
                    return
                gevent.sleep(delay)
                delay = min(RECONNECT_MAX, delay * 2)
                continue
            delay = RECONNECT_FIRST
            mismatch = self._version_mismatch(hello)
            if mismatch or h.draining:
                conn.close()
                if mismatch:
                    self._host_failed(h, mismatch, permanent=True)
                else:
                    self._drained(h)
                return
            self._mark("%s: agent up", h.label)
            h.connect_failures = 0
            h.hello = hello
            h.memfree = hello.get("memfree")
            h.state = "up"
            h.reason = ""
            h.free = list(range(h.spec.procs))
            if not h.spec.shares_fs and h.stager is None:
                h.stager = Stager(h.spec, h.target, self.opts, self.run_dir, self.run_name, hello)
            self.journal.host_event(h.label, "up", f"agent pid {hello.get('pid')}")
            self.journal.host_state(h.label, h.spec.procs, "up", hello=hello)
            self._dispatch()
            try:
                conn.pump()
                reason = "connection closed"
            except HostDown as e:
                reason = str(e)
            except Exception as e:  # an SSH library error is a lost host, not a crashed head
                reason = describe_error(e)
            conn.close()
            if self.stopping or self.finished.is_set():
                return
            if h.draining and not h.running:
                self._drained(h)
                return
            self._host_lost(h, reason)
            gevent.sleep(delay)
            delay = min(RECONNECT_MAX, delay * 2)

    def _connection(self, h: HostState) -> Connection:
        """A connection for ``h`` by its transport (not yet opened)."""
        on_event = lambda ev, h=h: self._on_event(h, ev)  # noqa: E731
        if h.spec.transport == "slurm":
            from lasair_parallel.head.connect.slurm import SlurmConnection

            return SlurmConnection(h.spec, on_event, self.opts.heartbeat,
                                   self.opts.heartbeat_timeout)
        return open_connection(h.spec, h.target, on_event, self.opts.heartbeat,
                               self.opts.heartbeat_timeout, self.opts.verify_host_keys,
                               slot=self._slot(h))

    def _claimed(self, h: HostState) -> Connection | None:
        """``h``'s agent started during the plan (its first connection only), now this run's."""
        conn = self.early.take(h.spec) if self.early is not None else None
        if conn is not None:
            conn.claim(lambda ev, h=h: self._on_event(h, ev), self._slot(h))
        return conn

    def _slot(self, h: HostState) -> str:
        """This run's name for one host, on that host (the agent's pid file there): a new
        agent kills what a previous agent of this run left (see head/worker/agent.py)."""
        return hashlib.sha1(f"{self.run_dir}\0{h.label}".encode()).hexdigest()[:16]

    def _version_mismatch(self, hello: dict) -> str:
        want = self.opts.require_version
        have = hello.get("version")
        if not want or have == want:
            return ""
        where = hello.get("executable") or "its python"
        return (f"lasair-parallel {have or 'is not installed'} on {where}, head has {want}; "
                f"run `parallel deploy --workers <hosts file>` to install {want} there")

    def _drained(self, h: HostState) -> None:
        h.state = "drained"
        h.free = []
        self.journal.host_event(h.label, "drained", "")
        self.journal.host_state(h.label, h.spec.procs, "drained")
        if h.stager is not None:
            h.stager.close()
        if not any(x.state in ("up", "connecting") for x in self.hosts):
            log.warning("no workers left in the run; add one (edit the hosts file or "
                        "`parallel hosts add`) or stop it with Ctrl-C")
        self.on_change(self)

    def _host_failed(self, h: HostState, reason: str, permanent: bool) -> None:
        h.state = "failed" if permanent else "down"
        h.reason = reason
        h.connect_failures += 1
        self.journal.host_event(h.label, "unreachable", reason)
        self.journal.host_state(h.label, h.spec.procs, h.state)
        log.warning("%s: %s", h.label, reason)
        self.on_change(self)
        if all(x.state == "failed" or (x.state == "down" and x.connect_failures >= GIVE_UP_AFTER)
               for x in self.hosts if not x.draining):
            reasons = "; ".join(f"{x.label}: {x.reason}" for x in self.hosts)
            self.abort_reason = f"no worker could be reached ({reasons})"
            self._stop_now("lost", self.abort_reason)

    def _host_lost(self, h: HostState, reason: str) -> None:
        """The host went down: its running attempts are lost and their tasks run again."""
        h.state = "down"
        h.reason = reason
        self.journal.host_event(h.label, "down", reason)
        self.journal.host_state(h.label, h.spec.procs, "down")
        log.warning("%s is down (%s); requeueing %d task(s)", h.label, reason, len(h.running))
        for r in list(h.running.values()):
            self.dyn.forget(r)
            if self.dyn.twin_running(r) or self.dyn.superseded(r.task.id):
                self._end(h, r, "lost", None, reason=f"host down: {reason}; its copy runs on")
                continue
            self._end(h, r, "lost", "pending", reason=f"host down: {reason}")
            self._requeue(r.task.id, delay=0.0)
        h.running.clear()
        h.free = []
        self._dispatch()
        self.on_change(self)

    # ------------------------------------------------------------------ events
    def _on_event(self, h: HostState, ev: dict) -> None:
        kind = ev.get("ev")
        if kind == "exit":
            r = h.running.pop(ev["key"], None)
            if r is None:
                return  # an attempt already given up (e.g. interrupted); nothing to record
            # A slot beyond a lowered procs is retired.
            h.free.extend(s for s in r.slots if s < h.spec.procs)
            h.free.sort()
            if h.stager is not None:
                self.dyn.exited(h, r, ev)  # the rate, before the freed slot's next task
                # Counted now, not when the greenlet starts: until it has run, nothing else
                # may conclude that the run is over.
                self.copying += 1
                gevent.spawn(self._copy_back_then_finish, h, r, ev)
            else:
                self._finish(h, r, ev)
            if h.draining and not h.running and h.conn is not None:
                h.conn.close()
            self._dispatch()
        elif kind == "rows":
            self.spools.write(ev["key"], ev["data"])
        elif kind == "spawn":
            self.dyn.on_spawn(h, ev)
        elif kind == "start":
            task_id, _, attempt = ev["key"].rpartition("#")
            self.journal.started(task_id, int(attempt), ev["t"])
        elif kind == "host_state":  # e.g. a Slurm allocation pending: "waiting for Slurm"
            self.journal.host_event(h.label, ev["state"], ev.get("detail", ""))
            self.journal.host_state(h.label, h.spec.procs, ev["state"])
            if h.state != "up":
                h.state = ev["state"]  # shown by the progress line
            self.on_change(self)
        elif kind == "hb":
            h.memfree = ev.get("memfree")
            self.journal.host_state(h.label, h.spec.procs, h.state, hb=ev)
            if self.opts.memfree:
                self._dispatch()  # memory may have come back

    def _copy_back_then_finish(self, h: HostState, r: Running, ev: dict) -> None:
        reason = None
        # One attempt of a task at a time copies back and is recorded (a backup and its
        # original): the second sees the first's success and copies nothing over its files.
        with self.dyn.copy_back(r.task.id):
            try:
                if not self.dyn.superseded(r.task.id):  # a copy won: keep its outputs only
                    h.stager.fetch(r.task, self._log_paths(r.task, r.attempt), ev)
            except Exception as e:
                ev = dict(ev, rc=None)
                reason = f"copying outputs back failed: {describe_error(e)}"
            finally:
                self.copying -= 1
            self._finish(h, r, ev, reason=reason)
        self._dispatch()  # a retry (delay 0) or a dependent it released can start now

    def _finish(self, h: HostState, r: Running, ev: dict, reason: str | None = None) -> None:
        missing = ev.get("missing_outputs") or []
        ok = exited_well(ev) and reason is None
        handled, ok, reason = self.dyn.settle(h, r, ok, reason)  # spawn errors, backup twins
        if handled:
            pass
        elif ok:
            h.done += 1
            self.done += 1
            self._end(h, r, "ok", "done", ev)
            self.dyn.succeeded(h, r, ev)
        else:
            if reason is None:
                reason = failure_reason(ev, missing)
            # A transport may say why (Slurm: "oom", "preempted"); retried like a failure.
            outcome = ev.get("outcome") or ("timeout" if ev.get("timed_out") else "failed")
            reason = ev.get("reason") or reason
            n = self.failures[r.task.id] = self.failures.get(r.task.id, 0) + 1
            self.failed_hosts.setdefault(r.task.id, set()).add(h.label)
            if n <= self.opts.retries and not self.stopping:
                self._end(h, r, outcome, "pending", ev, reason)
                self._requeue(r.task.id, self.opts.retry_delay * 2 ** (n - 1))
            else:
                h.failed += 1
                self.failed += 1
                self._end(h, r, outcome, "failed", ev, reason)
                self.dyn.failed_for_good(r)
                self._check_halt()
        self.on_change(self)
        self._check_finished()

    def _end(self, h, r, outcome, state, ev=None, reason=None) -> None:
        if r.task.stream:
            self.spools.end(r.key, keep=outcome == "ok")
        self.journal.end_attempt(r.task, r.attempt, outcome, state, ev, reason,
                                 on_tx=self.dyn.ending(r, outcome))
        if self.on_task is not None and state in ("done", "failed"):
            try:
                self.on_task(r.task.id)
            except Exception:  # a user's callback must not take the scheduler down
                log.exception("on_result callback failed for task %s", r.task.id)

    def _requeue(self, task_id: str, delay: float) -> None:
        if delay <= 0:
            self.ready_at[task_id] = time.time()
            self.retry_ready.append(task_id)
            return
        self.delayed += 1

        def ready():
            self.delayed -= 1
            self.ready_at[task_id] = time.time()
            self.retry_ready.append(task_id)
            self._dispatch()

        gevent.spawn_later(delay, ready)

    def _check_halt(self) -> None:
        finished = self.done + self.failed
        if not self.opts.halt.triggered(self.failed, finished):
            return
        self.halted = True
        if self.opts.halt.when == "now":
            self.abort_reason = f"halted after {self.failed} failure(s) (--halt now)"
            self._stop_now("killed", "halted by --halt now")
        else:
            self.stopping = True
            self.abort_reason = f"halted after {self.failed} failure(s) (--halt soon)"
            self._check_finished()

    def _check_finished(self) -> None:
        running = any(h.running for h in self.hosts)
        if running or self.copying:
            return
        if self.stopping or (not self.heap and not self.retry_ready and not self.delayed):
            self.finished.set()

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self) -> None:
        # No start barrier: a host's slots fill the moment its agent is up.  With tasks of
        # equal length, a slot free earlier never ends the run later; waiting for every host
        # (as this did, up to 1 s) held the first task back by the spread of the handshakes
        # (0.1-0.3 s on 4 loopback hosts, benchmarks/startend.py).
        if self.stopping or self.finished.is_set():
            return
        progress = True
        while progress:
            progress = False
            for h in self.hosts:
                if h.state != "up" or h.draining or not h.free or not self._has_memory(h):
                    continue
                task = self._next_for(h)
                if task is None:
                    continue
                self._launch(h, task)
                progress = True
        self.dyn.idle()  # nothing more to start: backup copies of stragglers, maybe

    def _has_memory(self, h: HostState) -> bool:
        ok = not self.opts.memfree or h.memfree is None or h.memfree >= self.opts.memfree
        if ok == h.mem_low:  # a transition: record it once, so status shows why a host idles
            h.mem_low = not ok
            mb = (h.memfree or 0) >> 20
            self.journal.host_event(h.label, "memory low" if h.mem_low else "memory ok",
                                    f"{mb} MiB available, --memfree {self.opts.memfree >> 20} MiB")
            if h.mem_low:
                log.warning("%s: %d MiB available, below --memfree; starting nothing there",
                            h.label, mb)
        return ok

    def _next_for(self, h: HostState) -> Task | None:
        # Hosts that can take the retry soon: up, or still making their first connection.
        up = {x.label for x in self.hosts if not x.draining and (
              x.state == "up" or (x.state == "connecting" and x.connect_failures == 0))}
        for i, tid in enumerate(self.retry_ready):
            tried = self.failed_hosts.get(tid, set())
            # Prefer a host this task has not failed on; use the same one only when it has
            # failed on every host that is up (a deterministic failure, or a single host).
            if (h.label not in tried or up <= tried) and self._fits(h, self.tasks[tid]):
                del self.retry_ready[i]
                return self.tasks[tid]
        # The heaviest task waits for enough free slots here rather than letting lighter ones
        # overtake it forever (a multi-core task would starve behind a stream of 1-core ones).
        if self.heap and self._fits(h, self.tasks[self.heap[0][2]]):
            return self.tasks[heapq.heappop(self.heap)[2]]
        return None

    @staticmethod
    def _slots_needed(h: HostState, task: Task) -> int:
        """Slots a task takes on ``h``: its cores, at most all of the host's slots (a task
        bigger than every host still runs, alone, rather than never)."""
        return max(1, min(task.cores or 1, h.spec.procs))

    def _fits(self, h: HostState, task: Task) -> bool:
        return len(h.free) >= self._slots_needed(h, task)

    def _log_paths(self, task: Task, attempt: int) -> tuple[str, str]:
        base = self.run_dir / "logs" / f"{task.id}.{attempt}"
        return f"{base}.out", f"{base}.err"

    def _launch(self, h: HostState, task: Task) -> None:
        task = self.dyn.with_spawned_inputs(task)  # a gather reads what split work wrote
        attempt = self.attempt_no.get(task.id)
        if attempt is None:
            attempt = self.journal.attempts_so_far(task.id)
        attempt += 1
        self.attempt_no[task.id] = attempt
        need = self._slots_needed(h, task)
        slot, more = h.free[0], tuple(h.free[1:need])
        del h.free[:need]
        key = f"{task.id}#{attempt}"
        out, err = self._log_paths(task, attempt)
        queued = self.ready_at.pop(task.id, self.queued_at)
        if not self._launched:
            self._launched = True
            self._mark("first task sent to %s", h.label)
        self.journal.start_attempt(task, attempt, h.label, slot, queued, out, err)
        h.running[key] = Running(task, attempt, slot, key, more)
        env = {ENV_RUN_DIR: str(self.run_dir), **dict(task.env)}  # a stager maps it
        msg = {"op": "run", "key": key, "cmd": task.command, "env": env,
               "timeout": task.timeout or self.opts.timeout, "out": out, "err": err,
               "outputs": list(task.outputs)}
        if task.cores or task.memory_mb:  # the Slurm transport asks for these; agents ignore
            msg.update(cores=need, memory_mb=task.memory_mb)
        self.dyn.launched(h, task, key, msg)  # sizing hints, spawn channel
        if task.stream:
            self.spools.start(key, task.stream)
            msg["emit"] = True
        # The agent already runs in the worker's workdir (agent_command cds there, relative
        # to the login directory); naming it again would resolve a relative one twice.
        msg["cwd"] = None
        if h.stager is None:
            h.conn.send(msg)
        else:
            gevent.spawn(self._stage_then_send, h, key, msg)

    def _stage_then_send(self, h: HostState, key: str, msg: dict) -> None:
        r = h.running.get(key)
        if r is None:
            return
        try:
            msg = h.stager.prepare(r.task, msg)
        except Exception as e:
            h.running.pop(key, None)
            h.free.extend(r.slots)
            self._finish(h, r, {"rc": None}, reason=f"sending inputs failed: {describe_error(e)}")
            self._dispatch()
            return
        if key in h.running and h.conn is not None:
            h.conn.send(msg)
