"""``transport: slurm``: the same worker agent, inside a Slurm allocation, one step per task.

A Slurm worker is one allocation (``salloc --no-shell``, one node); its tasks run in
``srun --exact --unbuffered`` steps that each run the agent with one slot, with the task's
``--cpus-per-task`` and ``--mem``: Slurm enforces both and shares the node with everyone
else's jobs.  A step runs tasks of its shape (CPUs, memory) one after another, so a task
costs no new step unless its shape changes (or Slurm killed the step).  A long-lived *sentinel* step (``--overlap``, so it holds no CPUs of its own)
runs a task-less agent whose hello and heartbeats stand for the host, exactly like an SSH
worker's agent: journal, retries, heartbeats, streaming and outputs work unchanged.

Everything is event-driven: salloc's and srun's stdio and exit statuses, read by greenlets
that block until a byte arrives; nothing ever polls ``squeue`` or ``sacct``.

- ``salloc`` prints "Pending job allocation N" while the cluster is full: the host's state in
  the journal becomes ``waiting for Slurm`` (status and the web view show it) until granted.
- A step that Slurm kills for exceeding its memory ("exceeded memory limit", or an oom-kill
  event under cgroups) ends its task with outcome ``oom``; a preempted job's steps end with
  ``preempted``.  Both are failures that ``--retries`` retries, unlike a lost host.
- ``scancel`` of the allocation (or its time limit) kills the sentinel: the host is lost,
  its running tasks are requeued, and the host loop asks for a new allocation.

The head must be able to run ``salloc``/``srun`` (a login node; ``SLURM_CONF`` is honoured).
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import time

import gevent
from gevent import subprocess as gsubprocess
from lasair_parallel.head.connect.hosts import HostSpec
from lasair_parallel.head.connect.slurmopts import SlurmOptions
from lasair_parallel.head.connect.transport import HostDown, LocalConnection, agent_command

log = logging.getLogger(__name__)

_GRANTED = re.compile(r"Granted job allocation (\d+)")
_PENDING = re.compile(r"Pending job allocation (\d+)")
# slurmstepd's words for a step over its memory: OverMemoryKill ("exceeded memory limit")
# and the cgroup plugin ("oom-kill event", "oom_kill event").
_OOM = re.compile(r"exceeded memory limit|oom[-_ ]kill|out of memory|OUT_OF_MEMORY", re.I)
_PREEMPT = re.compile(r"DUE TO PREEMPTION|PREEMPTED", re.I)
_CANCELLED = re.compile(r"CANCELLED|Job step aborted|revoked|has expired|Invalid job id|"
                        r"already completing or completed", re.I)


def _bin(name: str) -> str:
    return os.environ.get(f"PARALLEL_{name.upper()}", name)


class _Step:
    """One srun step running an agent, for tasks of one shape (CPUs, MiB) in turn."""

    def __init__(self, shape: tuple[int, int | None], proc: gsubprocess.Popen):
        self.shape = shape
        self.proc = proc
        self.task: str | None = None  # the key of the task it runs now
        self.err = bytearray()  # srun's stderr (slurmstepd's messages), latest 64 KiB
        self.mark = 0  # where the current task's part of it starts
        self.glet: gevent.Greenlet | None = None
        self.err_glet: gevent.Greenlet | None = None


class SlurmConnection(LocalConnection):
    """One Slurm allocation as a worker: a sentinel agent plus one step per task."""

    def __init__(self, spec: HostSpec, on_event, heartbeat: float, heartbeat_timeout: float):
        super().__init__(spec, on_event, heartbeat, heartbeat_timeout)
        self.opts: SlurmOptions = spec.slurm or SlurmOptions()
        self.job_id: str | None = None
        self._salloc: gsubprocess.Popen | None = None
        self._idle: list[_Step] = []  # steps waiting for a task of their shape
        self._by_task: dict[str, _Step] = {}  # running task key -> its step
        self._unreported: list[str] = []  # tasks whose step ended with the allocation
        self._down = ""  # set by a step that saw the allocation go: the pump raises HostDown
        # slurmstepd's preemption line, once any step of the job has ended with it: Slurm
        # preempts a whole job, so its other steps were preempted too, whatever they printed
        self._preempted = ""

    # -- the allocation and the sentinel
    def allocation_command(self) -> list[str]:
        """``salloc`` for this worker: procs x cpus_per_task CPUs and procs x mem_per_task."""
        o = self.opts
        cmd = [_bin("salloc"), "--no-shell", "--nodes=1", "--ntasks=1",
               f"--cpus-per-task={self.spec.procs * o.cpus_per_task}",
               f"--job-name=lasair-parallel:{self.spec.label}", *o.allocation_args()]
        if o.mem_per_task_mb:
            cmd.append(f"--mem={self.spec.procs * o.mem_per_task_mb}M")
        if o.time:
            cmd.append(f"--time={o.time}")
        return cmd + list(o.srun_args)

    def _open(self) -> None:
        self._allocate()
        # --overlap: the sentinel shares the allocation's CPUs and memory with the task steps
        # instead of holding a CPU of its own; --mem=0: its limit is the whole allocation.
        cmd = [_bin("srun"), f"--jobid={self.job_id}", "--overlap", "--ntasks=1",
               "--cpus-per-task=1", "--mem=0", "--unbuffered", "--quiet",
               "--job-name=sentinel", "/bin/sh", "-c",
               agent_command(self.spec.python or "python3", self.config(), self.spec.workdir)]
        self.proc = gsubprocess.Popen(cmd, stdin=gsubprocess.PIPE, stdout=gsubprocess.PIPE,
                                      stderr=gsubprocess.PIPE, start_new_session=True)
        self._fds = [self.proc.stdout.fileno(), self.proc.stderr.fileno()]
        for fd in self._fds + [self.proc.stdin.fileno()]:
            os.set_blocking(fd, False)

    def config(self) -> dict:
        # The sentinel runs no tasks: its agent needs no slots of its own.
        return {"procs": 0, "heartbeat": self.heartbeat}

    def _allocate(self) -> None:
        """Run salloc, reporting "waiting for Slurm" while the job is pending."""
        self._salloc = gsubprocess.Popen(self.allocation_command(), stdin=gsubprocess.DEVNULL,
                                         stdout=gsubprocess.DEVNULL, stderr=gsubprocess.PIPE,
                                         start_new_session=True)
        lines = []
        for raw in self._salloc.stderr:  # gevent: blocks this greenlet only, until a line
            line = raw.decode("utf-8", "replace").rstrip()
            lines.append(line)
            if m := _PENDING.search(line):
                self.job_id = m[1]
                self.on_event({"ev": "host_state", "state": "waiting for Slurm",
                               "detail": f"job {m[1]} pending: {line}"})
            elif m := _GRANTED.search(line):
                self.job_id = m[1]
        rc = self._salloc.wait()
        self._salloc = None
        if self._closed:
            raise HostDown("closed while waiting for a Slurm allocation")
        if rc != 0 or self.job_id is None:
            raise HostDown("salloc failed: " + (" / ".join(lines[-3:]) or f"exit {rc}"))
        self.on_event({"ev": "host_state", "state": "connecting",
                       "detail": f"Slurm job {self.job_id} allocated"})

    # -- task steps
    def send(self, msg: dict) -> None:
        if msg.get("op") == "run":
            self._run_task(msg)
        elif msg.get("op") == "kill":
            step = self._by_task.get(msg["key"])
            if step is not None:
                self._write_line(step.proc, msg)
        else:
            super().send(msg)

    def _shape(self, msg: dict) -> tuple[int, int | None]:
        return (int(msg.get("cores") or 1) * self.opts.cpus_per_task,
                msg.get("memory_mb") or self.opts.mem_per_task_mb)

    def _run_task(self, msg: dict) -> None:
        """Hand a task to an idle step of its shape (CPUs, memory), or to a new step.

        A step runs tasks one after another: starting a step per task costs ~0.5 s here
        (Slurm frees a finished step's CPUs asynchronously, and srun backs off while they
        are still held), reusing one costs what a task costs over SSH.
        """
        shape = self._shape(msg)
        step = next((s for s in self._idle if s.shape == shape), None)
        if step is not None:
            self._idle.remove(step)
        else:
            # Idle steps of other shapes hold CPUs and memory the new one may need.
            for old in self._idle:
                self._close_stdin(old.proc)
            self._idle.clear()
            step = self._start_step(shape)
        step.task = msg["key"]
        step.mark = len(step.err)
        self._by_task[msg["key"]] = step
        self._write_line(step.proc, msg)  # a new step's agent reads it after its hello

    def step_command(self, shape: tuple[int, int | None]) -> list[str]:
        """``srun`` running an agent with ``shape``'s CPUs and memory, for tasks in turn."""
        cores, mem = shape
        cmd = [_bin("srun"), f"--jobid={self.job_id}", "--exact", "--ntasks=1",
               f"--cpus-per-task={cores}", "--unbuffered", "--kill-on-bad-exit=1",
               "--job-name=tasks"]
        # Always a --mem: a step without one may take all of the allocation's memory, and
        # then the steps run one at a time.
        cmd.append(f"--mem={mem}M" if mem else f"--mem-per-cpu={self._mem_per_cpu()}M")
        cmd += list(self.opts.srun_args)
        agent = agent_command(self.spec.python or "python3",
                              {"procs": 1, "heartbeat": self.heartbeat}, None)
        return cmd + ["/bin/sh", "-c", agent]

    def _mem_per_cpu(self) -> int:
        # No memory asked for anywhere: Slurm's DefMemPerCPU sized the allocation; a step
        # gets its share per CPU (256 MiB unless the cluster says otherwise).
        return int(os.environ.get("PARALLEL_SLURM_MEM_PER_CPU", "256"))

    def _start_step(self, shape: tuple[int, int | None]) -> _Step:
        p = gsubprocess.Popen(self.step_command(shape), stdin=gsubprocess.PIPE,
                              stdout=gsubprocess.PIPE, stderr=gsubprocess.PIPE,
                              start_new_session=True)
        step = _Step(shape, p)

        def read_err() -> None:
            for line in p.stderr:  # slurmstepd's and srun's messages, a line each
                step.err += line
                cut = len(step.err) - 65536  # keep the latest 64 KiB
                if cut > 0:
                    del step.err[:cut]
                    step.mark = max(0, step.mark - cut)

        step.err_glet = gevent.spawn(read_err)
        step.glet = gevent.spawn(self._step_loop, step)
        return step

    @staticmethod
    def _write_line(p: gsubprocess.Popen, msg: dict) -> None:
        try:
            p.stdin.write((json.dumps(msg, separators=(",", ":")) + "\n").encode())
            p.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the step is gone; its end is reported by _step_loop

    @staticmethod
    def _close_stdin(p: gsubprocess.Popen) -> None:
        try:
            p.stdin.close()  # the step's agent exits (killing its task, if any)
        except OSError:
            pass

    def _step_loop(self, step: _Step) -> None:
        """Relay a step's events; when it ends, say why its task ended, if one was running."""
        p = step.proc
        held = None  # an exit held back until the step's end says why (a possible OOM kill)
        for raw in p.stdout:
            try:
                ev = json.loads(raw)
            except ValueError:
                continue
            kind = ev.get("ev")
            if kind in ("start", "rows"):
                self.on_event(ev)
            elif kind == "exit" and ev.get("key") == step.task:
                self._by_task.pop(step.task, None)
                killed = ev.get("sig") or (ev.get("rc") or 0) >= 128
                if killed and not ev.get("timed_out"):
                    # A task killed by a signal may be Slurm's doing: the OOM killer under
                    # cgroups (SIGKILL), preemption or scancel (SIGTERM to the step).  End
                    # the step and let slurmstepd's words at its end decide.
                    held = ev
                    self._close_stdin(p)
                    continue
                step.task = None
                self._idle.append(step)  # before on_event: its dispatch may reuse the step
                self.on_event(ev)
        rc = p.wait()
        step.err_glet.join()
        if step in self._idle:
            self._idle.remove(step)
        key = held["key"] if held else step.task
        if key is None or self._closed:
            return  # an idle step ended (replaced, or the allocation went: the sentinel says)
        self._by_task.pop(key, None)
        stderr = bytes(step.err[step.mark:]).decode("utf-8", "replace").strip()
        self._step_ended(key, held, rc, stderr)

    def _step_ended(self, key: str, exit_ev: dict | None, rc: int, stderr: str) -> None:
        """Report a task's end, saying why Slurm ended it when it did."""
        why = " / ".join(stderr.splitlines()[-3:])
        ok = exit_ev is not None and exit_ev.get("rc") == 0
        if _OOM.search(stderr) and not ok:
            ev = exit_ev or {"rc": None, "sig": signal.SIGKILL}
            # slurmstepd's own line: srun's "Killed" / "Terminating" lines may come after it
            ev = dict(ev, outcome="oom", reason="out of memory: Slurm killed the step "
                      f"({_line_of(_OOM, stderr, why)})")
        elif _PREEMPT.search(stderr) and not ok:
            self._preempted = _line_of(_PREEMPT, stderr, why)
            ev = dict(exit_ev or {"rc": None, "sig": None}, outcome="preempted",
                      reason=f"preempted by Slurm ({self._preempted})")
        elif exit_ev is not None and (ok or not _CANCELLED.search(stderr)):
            ev = exit_ev
        elif _CANCELLED.search(stderr) or self.proc.poll() is not None:
            # The allocation is gone (scancel, time limit): the host is lost and its tasks
            # requeued, not failed.  The sentinel's end says so too; whichever comes first.
            self._down = f"Slurm job {self.job_id} ended: {why or 'step cancelled'}"
            self._unreported.append(key)
            self._wake()
            return
        else:
            ev = {"rc": None, "sig": None, "reason": f"Slurm step failed (exit {rc}): {why}"}
        ev = dict(ev, ev="exit", key=key)
        ev.setdefault("t", time.time())
        ev.setdefault("err_tail", stderr[-2000:])
        ev.setdefault("missing_outputs", [])
        self.on_event(ev)

    def pump(self) -> None:
        try:
            super().pump()
        except HostDown:
            # The allocation ended (scancel, preemption, time limit): its steps end at the
            # same moment.  Let them report first, so a preempted or out-of-memory task is
            # recorded as such rather than as lost with the host.  srun itself gives a
            # step up to KillWait + a few seconds.
            gevent.joinall([s.glet for s in self._by_task.values()], timeout=15)
            # salloc's own words may not be read yet when a step has seen the job go (a
            # run of the test suite under load recorded one of two preempted tasks as lost):
            # a step that ended with slurmstepd's preemption line says it for the job.
            if (self._preempted or _PREEMPT.search(self.stderr_tail())
                    or _PREEMPT.search(self._down)):
                # The whole job was preempted: a task whose step ended without slurmstepd
                # saying so (it was still starting) was preempted all the same.
                line = self._preempted or self.stderr_tail().splitlines()[0]
                for key in [*self._unreported, *self._by_task]:
                    self.on_event({"ev": "exit", "key": key, "rc": None, "sig": None,
                                   "t": time.time(), "missing_outputs": [],
                                   "outcome": "preempted",
                                   "reason": f"preempted by Slurm ({line[:300]})"})
            raise

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _read(self):
        if self._down:
            raise HostDown(self._down)
        return super()._read()

    def _shutdown(self) -> None:
        salloc = self._salloc
        if salloc is not None:  # still pending: salloc withdraws its job on SIGINT
            try:
                salloc.send_signal(signal.SIGINT)
                salloc.wait(timeout=5)
            except gsubprocess.TimeoutExpired:
                # It ignores signals while it cannot reach the controller: end it; the
                # scancel below withdraws the job if it got one.
                salloc.kill()
            except OSError:
                pass
        for step in [*self._idle, *self._by_task.values()]:
            self._close_stdin(step.proc)  # the step's agent kills its task on EOF
        if getattr(self, "proc", None) is not None:
            super()._shutdown()
        if self.job_id is not None:
            # Our allocation: give it back now rather than at its time limit.
            try:
                gsubprocess.run([_bin("scancel"), self.job_id], timeout=10,
                                stdout=gsubprocess.DEVNULL, stderr=gsubprocess.DEVNULL)
            except (OSError, gsubprocess.SubprocessError) as e:
                log.warning("scancel %s: %s", self.job_id, e)
            self.job_id = None


def _line_of(pattern: re.Pattern, text: str, default: str) -> str:
    """The first line of ``text`` that ``pattern`` finds, stripped; else ``default``."""
    return next((line.strip() for line in text.splitlines() if pattern.search(line)), default)
