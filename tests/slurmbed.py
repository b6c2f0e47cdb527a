"""A real one-machine Slurm cluster for tests: munged, slurmctld and slurmd started by PID.

Debian's slurm-wlm and munge (scripts/test.sh installs them).  Everything lives in one temp
directory: the munge key and socket, slurm.conf, state and spool directories, logs.  Clients
find the cluster through ``SLURM_CONF`` (see :meth:`SlurmBed.env`), so nothing under /etc is
touched and the daemons are stopped by the PIDs we started, nothing else.

Memory is enforced without cgroups (this machine's cgroup v1 hierarchy is not ours to use):
``jobacct_gather/linux`` samples each step every second and ``OverMemoryKill`` kills a step
over its ``--mem``, which srun reports as an out-of-memory kill.  ``DefMemPerCPU`` is set, or a
job without ``--mem`` would take the whole node and steps would run one at a time.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SLURMCTLD = shutil.which("slurmctld") or "/usr/sbin/slurmctld"
SLURMD = shutil.which("slurmd") or "/usr/sbin/slurmd"
MUNGED = shutil.which("munged") or "/usr/sbin/munged"


def have_slurm() -> str:
    """'' when Slurm and munge are installed, else why not (a skip reason)."""
    for exe in (SLURMCTLD, SLURMD, MUNGED, shutil.which("srun") or "/usr/bin/srun"):
        if not os.access(exe, os.X_OK):
            return f"{exe} is not installed (scripts/test.sh installs slurm-wlm and munge)"
    if os.geteuid() != 0:
        return "slurmd must run as root to start steps as the test user"
    return ""


def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@dataclass
class SlurmBed:
    root: Path
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    cpus: int = 2
    mem_mb: int = 4096

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    def env(self) -> dict[str, str]:
        """The environment a client (srun, salloc, scancel, parallel) needs."""
        return dict(os.environ, SLURM_CONF=str(self.conf))

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), env=self.env(), capture_output=True, text=True,
                              timeout=60, check=check)

    def stop(self) -> None:
        for name in ("slurmd", "slurmctld", "munged"):
            p = self.procs.pop(name, None)
            if p is None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def start_slurm(root: Path, cpus: int | None = None, mem_mb: int = 4096) -> SlurmBed:
    """Write a one-node slurm.conf under ``root`` and start munged, slurmctld and slurmd."""
    root.mkdir(parents=True, exist_ok=True)
    cpus = cpus or os.cpu_count() or 2
    bed = SlurmBed(root, cpus=cpus, mem_mb=mem_mb)
    for d in ("munge", "state", "spool", "log"):
        (root / d).mkdir(exist_ok=True)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(128))
    key.chmod(0o600)
    sock = root / "munge" / "munge.socket"
    bed.procs["munged"] = subprocess.Popen(
        [MUNGED, "-F", "--force", f"--socket={sock}", f"--key-file={key}",
         f"--pid-file={root / 'munge' / 'munged.pid'}", f"--log-file={root / 'log' / 'munged.log'}",
         f"--seed-file={root / 'munge' / 'seed'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait(lambda: sock.exists(), bed, "munged", 10)
    node = socket.gethostname().split(".")[0]
    ctld_port, d_port = _free_ports(2)
    bed.conf.write_text("\n".join([
        "ClusterName=lasairtest",
        f"SlurmctldHost={node}(127.0.0.1)",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={d_port}",
        "SlurmUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={sock}",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/linux",
        "JobAcctGatherFrequency=task=1",
        "JobAcctGatherParams=OverMemoryKill",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        # Without a default, a job without --mem takes all of the node's memory.
        "DefMemPerCPU=256",
        "SchedulerType=sched/backfill",
        "MpiDefault=none",
        "ReturnToService=2",
        "KillWait=2",
        "MinJobAge=60",
        "InactiveLimit=0",
        "SlurmdTimeout=60",
        "PreemptType=preempt/partition_prio",
        "PreemptMode=REQUEUE",
        f"NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN",
        f"PartitionName=main Nodes={node} Default=YES MaxTime=INFINITE State=UP PriorityTier=1",
        f"PartitionName=urgent Nodes={node} MaxTime=INFINITE State=UP PriorityTier=10",
    ]) + "\n")
    env = bed.env()
    bed.procs["slurmctld"] = subprocess.Popen([SLURMCTLD, "-D", "-i", "-f", str(bed.conf)],
                                              env=env, stdout=subprocess.DEVNULL,
                                              stderr=open(root / "log" / "slurmctld.err", "ab"))
    bed.procs["slurmd"] = subprocess.Popen([SLURMD, "-D", "-f", str(bed.conf)], env=env,
                                           stdout=subprocess.DEVNULL,
                                           stderr=open(root / "log" / "slurmd.err", "ab"))

    def node_idle() -> bool:
        p = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], env=env, capture_output=True,
                           text=True, timeout=10)
        # One line per partition the node is in.
        return p.returncode == 0 and set(p.stdout.split()) <= {"idle", "mix", "alloc"} \
            and bool(p.stdout.split())

    _wait(node_idle, bed, "slurmd", 60)
    return bed


def _wait(ok, bed: SlurmBed, what: str, timeout: float) -> None:
    """Start-up wait for a daemon (a fixture's wait, not a completion poll)."""
    deadline = time.monotonic() + timeout
    while not ok():
        for name, p in bed.procs.items():
            if p.poll() is not None:
                bed.stop()
                logs = "\n".join(f.read_text()[-2000:] for f in (bed.root / "log").glob("*"))
                raise RuntimeError(f"{name} exited with {p.returncode}:\n{logs}")
        if time.monotonic() > deadline:
            bed.stop()
            raise RuntimeError(f"{what} did not come up within {timeout:g} s")
        time.sleep(0.2)
