"""``transport: slurm``: the same worker agent, inside a Slurm allocation, one step per task.

A Slurm worker is one allocation (``salloc --no-shell``, one node) and, per task, one
``srun --exact --unbuffered`` step that runs the agent for that task alone, with the task's
own ``--cpus-per-task`` and ``--mem``: Slurm enforces both and shares the node with everyone
else's jobs.  A long-lived *sentinel* step (``--overlap``, so it holds no CPUs of its own)
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


class SlurmConnection(LocalConnection):
    """One Slurm allocation as a worker: a sentinel agent plus one step per task."""

    def __init__(self, spec: HostSpec, on_event, heartbeat: float, heartbeat_timeout: float):
        super().__init__(spec, on_event, heartbeat, heartbeat_timeout)
        self.opts: SlurmOptions = spec.slurm or SlurmOptions()
        self.job_id: str | None = None
        self._salloc: gsubprocess.Popen | None = None
        self._steps: dict[str, gsubprocess.Popen] = {}
        self._step_glets: dict[str, gevent.Greenlet] = {}
        self._down = ""  # set by a step that saw the allocation go: the pump raises HostDown

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
            g = self._step_glets[msg["key"]] = gevent.spawn(self._run_step, msg)
            g.link(lambda _, key=msg["key"]: self._step_glets.pop(key, None))
        elif msg.get("op") == "kill":
            p = self._steps.get(msg["key"])
            if p is not None:
                self._write_line(p, msg)
        else:
            super().send(msg)

    def step_command(self, msg: dict) -> list[str]:
        """``srun`` running one task's agent with the task's CPUs and memory."""
        o = self.opts
        cores = int(msg.get("cores") or 1) * o.cpus_per_task
        mem = msg.get("memory_mb") or o.mem_per_task_mb
        cmd = [_bin("srun"), f"--jobid={self.job_id}", "--exact", "--ntasks=1",
               f"--cpus-per-task={cores}", "--unbuffered", "--kill-on-bad-exit=1",
               f"--job-name={msg['key']}"]
        # Always a --mem: a step without one may take all of the allocation's memory, and
        # then the steps run one at a time.
        cmd.append(f"--mem={mem}M" if mem else f"--mem-per-cpu={self._mem_per_cpu()}M")
        cmd += list(o.srun_args)
        agent = agent_command(self.spec.python or "python3",
                              {"procs": 1, "heartbeat": self.heartbeat}, None)
        return cmd + ["/bin/sh", "-c", agent]

    def _mem_per_cpu(self) -> int:
        # No memory asked for anywhere: Slurm's DefMemPerCPU sized the allocation; a step
        # gets its share per CPU (256 MiB unless the cluster says otherwise).
        return int(os.environ.get("PARALLEL_SLURM_MEM_PER_CPU", "256"))

    @staticmethod
    def _write_line(p: gsubprocess.Popen, msg: dict) -> None:
        import json

        try:
            p.stdin.write((json.dumps(msg, separators=(",", ":")) + "\n").encode())
            p.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the step is gone; its end is reported by _run_step

    def _run_step(self, msg: dict) -> None:
        import json

        key = msg["key"]
        p = gsubprocess.Popen(self.step_command(msg), stdin=gsubprocess.PIPE,
                              stdout=gsubprocess.PIPE, stderr=gsubprocess.PIPE,
                              start_new_session=True)
        self._steps[key] = p
        err_chunks: list[bytes] = []
        err_reader = gevent.spawn(lambda: err_chunks.append(p.stderr.read()))
        self._write_line(p, msg)  # the agent reads it after its hello
        exit_ev = None
        try:
            for raw in p.stdout:
                try:
                    ev = json.loads(raw)
                except ValueError:
                    continue
                kind = ev.get("ev")
                if kind in ("start", "rows"):
                    self.on_event(ev)
                elif kind == "exit":
                    exit_ev = ev
                    try:
                        p.stdin.close()  # the agent's only task is over: let it exit
                    except OSError:
                        pass
        finally:
            rc = p.wait()
            err_reader.join()
            self._steps.pop(key, None)
        if self._closed:
            return
        stderr = b"".join(err_chunks).decode("utf-8", "replace").strip()
        self._step_ended(key, exit_ev, rc, stderr)

    def _step_ended(self, key: str, exit_ev: dict | None, rc: int, stderr: str) -> None:
        """Report a task's end, saying why Slurm ended it when it did."""
        why = " / ".join(stderr.splitlines()[-3:])
        ok = exit_ev is not None and exit_ev.get("rc") == 0
        if _OOM.search(stderr) and not ok:
            ev = exit_ev or {"rc": None, "sig": signal.SIGKILL}
            ev = dict(ev, outcome="oom", reason=f"out of memory: Slurm killed the step ({why})")
        elif _PREEMPT.search(stderr) and not ok:
            ev = dict(exit_ev or {"rc": None, "sig": None}, outcome="preempted",
                      reason=f"preempted by Slurm ({why})")
        elif exit_ev is not None:
            ev = exit_ev
        elif _CANCELLED.search(stderr) or self.proc.poll() is not None:
            # The allocation is gone (scancel, time limit): the host is lost and its tasks
            # requeued, not failed.  The sentinel's end says so too; whichever comes first.
            self._down = f"Slurm job {self.job_id} ended: {why or 'step cancelled'}"
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
            gevent.joinall(list(self._step_glets.values()), timeout=15)
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
        if self._salloc is not None:  # still pending: salloc withdraws its job on SIGINT
            try:
                self._salloc.send_signal(signal.SIGINT)
            except OSError:
                pass
        for p in list(self._steps.values()):
            try:
                p.stdin.close()  # the step's agent kills its task on EOF
            except OSError:
                pass
        if getattr(self, "proc", None) is not None:
            super()._shutdown()
        if self.job_id is not None:
            # Our allocation: give it back now rather than at its time limit.
            try:
                gsubprocess.run([_bin("scancel"), self.job_id], timeout=30,
                                stdout=gsubprocess.DEVNULL, stderr=gsubprocess.DEVNULL)
            except (OSError, gsubprocess.SubprocessError) as e:
                log.warning("scancel %s: %s", self.job_id, e)
            self.job_id = None

