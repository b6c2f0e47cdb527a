"""Fencing and leftovers: a frozen agent's tasks are killed before they run elsewhere, a new
agent kills what a frozen previous one left, and a task's ``setsid`` daemon dies with it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from helpers import (
    agent_pid,
    agent_pidfile,
    cmdline,
    count,
    frozen_host,
    journal,
    parallel,
    processes_with,
    start_parallel,
    wait_for,
)


def counting_tasks(tmp_path: Path, n: int, seconds: str) -> Path:
    """Tasks that append their number to ``ran`` (a count of completed runs); a first
    attempt sleeps ``seconds`` first (long: it must be killed, never outlasted), a rerun not."""
    tl = tmp_path / "work.txt"
    tl.write_text("".join(f'[ "$PARALLEL_ATTEMPT" = 1 ] && sleep {seconds}; '
                          f"echo {i} >> {tmp_path}/ran\n" for i in range(n)))
    return tl


def runs_of(tmp_path: Path) -> list[int]:
    return sorted(int(x) for x in (tmp_path / "ran").read_text().split())


def test_frozen_agents_tasks_are_fenced_before_they_run_elsewhere(fresh_bed, tmp_path):
    """SIGSTOP one agent: before, its tasks kept running and finished too (72 runs for 64)."""
    token = f"30.{time.time_ns() % 10**6:06d}"
    hosts = fresh_bed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=2,
                                       hosts=fresh_bed.hosts[:2], shared_fs=True)
    tl = counting_tasks(tmp_path, 4, token)
    proc = start_parallel("run", "--tasks", tl, "--workers", hosts, "--ssh-config",
                          fresh_bed.ssh_config, "--heartbeat-timeout", "3", "-q", cwd=tmp_path)
    run = tmp_path / "runs" / "work"
    wait_for(lambda: count(run, "SELECT COUNT(*) FROM attempts WHERE outcome='running'") == 4)
    victim = fresh_bed.hosts[0].label
    pid = agent_pid(run, victim)
    os.kill(pid, signal.SIGSTOP)  # its guardian stays awake and sees the agent go silent
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass  # fenced: the guardian killed it
    assert proc.returncode == 0, err
    # The first attempts on the frozen host are dead (unfenced, they would finish later).
    wait_for(lambda: processes_with(f"sleep {token}") == [], timeout=5)
    assert runs_of(tmp_path) == [0, 1, 2, 3]  # each task completed exactly once
    lost = journal(run).execute("SELECT COUNT(*) FROM attempts WHERE outcome = 'lost'")
    assert lost.fetchone()[0] == 2


def test_reconnecting_head_kills_leftovers_of_a_frozen_agent(fresh_bed, tmp_path):
    """Agent and guardian both frozen (a paused VM's processes): the next agent on the host
    kills them, so their tasks die before running there again."""
    token = f"30.{time.time_ns() % 10**6:06d}"
    hosts = fresh_bed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=2,
                                       hosts=fresh_bed.hosts[:1], shared_fs=True)
    tl = counting_tasks(tmp_path, 2, token)
    proc = start_parallel("run", "--tasks", tl, "--workers", hosts, "--ssh-config",
                          fresh_bed.ssh_config, "--heartbeat-timeout", "2", "-q", cwd=tmp_path)
    run = tmp_path / "runs" / "work"
    wait_for(lambda: count(run, "SELECT COUNT(*) FROM attempts WHERE outcome='running'") == 2)
    pid = agent_pid(run, fresh_bed.hosts[0].label)
    with frozen_host(pid, f"sleep {token}") as frozen:
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    wait_for(lambda: processes_with(f"sleep {token}") == [], timeout=5)
    assert runs_of(tmp_path) == [0, 1]
    assert all(not Path(f"/proc/{p}").exists() or
               Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
               for p in frozen)


def daemon_task(tmp_path: Path, token: str) -> Path:
    tl = tmp_path / "daemon.txt"
    # setsid leaves the task's process group and session: killing the group misses it.
    tl.write_text(f"setsid sh -c 'sleep {token}' & sleep 0.3; echo started\n")
    return tl


def test_setsid_daemon_of_a_task_dies_with_it_locally(tmp_path):
    token = f"30.{time.time_ns() % 10**6:06d}"
    p = parallel("run", "--tasks", daemon_task(tmp_path, token), "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    wait_for(lambda: processes_with(f"sleep {token}") == [], timeout=5)
    # A clean exit removes the agent's pid file (kept only for a next agent to act on).
    assert not agent_pidfile(tmp_path / "runs" / "daemon", "localhost").exists()


def test_setsid_daemon_of_a_task_dies_with_it_over_ssh(sshbed, tmp_path):
    token = f"31.{time.time_ns() % 10**6:06d}"
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=1, hosts=sshbed.hosts[:1])
    p = parallel("run", "--tasks", daemon_task(tmp_path, token), "--workers", hosts,
                 "--ssh-config", sshbed.ssh_config, "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    wait_for(lambda: processes_with(f"sleep {token}") == [], timeout=5)


def agent_running(tmp_path: Path, cfg: dict, cmd: str):
    """An agent started directly (no head) with ``cfg``, past its hello, running ``cmd`` as
    task ``t#1`` (its output in ``tmp_path``)."""
    import json
    import subprocess
    import sys

    from lasair_parallel.head.connect.transport import agent_source

    agent = subprocess.Popen([sys.executable, "-c", agent_source(), json.dumps(cfg)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=tmp_path)
    try:
        assert json.loads(agent.stdout.readline())["ev"] == "hello"
        run = {"op": "run", "key": "t#1", "cmd": cmd, "env": {}, "timeout": None,
               "out": str(tmp_path / "t.out"), "err": str(tmp_path / "t.err"), "outputs": []}
        agent.stdin.write(json.dumps(run).encode() + b"\n")
        agent.stdin.flush()
    except BaseException:
        agent.kill()
        raise
    return agent


def test_an_agent_paused_briefly_and_often_is_not_fenced(tmp_path):
    """A loaded worker schedules the agent late: paused 0.7 s at a time, over and over, with
    a 1.5 s fence (--heartbeat-timeout 2).  Before, the agent told its guardian it lived once
    per heartbeat (1 s), so a pause that began late in a beat left it silent for up to 1.7 s:
    fenced, its task killed.  Now it tells it four times per fence."""
    import json

    agent = agent_running(tmp_path, {"procs": 1, "heartbeat": 1.0, "fence": 1.5}, "sleep 5")
    try:
        for _ in range(5):  # 4.5 s: a pause of 0.7 s starting at every phase of a 1 s beat
            time.sleep(0.2)
            os.kill(agent.pid, signal.SIGSTOP)
            time.sleep(0.7)
            os.kill(agent.pid, signal.SIGCONT)
        while (ev := json.loads(agent.stdout.readline()))["ev"] != "exit":
            pass
        assert (ev["key"], ev["rc"], ev["sig"]) == ("t#1", 0, None), ev
    finally:
        os.kill(agent.pid, signal.SIGCONT)
        agent.stdin.close()
        agent.wait(30)


def test_a_killed_agents_guardian_kills_what_the_agent_never_told_it_of(tmp_path):
    """The guardian hears of a task's group just after the task has started, and a task's
    ``setsid`` daemon leaves that group: an agent killed at the wrong moment left processes
    the guardian did not know (the suite caught a task that outlived its paused agent and
    would have run twice).  Every process a task starts carries the agent's token in its
    environment; after an unclean end the guardian kills whatever carries it."""
    token = f"32.{time.time_ns() % 10**6:06d}"
    agent = agent_running(tmp_path, {"procs": 1}, f"setsid sleep {token} & sleep 60")
    try:
        def daemons() -> list[int]:  # the task's shell has the token in its command too
            return [p for p in processes_with(f"sleep {token}") if cmdline(p).startswith("sleep")]

        wait_for(lambda: len(daemons()) == 1, timeout=10)
        assert os.getsid(daemons()[0]) == daemons()[0]  # out of the task's group and session
        os.kill(agent.pid, signal.SIGKILL)  # no clean end: the guardian is on its own
        agent.wait(10)
        wait_for(lambda: processes_with(f"sleep {token}") == [], timeout=5)
    finally:
        if agent.poll() is None:
            agent.kill()
        for pid in processes_with(f"sleep {token}"):
            os.kill(pid, signal.SIGKILL)
