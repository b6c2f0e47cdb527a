"""``transport: slurm`` against a real one-machine Slurm (slurmctld + slurmd + munged).

Every run here goes through salloc and srun steps of the cluster the fixture started; the
tasks prove where they ran by writing Slurm's own environment (SLURM_JOB_ID, SLURM_STEP_ID,
SLURM_CPUS_PER_TASK) into their outputs.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from fixtures_slurm import slurm  # noqa: F401 - the fixture
from helpers import count, journal, parallel, start_parallel, wait_for


def slurm_hosts(path, procs=2, name="cluster", **opts) -> str:
    lines = ["workers:", f"  - host: {name}", "    transport: slurm", f"    procs: {procs}"]
    if opts:
        lines.append("    slurm:")
        lines += [f"      {k}: {v}" for k, v in opts.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def finish(proc, timeout: float = 120) -> tuple[str, str]:
    """Wait for a run started by the test; a run still going after ``timeout`` is killed
    (by its PID), so a failing test leaves no head behind."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


def wait_file(path, seconds: int = 120) -> str:
    """Shell text that waits (at most ``seconds``, then fails) until ``path`` exists: a task
    held open by the test instead of by a fixed sleep that a loaded machine can outlast."""
    return f"timeout {seconds} sh -c 'until [ -e {path} ]; do sleep 0.05; done'"


def job_of(run) -> str:
    """The Slurm job id the run's worker was given (from its host events)."""
    db = journal(run)
    rows = db.execute("SELECT detail FROM host_events WHERE detail LIKE 'Slurm job % allocated' "
                      "ORDER BY t").fetchall()
    return re.search(r"job (\d+)", rows[-1][0])[1]


def test_task_list_runs_as_slurm_steps(slurm, tmp_path):  # noqa: F811
    hosts = slurm_hosts(tmp_path / "hosts.yaml", mem_per_task="100M")
    out = tmp_path / "out"
    lines = [f"mkdir -p {out} && echo $SLURM_JOB_ID $SLURM_STEP_ID > {out}/t{i}.tmp && "
             f"mv {out}/t{i}.tmp {out}/t{i}" for i in range(6)]
    (tmp_path / "tasks.txt").write_text("\n".join(lines) + "\n")
    p = parallel("run", "--tasks", "tasks.txt", "--workers", hosts, "--name", "r", cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    ids = [(out / f"t{i}").read_text().split() for i in range(6)]
    assert all(len(x) == 2 for x in ids), ids  # both set: each task ran inside a Slurm step
    assert len({job for job, _ in ids}) == 1  # one allocation
    # Tasks of one shape reuse the worker's steps: one per slot, not one per task.
    assert len({step for _, step in ids}) == 2
    db = journal(tmp_path / "runs" / "r")
    assert db.execute("SELECT COUNT(*) FROM attempts WHERE outcome = 'ok'").fetchone()[0] == 6
    # The run gave its allocation back: the job leaves the queue (after COMPLETING, which
    # Slurm may still show for a moment once the run has exited).
    wait_for(lambda: ids[0][0] not in slurm.run("squeue", "-h", "-j", ids[0][0],
                                                 check=False).stdout, timeout=30)


def test_app_with_streaming_and_cores_through_slurm(slurm, tmp_path):  # noqa: F811
    """An app (busy) through Slurm: outputs, rows streamed back over the step's stdio, and
    the planner's per-task cores given to each step as --cpus-per-task."""
    hosts = slurm_hosts(tmp_path / "hosts.yaml", procs=2)
    p = parallel("run", "apps/busy", "--workers", hosts, "--name", "app", "--", "--count", "4",
                 "--seconds", "0.2", "--mode", "cpu", "--outputs", "--emit-rows", "50",
                 "--task-cores", "2", "--task-memory-mb", "150", cwd=tmp_path, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    run = tmp_path / "runs" / "app"
    assert len(list((run / "out").glob("busy-*.txt"))) == 4
    streamed = sorted((run / "stream").glob("busy-*.csv"))
    assert len(streamed) == 4
    assert all(len(f.read_text().splitlines()) >= 50 for f in streamed)
    # 2-core tasks on a 2-slot worker: one at a time, never two overlapping.
    rows = journal(run).execute("SELECT start, end FROM attempts ORDER BY start").fetchall()
    assert all(b[0] >= a[1] - 0.05 for a, b in zip(rows, rows[1:])), rows


def test_cpus_per_task_reach_the_step(slurm, tmp_path):  # noqa: F811
    hosts = slurm_hosts(tmp_path / "hosts.yaml", procs=1, cpus_per_task=2)
    (tmp_path / "tasks.txt").write_text(f"echo $SLURM_CPUS_PER_TASK > {tmp_path}/cpus\n")
    p = parallel("run", "--tasks", "tasks.txt", "--workers", hosts, "--name", "c", cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (tmp_path / "cpus").read_text().strip() == "2"


def test_over_memory_is_recorded_as_oom_and_retried(slurm, tmp_path):  # noqa: F811
    hosts = slurm_hosts(tmp_path / "hosts.yaml", mem_per_task="100M")
    hog = (f"{sys.executable} -c 'import time; x = bytearray(400 << 20); "
           "x[::4096] = b\"x\" * len(x[::4096]); time.sleep(5)'")
    (tmp_path / "tasks.txt").write_text(f"{hog}\necho fine\n")
    p = parallel("run", "--tasks", "tasks.txt", "--workers", hosts, "--name", "m",
                 "--retries", "1", cwd=tmp_path, timeout=120)
    assert p.returncode == 1, p.stdout + p.stderr
    db = journal(tmp_path / "runs" / "m")
    rows = db.execute("SELECT a.outcome, a.reason FROM attempts a JOIN tasks t "
                      "ON t.id = a.task_id WHERE t.command LIKE '%bytearray%' "
                      "ORDER BY attempt").fetchall()
    assert [r[0] for r in rows] == ["oom", "oom"]  # retried once by policy, both out of memory
    assert "out of memory" in rows[0][1] and "memory limit" in rows[0][1]
    ok = db.execute("SELECT outcome FROM attempts a JOIN tasks t ON t.id = a.task_id "
                    "WHERE t.command = 'echo fine'").fetchall()
    assert [tuple(r) for r in ok] == [("ok",)]  # the host was not lost: the other task ran normally
    assert count(tmp_path / "runs" / "m",
                 "SELECT COUNT(*) FROM host_events WHERE event = 'down'") == 0


def test_scancel_loses_the_host_and_requeues(slurm, tmp_path):  # noqa: F811
    hosts = slurm_hosts(tmp_path / "hosts.yaml", mem_per_task="100M")
    # The tasks last until the test opens the gate, which it does only once the host's loss
    # is journalled: the first attempts are still running when scancel lands, however slow
    # the machine; the retries, on the new allocation, pass it.
    gate = tmp_path / "gate"
    (tmp_path / "tasks.txt").write_text(f"echo 1; {wait_file(gate)}\n"
                                        f"echo 2; {wait_file(gate)}\n")
    proc = start_parallel("run", "--tasks", "tasks.txt", "--workers", hosts, "--name", "s",
                          cwd=tmp_path)
    run = tmp_path / "runs" / "s"
    try:
        wait_for(lambda: count(run, "SELECT COUNT(*) FROM attempts WHERE outcome = 'running'")
                 == 2, timeout=60)
        job = job_of(run)
        slurm.run("scancel", job)
        wait_for(lambda: count(run, "SELECT COUNT(*) FROM host_events WHERE event = 'down'")
                 >= 1, timeout=60)
    finally:
        gate.touch()
        out, err = finish(proc)
    assert proc.returncode == 0, out + err
    db = journal(run)
    outcomes = db.execute("SELECT task_id, attempt, outcome FROM attempts "
                          "ORDER BY task_id, attempt").fetchall()
    assert sorted(o for _, a, o in outcomes if a == 1) == ["lost", "lost"]
    assert sorted(o for _, a, o in outcomes if a == 2) == ["ok", "ok"]
    assert count(run, "SELECT COUNT(*) FROM host_events WHERE event = 'down'") == 1
    assert job_of(run) != job  # a new allocation took over


def test_pending_allocation_shows_waiting_for_slurm(slurm, tmp_path):  # noqa: F811
    # Another user's job holds every CPU of the node: ours must wait, visibly.
    blocker = slurm.run("salloc", "--no-shell", f"--cpus-per-task={slurm.cpus}", "--mem=100")
    blocker_job = re.search(r"allocation (\d+)", blocker.stderr)[1]
    hosts = slurm_hosts(tmp_path / "hosts.yaml", procs=1, mem_per_task="100M")
    (tmp_path / "tasks.txt").write_text("echo ran\n")
    proc = start_parallel("run", "--tasks", "tasks.txt", "--workers", hosts, "--name", "w",
                          cwd=tmp_path)
    run = tmp_path / "runs" / "w"
    try:
        wait_for(lambda: count(run, "SELECT COUNT(*) FROM hosts WHERE state = "
                                    "'waiting for Slurm'") == 1, timeout=30)
        st = parallel("status", str(run), cwd=tmp_path)
        assert "waiting for Slurm" in st.stdout, st.stdout
        assert count(run, "SELECT COUNT(*) FROM attempts") == 0  # nothing started meanwhile
    finally:
        slurm.run("scancel", blocker_job, check=False)
        out, err = finish(proc)
    assert proc.returncode == 0, out + err
    assert count(run, "SELECT COUNT(*) FROM attempts WHERE outcome = 'ok'") == 1


def test_two_runs_share_the_node(slurm, tmp_path):  # noqa: F811
    """Two runs at once, each one slot of 1 CPU and 100 MiB: Slurm runs both side by side."""
    procs = []
    for name, other in (("a", "b"), ("b", "a")):
        d = tmp_path / name
        d.mkdir()
        hosts = slurm_hosts(d / "hosts.yaml", procs=1, mem_per_task="100M")
        # A rendezvous: one task of each run marks that it runs, then waits (60 s at most,
        # then fails, and its run with it) for the other run's mark. Both runs succeed only
        # if both were running at once; had Slurm made one wait for the other, the first
        # would time out alone.
        meet = (f"touch {tmp_path}/met.{name} && {wait_file(f'{tmp_path}/met.{other}', 60)} "
                "&& sleep 3")
        (d / "tasks.txt").write_text(f"{meet}\nsleep 2.1\n")
        procs.append(start_parallel("run", "--tasks", "tasks.txt", "--workers", hosts,
                                    "--name", name, cwd=d))
    for p in procs:
        out, err = finish(p, timeout=180)
        assert p.returncode == 0, out + err
    spans = {}
    for name in ("a", "b"):
        db = journal(tmp_path / name / "runs" / name)
        spans[name] = db.execute("SELECT MIN(start), MAX(end) FROM attempts").fetchone()
    (a0, a1), (b0, b1) = spans["a"], spans["b"]
    # Each run began (its first attempt's start, the agent's spawn time) before the
    # rendezvous, and each run's met task went on 3 s past it: the runs overlap by >= 3 s.
    assert min(a1, b1) - max(a0, b0) > 2.5, spans


def test_slurm_options_are_checked(tmp_path):
    bad = tmp_path / "hosts.yaml"
    bad.write_text("workers:\n  - host: c\n    transport: slurm\n    slurm:\n"
                   "      mem_per_task: lots\n")
    p = parallel("run", "--tasks", "/dev/null", "--workers", str(bad), cwd=tmp_path)
    assert p.returncode == 2
    assert "mem_per_task" in p.stderr and "512M" in p.stderr


@pytest.mark.parametrize("value,mb", [("512M", 512), ("2G", 2048), (300, 300), ("1T", 1 << 20)])
def test_memory_sizes(value, mb):
    from lasair_parallel.head.connect.slurmopts import memory_mb

    assert memory_mb(value) == mb


def test_allocation_command_carries_the_options():
    from lasair_parallel.head.connect.hosts import HostSpec
    from lasair_parallel.head.connect.slurm import SlurmConnection
    from lasair_parallel.head.connect.slurmopts import parse_slurm_options

    opts = parse_slurm_options("x", {"partition": "p", "account": "a", "qos": "q",
                                     "time": "1:00:00", "cpus_per_task": 2,
                                     "mem_per_task": "1G", "srun_args": "--constraint=avx2"})
    conn = SlurmConnection(HostSpec("c", procs=3, transport="slurm", slurm=opts),
                           lambda ev: None, 1.0, 10.0)
    cmd = conn.allocation_command()
    for arg in ("--partition=p", "--account=a", "--qos=q", "--time=1:00:00",
                "--cpus-per-task=6", "--mem=3072M", "--constraint=avx2"):
        assert arg in cmd, cmd
    conn.job_id = "7"
    step = conn.step_command(conn._shape({"key": "t#1", "cores": 2, "memory_mb": 300}))
    assert "--jobid=7" in step and "--cpus-per-task=4" in step and "--mem=300M" in step
    conn._close_wake()


def test_no_squeue_polling():
    """Completion is event-driven: the transport never runs squeue or sacct."""
    from lasair_parallel.head.connect import slurm as mod

    src = open(mod.__file__).read()
    code = "\n".join(line for line in src.splitlines() if not line.lstrip().startswith("#"))
    code = re.sub(r'""".*?"""', "", code, flags=re.S)
    assert "squeue" not in code and "sacct" not in code


def test_preemption_is_recorded_and_retried(slurm, tmp_path):  # noqa: F811
    """A higher-priority partition's job preempts ours: the attempts say 'preempted', and
    the tasks run again (by --retries) once the cluster has room."""
    hosts = slurm_hosts(tmp_path / "hosts.yaml", mem_per_task="100M", partition="main")
    # Each task marks that its step really began (not just that it was dispatched), then
    # lasts until the test opens the gate, which it does only once both first attempts have
    # ended (preempted) and the urgent job is gone: the retries pass it.
    gate = tmp_path / "gate"
    (tmp_path / "tasks.txt").write_text(
        f"touch {tmp_path}/began.$SLURM_STEP_ID; echo 1; {wait_file(gate)}\n"
        f"touch {tmp_path}/began.$SLURM_STEP_ID; echo 2; {wait_file(gate)}\n")
    proc = start_parallel("run", "--tasks", "tasks.txt", "--workers", hosts, "--name", "p",
                          "--retries", "2", cwd=tmp_path)
    run = tmp_path / "runs" / "p"
    urgent = None
    try:
        wait_for(lambda: len(list(tmp_path.glob("began.*"))) == 2, timeout=60)
        got = slurm.run("salloc", "--no-shell", "--partition=urgent",
                        f"--cpus-per-task={slurm.cpus}", "--mem=100")
        urgent = re.search(r"allocation (\d+)", got.stderr)[1]
        wait_for(lambda: count(run, "SELECT COUNT(*) FROM attempts WHERE attempt = 1 "
                                    "AND outcome != 'running'") == 2, timeout=60)
    finally:
        if urgent:
            slurm.run("scancel", urgent, check=False)
        gate.touch()
        out, err = finish(proc)
    assert proc.returncode == 0, out + err
    db = journal(run)
    first = db.execute("SELECT outcome, reason FROM attempts WHERE attempt = 1").fetchall()
    assert [r[0] for r in first] == ["preempted", "preempted"], first
    assert any("PREEMPTION" in (r[1] or "") for r in first)
    assert db.execute("SELECT COUNT(*) FROM tasks WHERE state = 'done'").fetchone()[0] == 2


def test_sigterm_while_pending_withdraws_the_job(slurm, tmp_path):  # noqa: F811
    """Stopping a run whose allocation is still pending ends it and leaves no job queued."""
    blocker = slurm.run("salloc", "--no-shell", f"--cpus-per-task={slurm.cpus}", "--mem=100")
    blocker_job = re.search(r"allocation (\d+)", blocker.stderr)[1]
    hosts = slurm_hosts(tmp_path / "hosts.yaml", procs=1, mem_per_task="100M")
    (tmp_path / "tasks.txt").write_text("echo ran\n")
    proc = start_parallel("run", "--tasks", "tasks.txt", "--workers", hosts, "--name", "t",
                          cwd=tmp_path)
    run = tmp_path / "runs" / "t"
    try:
        wait_for(lambda: count(run, "SELECT COUNT(*) FROM hosts WHERE state = "
                                    "'waiting for Slurm'") == 1, timeout=30)
        proc.terminate()
        out, err = finish(proc, timeout=30)
        assert proc.returncode != 0 and proc.returncode is not None, out + err
        queued = slurm.run("squeue", "-h", "-o", "%i %j").stdout
        assert "lasair-parallel" not in queued, queued  # our pending job was withdrawn
    finally:
        slurm.run("scancel", blocker_job, check=False)
        finish(proc, timeout=5)


def test_oom_reason_quotes_slurmstepds_line_whatever_srun_prints_after_it():
    """The reason names Slurm's own words even when srun's lines come last (seen in CI:
    "Job step aborted", "task 0: Killed", "_step_signal: Terminating" after the
    memory-limit line)."""
    from lasair_parallel.head.connect.slurm import _OOM, _line_of

    stderr = ("slurmstepd: error: Step 4.1 exceeded memory limit (409600 > 102400), being "
              "killed\nsrun: Job step aborted: Waiting up to 4 seconds for job step to finish."
              "\nsrun: error: vm: task 0: Killed\nsrun: launch/slurm: _step_signal: "
              "Terminating StepId=4.1\n")
    assert _line_of(_OOM, stderr, "tail").startswith("slurmstepd: error: Step 4.1 exceeded")
    assert _line_of(_OOM, "srun: error: vm: task 0: Killed\n", "tail") == "tail"
