"""Things going wrong mid-run: a worker's sshd and agent killed, a frozen host, the head
killed with SIGKILL and rerun, Ctrl-C.  Each leaves exactly one whole output per task."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from helpers import (
    agent_pid,
    children,
    cmdline,
    count,
    frozen_host,
    gated,
    journal,
    parallel,
    processes_with,
    start_parallel,
    wait_for,
)

N_TASKS = 24
SLOTS = 2  # per host


def task_file(tmp_path: Path, token: str, seconds: float = 0.6, n: int = N_TASKS,
              gate: Path | None = None, ungated: int = 0) -> Path:
    """Tasks that sleep, then write ``out/<i>.txt`` atomically; ``token`` marks their processes.

    With ``gate``, every task but the first ``ungated`` first waits for that file to exist:
    what runs stays running until the test creates it, however slow the machine."""
    out = tmp_path / "out"
    cmds = [f"sleep {seconds}{token}; mkdir -p {out}; "
            f"echo task-{i} > {out}/.{i}.$$ && mv {out}/.{i}.$$ {out}/{i}.txt" for i in range(n)]
    if gate is not None:
        cmds = [gated(c, gate) if i >= ungated else c for i, c in enumerate(cmds)]
    p = tmp_path / "work.txt"
    p.write_text("\n".join(cmds) + "\n")
    return p


def assert_outputs_exact(tmp_path: Path, n: int = N_TASKS) -> None:
    out = tmp_path / "out"
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(f"{i}.txt" for i in range(n)), files  # no temp files left over
    for i in range(n):
        assert (out / f"{i}.txt").read_text() == f"task-{i}\n"


def ok_count(run_dir: Path) -> int:
    return count(run_dir, "SELECT COUNT(*) FROM attempts WHERE outcome = 'ok'")


def running_count(run_dir: Path, host: str | None = None) -> int:
    if host is None:
        return count(run_dir, "SELECT COUNT(*) FROM attempts WHERE outcome = 'running'")
    return count(run_dir, "SELECT COUNT(*) FROM attempts WHERE host = ? AND outcome = 'running'",
                 host)


def task_pids(agent: int, token: str) -> list[int]:
    """The agent's task processes: its children running a command marked with ``token`` (a
    child just forked, not yet exec'd, still has the agent's command line)."""
    return [c for c in children(agent) if token in cmdline(c)]


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie no longer runs anything)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def busy_agent(run: Path, host, token: str) -> tuple[int, list[int]]:
    """Wait until every slot of ``host`` runs a task (gated tasks stay so); return its agent's
    pid and the tasks' pids."""
    wait_for(lambda: running_count(run, host.label) == SLOTS)
    pid = agent_pid(run, host.label)  # up: it had attempts sent to it
    wait_for(lambda: len(task_pids(pid, token)) == SLOTS)  # each started (running = sent)
    return pid, task_pids(pid, token)


@dataclass
class Work:
    """A run of ``task_file`` tasks started in the background over a fresh bed."""

    proc: subprocess.Popen
    run: Path
    token: str
    tasks: Path
    hosts: Path
    bed: object
    gate: Path

    def rerun(self) -> subprocess.CompletedProcess:
        return parallel("run", "--tasks", self.tasks, "--workers", self.hosts, "--ssh-config",
                        self.bed.ssh_config, cwd=self.run.parents[1])


def start_work(bed, tmp_path: Path, *extra: str, seconds: float = 0.6, n: int = N_TASKS,
               ungated: int = 0) -> Work:
    """Every task but the first ``ungated`` waits for ``Work.gate``: the test creates it."""
    token = f"{time.time_ns() % 10**6:06d}"
    gate = tmp_path / "gate"
    hosts = bed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=SLOTS, shared_fs=True)
    tl = task_file(tmp_path, token, seconds=seconds, n=n, gate=gate, ungated=ungated)
    proc = start_parallel("run", "--tasks", tl, "--workers", hosts, "--ssh-config",
                          bed.ssh_config, *extra, cwd=tmp_path)
    return Work(proc, tmp_path / "runs" / "work", token, tl, hosts, bed, gate)


def test_worker_sshd_and_agent_killed_mid_run(fresh_bed, tmp_path):
    w = start_work(fresh_bed, tmp_path, "--heartbeat-timeout", "3")
    proc, run, token = w.proc, w.run, w.token
    victim = fresh_bed.hosts[0]
    pid, tasks = busy_agent(run, victim, token)  # both slots busy, held at the gate
    victim.kill()  # the listener and its session processes
    os.kill(pid, signal.SIGKILL)  # and the agent itself: its guardian must reap its tasks
    wait_for(lambda: not any(alive(t) for t in tasks), timeout=10)  # the guardian's KILL
    w.gate.touch()  # only now may any task go on: the victim's never wrote a thing
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert_outputs_exact(tmp_path)
    db = journal(run)
    lost = db.execute("SELECT COUNT(*) FROM attempts WHERE outcome = 'lost'").fetchone()[0]
    assert lost >= 1  # the victim's running tasks were recorded as lost and run again
    assert db.execute("SELECT COUNT(*) FROM attempts WHERE host = ? AND outcome = 'lost'",
                      (victim.label,)).fetchone()[0] == SLOTS
    assert db.execute("SELECT COUNT(*) FROM tasks WHERE state = 'done'").fetchone()[0] == N_TASKS
    events = [r[0] for r in db.execute(
        "SELECT event FROM host_events WHERE host = ?", (victim.label,))]
    assert "down" in events
    assert processes_with(f"sleep 0.6{token}") == []


def test_frozen_host_is_detected_by_heartbeat(fresh_bed, tmp_path):
    w = start_work(fresh_bed, tmp_path, "--heartbeat-timeout", "2")
    proc, run, token = w.proc, w.run, w.token
    victim = fresh_bed.hosts[1]
    pid, tasks = busy_agent(run, victim, token)  # both slots busy, held at the gate
    # The whole host frozen: the agent and its guardian (a frozen agent alone is fenced by
    # its guardian, see test_faults_fencing.py).  Connection alive, peer frozen: only a
    # heartbeat notices.  The tasks run on (they are not frozen) and finish unreported.
    with frozen_host(pid, token) as frozen:
        assert frozen[0] == pid and len(frozen) >= 2  # the agent and its guardian
        assert not set(tasks) & set(frozen)
        w.gate.touch()
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert_outputs_exact(tmp_path)
    reasons = [r[0] for r in journal(run).execute(
        "SELECT detail FROM host_events WHERE host = ? AND event = 'down'", (victim.label,))]
    assert any("heartbeat" in r for r in reasons), reasons


def test_head_sigkill_then_rerun_resumes_exactly(fresh_bed, tmp_path):
    # Tasks are sent in file order: the first 6 finish, the next ones hold every slot.
    w = start_work(fresh_bed, tmp_path, ungated=6)
    proc, run, token = w.proc, w.run, w.token
    slots = SLOTS * len(fresh_bed.hosts)
    wait_for(lambda: ok_count(run) == 6 and running_count(run) == slots)
    wait_for(lambda: len(processes_with(f"sleep 0.6{token}")) == slots)  # started, at the gate
    proc.kill()
    proc.wait()
    db = sqlite3.connect(run / "journal.sqlite")
    done_before = {r[0] for r in db.execute("SELECT id FROM tasks WHERE state = 'done'")}
    db.close()
    assert len(done_before) == 6  # no more could finish: the rest waited for the gate
    # The agents saw their channel close and killed their tasks.
    wait_for(lambda: processes_with(f"sleep 0.6{token}") == [], timeout=10)
    w.gate.touch()
    p = w.rerun()
    assert p.returncode == 0, p.stderr
    assert f"{len(done_before)} of {N_TASKS} task(s) already done" in p.stderr
    assert_outputs_exact(tmp_path)
    db = journal(run)
    # Tasks finished before the kill never ran again; the others ran to completion.
    for tid in done_before:
        n = db.execute("SELECT COUNT(*) FROM attempts WHERE task_id = ?", (tid,)).fetchone()[0]
        assert n == 1
    assert db.execute("SELECT COUNT(*) FROM tasks WHERE state = 'done'").fetchone()[0] == N_TASKS
    lost = db.execute("SELECT reason FROM attempts WHERE outcome = 'lost'").fetchall()
    assert all("head stopped" in r[0] for r in lost)
    assert len(lost) == slots  # those running at the kill


def test_ctrl_c_stops_every_task_and_rerun_finishes(fresh_bed, tmp_path):
    w = start_work(fresh_bed, tmp_path, seconds=2.0, n=12)
    proc, run, token = w.proc, w.run, w.token
    slots = SLOTS * len(fresh_bed.hosts)
    wait_for(lambda: running_count(run) == slots)  # every slot busy, held at the gate
    wait_for(lambda: len(processes_with(f"sleep 2.0{token}")) == slots)  # each started
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "SIGINT" in err and "Traceback" not in err
    assert processes_with(f"sleep 2.0{token}") == []
    killed = journal(run).execute(
        "SELECT COUNT(*) FROM attempts WHERE outcome = 'killed'").fetchone()[0]
    assert killed == slots  # every slot's task, each running at the SIGINT
    w.gate.touch()
    p = w.rerun()
    assert p.returncode == 0, p.stderr
    assert_outputs_exact(tmp_path, n=12)
