"""Dynamic work over the real sshd bed: dependencies, spawned subtasks, measured sizing and
backup copies of stragglers (issue 13)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import textwrap
import time
from pathlib import Path

from helpers import journal, parallel, processes_with, start_parallel, wait_for
from lasair_parallel.tasks import Task
from lasair_parallel.tasks.model import run_path

import lasair_parallel as lp

PY = sys.executable


def write_app(folder: Path, plan_body: str) -> Path:
    """A folder app whose plan() returns the Tasks ``plan_body`` builds (shell commands)."""
    folder.mkdir(parents=True)
    (folder / "task.py").write_text("")
    (folder / "app.py").write_text(textwrap.dedent('''\
        import argparse
        from lasair_parallel.tasks import Task

        def build_parser():
            return argparse.ArgumentParser()

        def plan(args, ctx):
        ''') + textwrap.indent(textwrap.dedent(plan_body), "    "))
    return folder


def bed_run(sshbed, tmp_path: Path, *args: str, shared: bool = True, procs: int = 2):
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=procs, shared_fs=shared,
                                    python=PY,
                                    **({} if shared else {"workdir": tmp_path / "worker-home"}))
    return parallel("run", *args[:1], "--workers", hosts, "--ssh-config", sshbed.ssh_config,
                    "-q", *args[1:], cwd=tmp_path)


# ------------------------------------------------------------------ dependencies
def test_dependency_chain_failure_skips_dependents_and_resume_runs_them(sshbed, tmp_path):
    out = tmp_path / "out"
    app = write_app(tmp_path / "chain", f'''\
        o = {str(out)!r}
        w = lambda n: f"mkdir -p {{o}} && date +%s.%N > {{o}}/{{n}}.txt"
        return [Task(id="a", command=w("a")),
                Task(id="b", command=f"test -e {{o}}/../fixed && " + w("b"), after=("a",)),
                Task(id="c", command=w("c"), after=("b",)),
                Task(id="d", command=w("d"), after=("c", "a")),
                Task(id="e", command=w("e"))]
        ''')
    p = bed_run(sshbed, tmp_path, str(app), "--name", "chain")
    assert p.returncode == 1, p.stderr
    assert "2 skipped (a task they run after failed)" in p.stderr
    run = tmp_path / "runs" / "chain"
    db = journal(run)
    state = dict(db.execute("SELECT id, state FROM tasks").fetchall())
    assert state == {"a": "done", "b": "failed", "c": "skipped", "d": "skipped", "e": "done"}
    reasons = dict(db.execute("SELECT id, skip_reason FROM tasks WHERE state = 'skipped'"))
    assert reasons == {"c": "skipped: b, which it runs after, failed",
                       "d": "skipped: b, which it runs after, failed"}
    assert db.execute("SELECT COUNT(*) FROM attempts WHERE task_id IN ('c', 'd')").fetchone()[0] == 0
    joblog = (run / "joblog.tsv").read_text().splitlines()[1:]
    skipped_lines = [ln.split("\t") for ln in joblog if ln.split("\t")[6] == "-1"]
    assert sorted(f[8][-5:] for f in skipped_lines) == ["c.txt", "d.txt"]
    st = parallel("status", run, cwd=tmp_path)
    assert "2 skipped (a task they run after failed)" in st.stdout, st.stdout
    js = json.loads(parallel("status", run, "--json", cwd=tmp_path).stdout)
    assert js["skipped"] == 2 and js["failed"] == 1 and js["done"] == 2
    # Fix the cause; the same command resumes: b runs again, then c, then d; a and e do not.
    (tmp_path / "fixed").touch()
    p = bed_run(sshbed, tmp_path, str(app), "--name", "chain")
    assert p.returncode == 0, p.stderr
    db = journal(run)
    assert {r[0] for r in db.execute("SELECT state FROM tasks")} == {"done"}
    n = dict(db.execute("SELECT task_id, COUNT(*) FROM attempts GROUP BY task_id"))
    assert n == {"a": 1, "b": 2, "c": 1, "d": 1, "e": 1}
    t = {x: float((out / f"{x}.txt").read_text()) for x in "abcd"}
    assert t["a"] < t["b"] < t["c"] < t["d"]


WAIT_FAILED = '''\
import sqlite3, sys, time
db, task = sys.argv[1:]
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = c.execute("SELECT state FROM tasks WHERE id = ?", (task,)).fetchone()
        finally:
            c.close()
        if row and row[0] == "failed":
            sys.exit(0)
    except sqlite3.Error:
        pass  # not created yet, or busy: look again
    time.sleep(0.05)
sys.exit(f"{task} was not journalled as failed within 60 s")
'''


def test_spawn_after_a_task_already_failed_is_skipped_and_resume_runs_it(sshbed, tmp_path):
    out = tmp_path / "out"
    waiter = tmp_path / "wait_failed.py"
    waiter.write_text(WAIT_FAILED)
    wait_bad = f"{PY} {waiter} {tmp_path / 'runs' / 'late' / 'journal.sqlite'} bad"
    kids = [{"id": "kid", "command": f"touch {out}/kid", "after": ["bad"]},
            {"id": "kid2", "command": f"touch {out}/kid2", "after": ["kid"]},
            {"id": "free", "command": f"touch {out}/free"}]
    lines = " ".join(shlex.quote(json.dumps(k)) for k in kids)
    app = write_app(tmp_path / "late", f'''\
        o = {str(out)!r}
        return [Task(id="bad", command=f"mkdir -p {{o}}; touch {{o}}/bad-ran; "
                                       f"test -e {{o}}/../fixed"),
                # Spawns only once the journal has "bad" failed for good (the head records
                # that before it learns of this task's success, which commits the spawns).
                Task(id="parent", command={wait_bad!r} + " && printf '%s\\n' " + {lines!r}
                     + " >/dev/fd/$PARALLEL_SPAWN_FD")]
        ''')
    p = bed_run(sshbed, tmp_path, str(app), "--name", "late")
    assert p.returncode == 1, p.stderr
    run = tmp_path / "runs" / "late"
    db = journal(run)
    state = dict(db.execute("SELECT id, state FROM tasks").fetchall())
    assert state == {"bad": "failed", "parent": "done", "kid": "skipped", "kid2": "skipped",
                     "free": "done"}, (state, p.stderr)
    reasons = dict(db.execute("SELECT id, skip_reason FROM tasks WHERE state = 'skipped'"))
    assert reasons == {"kid": "skipped: bad, which it runs after, failed",
                       "kid2": "skipped: bad, which it runs after, failed"}
    assert not (out / "kid").exists() and not (out / "kid2").exists()
    js = json.loads(parallel("status", run, "--json", cwd=tmp_path).stdout)
    assert js["skipped"] == 2 and js["failed"] == 1, js
    (tmp_path / "fixed").touch()
    p = bed_run(sshbed, tmp_path, str(app), "--name", "late")
    assert p.returncode == 0, p.stderr
    db = journal(run)
    assert {r[0] for r in db.execute("SELECT state FROM tasks")} == {"done"}
    assert (out / "kid").exists() and (out / "kid2").exists()
    n = dict(db.execute("SELECT task_id, COUNT(*) FROM attempts GROUP BY task_id"))
    assert n == {"bad": 2, "parent": 1, "kid": 1, "kid2": 1, "free": 1}


def test_cycles_and_unknown_ids_are_one_line_exit_2(tmp_path):
    cyc = write_app(tmp_path / "cyc", '''\
        return [Task(id="x", command="true", after=("z",)), Task(id="y", command="true",
                after=("x",)), Task(id="z", command="true", after=("y",))]
        ''')
    p = parallel("run", str(cyc), "--procs", "1", "-q", cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert "cycle" in p.stderr and "x -> " in p.stderr and "Traceback" not in p.stderr
    unk = write_app(tmp_path / "unk", '''\
        return [Task(id="x", command="true", after=("nope",))]
        ''')
    p = parallel("run", str(unk), "--procs", "1", "-q", cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert "'nope', which is not a task of this run" in p.stderr


# ------------------------------------------------------------------ subtasks
def test_failed_parent_spawns_are_discarded_retry_kept_once_and_gathered(sshbed, tmp_path):
    # Two 2.5 s tasks split into pieces of 1 s: each spawns 2 pieces, runs 0.5 s itself, and
    # its first attempt fails after spawning.  Workers do not share the head's files: the
    # pieces' outputs come back, and the gather task is sent them all.
    p = bed_run(sshbed, tmp_path, "busy", "--retries", "1", "--retry-delay", "0", "--",
                "--count", "2", "--seconds", "2.5", "--mode", "sleep", "--outputs",
                "--split-above", "1", "--fail-attempts", "1", "--gather", shared=False)
    assert p.returncode == 0, p.stderr
    run = tmp_path / "runs" / "busy"
    db = journal(run)
    kids = db.execute("SELECT id, parent, parent_attempt, depth FROM tasks "
                      "WHERE parent IS NOT NULL ORDER BY id").fetchall()
    assert [tuple(k) for k in kids] == [
        ("busy-00000-p001", "busy-00000", 2, 1), ("busy-00000-p002", "busy-00000", 2, 1),
        ("busy-00001-p001", "busy-00001", 2, 1), ("busy-00001-p002", "busy-00001", 2, 1)]
    n = dict(db.execute("SELECT task_id, COUNT(*) FROM attempts GROUP BY task_id"))
    assert n == {"busy-00000": 2, "busy-00001": 2, "busy-gather": 1,
                 **{k["id"]: 1 for k in kids}}
    assert (run / "out" / "gather.txt").read_text() == "6\n"
    ends = db.execute("SELECT MAX(end) FROM attempts WHERE task_id != 'busy-gather'").fetchone()
    [g_start] = db.execute("SELECT start FROM attempts WHERE task_id = 'busy-gather'").fetchone()
    assert g_start >= ends[0]
    # A rerun changes nothing: everything, spawned tasks included, is done.
    p = bed_run(sshbed, tmp_path, "busy", "--", "--count", "2", "--seconds", "2.5",
                "--mode", "sleep", "--outputs", "--split-above", "1", "--fail-attempts", "1",
                "--gather", shared=False)
    assert p.returncode == 0 and "7 of 7 task(s) already done" in p.stderr, p.stderr
    assert journal(run).execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 9


SPAWNER = '''\
import os, sys, time
from pathlib import Path
from lasair_parallel.tasks import Task
from lasair_parallel.tasks.emit import spawn
out = Path(sys.argv[1])
attempt = os.environ["PARALLEL_ATTEMPT"]
for k in range(1, 5):
    spawn(Task(id=f"child-{k}", command=f"echo run >> {out}/child-{k}.log"))
    if k == 2:
        (out / f"marker-{attempt}").touch()
        if attempt == "1":
            # Held mid-spawning until the test SIGKILLs the head and the agent kills this:
            # it cannot succeed (and have its spawns committed) before the kill lands.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                time.sleep(0.1)
            sys.exit("attempt 1 was not killed within 120 s")
    time.sleep(0.4)
'''


def test_resume_after_head_sigkill_mid_spawning_runs_each_spawn_once(sshbed, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    script = tmp_path / "spawner.py"
    script.write_text(SPAWNER)
    tl = tmp_path / "parent.txt"
    tl.write_text(f"{PY} {script} {out}\n")
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=2, shared_fs=True)
    args = ["run", "--tasks", tl, "--workers", hosts, "--ssh-config", sshbed.ssh_config, "-q"]
    head = start_parallel(*args, cwd=tmp_path)
    wait_for(lambda: (out / "marker-1").exists())
    os.kill(head.pid, signal.SIGKILL)
    head.wait()
    run = tmp_path / "runs" / "parent"
    # Spawns wait in the head's memory for the parent's success: none reached the journal.
    assert journal(run).execute(
        "SELECT COUNT(*) FROM tasks WHERE parent IS NOT NULL").fetchone()[0] == 0
    wait_for(lambda: not processes_with(str(script)))  # the agent killed the parent
    p = parallel(*args, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    for k in range(1, 5):
        assert (out / f"child-{k}.log").read_text() == "run\n"
    db = journal(run)
    assert tuple(db.execute("SELECT COUNT(*), MIN(parent_attempt), MAX(parent_attempt) FROM "
                            "tasks WHERE parent IS NOT NULL").fetchone()) == (4, 2, 2)
    outcomes = [r[0] for r in db.execute("SELECT outcome FROM attempts a JOIN tasks t ON "
                                         "t.id = a.task_id WHERE t.parent IS NULL ORDER BY attempt")]
    assert outcomes == ["lost", "ok"]


RECURSE = '''\
import os, sys
from lasair_parallel.tasks import Task
from lasair_parallel.tasks.emit import spawn
d = int(os.environ["PARALLEL_SPAWN_DEPTH"])
spawn(Task(id=f"r-{d + 1}", command=f"{sys.executable} {sys.argv[0]}"))
'''


def test_spawning_beyond_the_depth_bound_fails_with_a_clear_reason(tmp_path):
    script = tmp_path / "recurse.py"
    script.write_text(RECURSE)
    tl = tmp_path / "r.txt"
    tl.write_text(f"{PY} {script}\n")
    p = parallel("run", "--tasks", tl, "--procs", "2", "--spawn-depth", "3", "-q", cwd=tmp_path)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert "spawn: depth 4 exceeds the bound of 3 (--spawn-depth)" in p.stderr
    db = journal(tmp_path / "runs" / "r")
    assert dict(db.execute("SELECT id, state FROM tasks WHERE parent IS NOT NULL")) == {
        "r-1": "done", "r-2": "done", "r-3": "failed"}


# ------------------------------------------------------------------ measured sizing
def test_head_measures_the_rate_and_hands_it_to_tasks_and_planners(tmp_path):
    tl = tmp_path / "rate.txt"
    tl.write_text("".join(f'sleep 0.3; echo "{i} rate=$PARALLEL_RATE s=$PARALLEL_TASK_SECONDS"\n'
                          for i in range(5)))
    p = parallel("run", "--tasks", tl, "--procs", "1", "--task-seconds", "7", "-q",
                 cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    run = tmp_path / "runs" / "rate"
    lines = sorted((run / "logs").glob("*.1.out"), key=lambda f: f.stat().st_mtime)
    first, last = lines[0].read_text(), lines[-1].read_text()
    assert "rate= s=7" in first  # nothing measured before the first task ends
    rate = float(last.split("rate=")[1].split()[0])
    assert 0.25 < rate < 0.6 and "s=7" in last  # ~0.3 s per unit of weight 1
    from lasair_parallel.head.core.dynjournal import measured_rate
    assert 0.25 < measured_rate(run) < 0.6  # what a planner's PlanContext.rate gets next time
    # A resumed run starts from that rate: its first task already gets it (no new success yet).
    (tmp_path / "fail-once").write_text("")
    tl.write_text(tl.read_text() + 'echo "r rate=$PARALLEL_RATE"; [ ! -e fail-once ] || '
                  '{ rm fail-once; exit 3; }\n')
    assert parallel("run", "--tasks", tl, "--procs", "1", "-q", cwd=tmp_path).returncode == 1
    p = parallel("run", "--tasks", tl, "--procs", "1", "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    resumed = next(f for f in (run / "logs").glob("*.2.out")).read_text()
    assert 0.25 < float(resumed.split("rate=")[1].split()[0]) < 0.6, resumed
    # busy splits by the runner's --task-seconds as by its own --split-above (here in its
    # Python task, cpu mode: spawn() of the public API; sleep mode spawns from shell).
    p = parallel("run", "busy", "--procs", "4", "--task-seconds", "0.5", "-q", "--",
                 "--count", "2", "--seconds", "1.1", "--mode", "cpu", "--outputs", cwd=tmp_path)
    assert p.returncode == 0 and "6 ok" in p.stderr, p.stderr
    assert sorted(f.name for f in (tmp_path / "runs" / "busy" / "out").iterdir()) == [
        f"busy-0000{i}{p}.txt" for i in range(2) for p in ("-p001", "-p002", "")]


def test_without_a_shared_filesystem_the_next_task_gets_the_rate_at_once(sshbed, tmp_path):
    """With copy-back the slot is free when a task exits, before its outputs are fetched: the
    next task on it starts then, so the rate is learnt from the exit (its run time is known),
    not after the copy-back."""
    tl = tmp_path / "copied.txt"
    tl.write_text("".join(f'sleep 0.3; echo "{i} rate=$PARALLEL_RATE"\n' for i in range(3)))
    hosts = sshbed.write_hosts_yaml(tmp_path / "h.yaml", procs=1, hosts=sshbed.hosts[:1],
                                    shared_fs=False, workdir=tmp_path / "worker", python=PY)
    p = parallel("run", "--tasks", tl, "--workers", hosts, "--ssh-config", sshbed.ssh_config,
                 "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    logs = sorted((tmp_path / "runs" / "copied" / "logs").glob("*.1.out"),
                  key=lambda f: f.read_text())
    rates = [f.read_text().split("rate=")[1].strip() for f in logs]
    assert rates[0] == "" and all(0.25 < float(r) < 0.6 for r in rates[1:]), rates


# ------------------------------------------------------------------ backup tasks
# The slow host is the host of the first task to start (it claims the role with an atomic
# mkdir and names its address in a file; every task waits, a few ms, for that file).  That
# host came up while at least 6 of the 12 tasks were still to start, so it always has its
# two: a fixed slow host may come up after the fast ones have taken all 12 tasks.  Making the
# fast tasks wait for a fixed slow host instead would lengthen their learnt run times by how
# much later it came up, unevenly, and could make a fast task look like a straggler.
SLOW = ('set -- $SSH_CONNECTION; if mkdir {gate}/claim 2>/dev/null; then '
        'echo "$3" > {gate}/claim/addr && mv {gate}/claim/addr {gate}/slow-addr; fi; n=0; '
        'until [ -e {gate}/slow-addr ]; do n=$((n + 1)); [ $n -lt 3000 ] || exit 9; '
        'sleep 0.02; done; if [ "$(cat {gate}/slow-addr)" = "$3" ]; then sleep {long}; '
        'else sleep 0.3; fi; : {token}-{i}; echo "{i},$PARALLEL_ATTEMPT" >/dev/fd/$PARALLEL_EMIT_FD')


def _slow_tasks(gate: Path, token: str, long: float, n: int = 12) -> list[Task]:
    gate.mkdir()
    g = shlex.quote(str(gate))
    return [Task(id=f"t{i:02d}", command=SLOW.format(gate=g, long=long, token=token, i=i),
                 stream=f"rows/t{i:02d}.csv") for i in range(n)]


def _slow_host(sshbed, gate: Path):
    addr = (gate / "slow-addr").read_text().strip()
    return next(h for h in sshbed.hosts if h.addr == addr)


def test_backup_copy_beats_a_slow_host_first_success_kept_once(sshbed, tmp_path):
    gate = tmp_path / "gate"
    token = f"straggle-{os.getpid()}"
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=2, shared_fs=True)
    t0 = time.monotonic()
    result = lp.run(_slow_tasks(gate, token, 60), workers=str(hosts), run_dir=tmp_path / "b",
                    ssh_config=str(sshbed.ssh_config))
    took = time.monotonic() - t0
    assert result.ok and took < 20, (took, [t.last for t in result.failed])
    slow = _slow_host(sshbed, gate)
    db = journal(tmp_path / "b")
    rows = db.execute("SELECT task_id, attempt, host, outcome, backup, reason FROM attempts "
                      "ORDER BY task_id, attempt").fetchall()
    by_task: dict[str, list] = {}
    for r in rows:
        by_task.setdefault(r["task_id"], []).append(r)
    assert all(sum(a["outcome"] == "ok" for a in v) == 1 for v in by_task.values())
    copied = {t: v for t, v in by_task.items() if len(v) == 2}
    assert all(len(v) <= 2 for v in by_task.values()), rows  # one copy per task at most
    # The slow host's tasks (it always has some) got copies...
    assert copied and set(copied) == {t for t, v in by_task.items()
                                      if v[0]["host"] == slow.label}, rows
    for v in copied.values():
        orig, copy = v
        assert orig["host"] == slow.label and orig["outcome"] == "killed" and not orig["backup"]
        assert copy["host"] != slow.label and copy["outcome"] == "ok" and copy["backup"] == 1
        assert "a copy of this task succeeded first (attempt 2)" in orig["reason"]
    # ... and only the winner's rows were committed, once.
    for t, v in by_task.items():
        ok = next(a for a in v if a["outcome"] == "ok")
        assert (tmp_path / "b" / "rows" / f"{t}.csv").read_text() == \
            f"{int(t[1:])},{ok['attempt']}\n"
    assert not processes_with(token)  # the losers were killed, nothing left running


def test_no_backups_turns_copies_off(sshbed, tmp_path):
    gate = tmp_path / "gate"
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=2, shared_fs=True)
    result = lp.run(_slow_tasks(gate, "nobackup", 2.5), workers=str(hosts),
                    run_dir=tmp_path / "nb", ssh_config=str(sshbed.ssh_config), backups=False)
    assert result.ok, [t.last for t in result.failed]
    db = journal(tmp_path / "nb")
    assert tuple(db.execute("SELECT COUNT(*), SUM(backup) FROM attempts").fetchone()) == (12, 0)
    # There were stragglers to copy: the slow host's tasks ran their ~2.5 s (beyond the 1.8 s
    # at which a 0.3 s task is overdue) to the end, uncopied.
    slow = _slow_host(sshbed, gate)
    spans = [r[0] for r in db.execute("SELECT end - start FROM attempts WHERE host = ? AND "
                                      "outcome = 'ok'", (slow.label,))]
    assert spans and min(spans) > 2.0, spans


PAD_MB = 96  # ~2 s of SFTP copy-back on this loopback bed: the window the race needs


def test_backup_race_only_the_winners_outputs_are_copied_back(sshbed, tmp_path):
    """The original straggles until its backup copy runs; then both write their output and
    exit within ~10 ms of each other: both exits reach the head before either's outputs are
    copied back.  The head must end up with the winner's file, not the loser's written over
    it (nor a mix of both)."""
    run = tmp_path / "race"
    sig = tmp_path / "wrote"  # the bed's hosts share this machine's /tmp
    out = run / "out" / "t0.txt"
    q = run_path(out, run)
    write = (f'mkdir -p "$(dirname {q})" && {{ echo "attempt $PARALLEL_ATTEMPT"; '
             f"head -c {PAD_MB}M /dev/zero; }} > {q}.tmp && mv {q}.tmp {q}")
    straggler = (f'if [ "$PARALLEL_ATTEMPT" = 1 ]; then until [ -e {sig}2 ]; do sleep 0.01; '
                 f"done; {write} && touch {sig}1; else {write} && touch {sig}2 && "
                 f"until [ -e {sig}1 ]; do sleep 0.01; done; fi")
    # Three short tasks measure the rate (~0.3 s per unit of weight): t0 is overdue at ~1.8 s.
    tasks = [Task(id="t0", command=straggler, outputs=(str(out),))] + [
        Task(id=f"s{i}", command="sleep 0.3") for i in range(3)]
    # A workdir of its own per host: on one machine, a shared one would be one worker file.
    yamls = [sshbed.write_hosts_yaml(tmp_path / f"h{i}.yaml", procs=1, hosts=[h],
                                     shared_fs=False, workdir=tmp_path / f"worker-{i}",
                                     python=PY).read_text() for i, h in enumerate(sshbed.hosts[:2])]
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text(yamls[0] + yamls[1].removeprefix("workers:\n"))
    result = lp.run(tasks, workers=str(hosts), run_dir=run, ssh_config=str(sshbed.ssh_config))
    assert result.ok, [t.last for t in result.failed]
    db = journal(run)
    rows = [tuple(r) for r in db.execute(
        "SELECT attempt, outcome, backup, reason FROM attempts WHERE task_id = 't0' "
        "ORDER BY attempt")]
    assert sorted(r[1] for r in rows) == ["killed", "ok"] and rows[1][2] == 1, rows
    won = next(r[0] for r in rows if r[1] == "ok")
    with open(out, "rb") as f:
        assert f.read(10) == f"attempt {won}\n".encode(), rows  # the winner's file...
    assert out.stat().st_size == 10 + (PAD_MB << 20)  # ... whole
    assert not [p.name for p in out.parent.iterdir() if p.name != out.name]  # no part left
