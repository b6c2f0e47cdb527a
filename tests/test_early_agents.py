"""Local agents started while the app plans (head/core/early.py): up before the first task,
taken over by the run once it holds the run's lock, harmless when nothing runs."""

from __future__ import annotations

import os
import tempfile
import textwrap
import time
from pathlib import Path

from helpers import agent_pidfile, journal, parallel, start_parallel, wait_for

APP = '''
    """Records the head's agent processes while it plans; its tasks wait for a file."""
    import argparse
    import os
    from pathlib import Path


    def agents_of(pid):
        """Children of ``pid`` that run the agent (its code travels compressed in argv)."""
        found = []
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                for child in f.read().split():
                    with open(f"/proc/{child}/cmdline", "rb") as c:
                        if b"zlib" in c.read():
                            found.append(int(child))
        return found


    def build_parser():
        p = argparse.ArgumentParser(prog="planwatch")
        p.add_argument("--record", required=True)
        p.add_argument("--wait-for", default="")
        p.add_argument("--fail", action="store_true")
        return p


    def plan(args, ctx):
        Path(args.record).write_text(" ".join(map(str, agents_of(os.getpid()))))
        if args.fail:
            raise ValueError("this plan fails on purpose")
        return [ctx.task("t", ["--wait-for", args.wait_for])]
'''

TASK = '''
    import argparse, os, time
    p = argparse.ArgumentParser()
    p.add_argument("--wait-for", default="")
    a = p.parse_args()
    while a.wait_for and not os.path.exists(a.wait_for):
        time.sleep(0.05)
    print("done")
'''


def make_app(root: Path) -> Path:
    app = root / "planwatch"
    app.mkdir()
    (app / "app.py").write_text(textwrap.dedent(APP))
    (app / "task.py").write_text(textwrap.dedent(TASK))
    return app


def exited(pid: int) -> bool:
    """Whether process ``pid`` has exited (or is a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_the_local_agent_comes_up_while_the_app_plans(tmp_path):
    app = make_app(tmp_path)
    record = tmp_path / "agents.txt"
    p = parallel("run", app, "--procs", "1", "-q", "--", "--record", record, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    [seen] = map(int, record.read_text().split())  # one agent already running in plan()
    db = journal(tmp_path / "runs" / "planwatch")
    ups = [r["detail"] for r in db.execute("SELECT detail FROM host_events WHERE event = 'up'")]
    assert ups == [f"agent pid {seen}"]  # the run took that agent over; no second one
    [(outcome, n)] = db.execute("SELECT outcome, COUNT(*) FROM attempts").fetchall()
    assert (outcome, n) == ("ok", 1)


def test_a_second_head_on_a_running_run_leaves_its_agent_alone(tmp_path):
    """The second head's agent starts before it finds the run locked: it must not kill the
    running head's agent (it would, were it given the run's slot at its start)."""
    app = make_app(tmp_path)
    release = tmp_path / "release"
    args = ("run", app, "--procs", "1", "-q", "--", "--record", tmp_path / "first.txt",
            "--wait-for", release)
    first = start_parallel(*args, cwd=tmp_path)
    run = tmp_path / "runs" / "planwatch"
    try:
        deadline = time.monotonic() + 60
        while not (run / "logs").is_dir() or not list((run / "logs").glob("*")):
            assert time.monotonic() < deadline and first.poll() is None, first.communicate()
            time.sleep(0.05)
        [agent] = map(int, (tmp_path / "first.txt").read_text().split())
        # the run named itself to its agent once it held the lock: the pid file a next agent
        # of this run reads (to kill this one, frozen say) names it and its guardian
        pidfile = agent_pidfile(run, "localhost")
        assert pidfile.read_text().split()[0] == str(agent)
        second = parallel("run", app, "--procs", "1", "-q", "--", "--record",
                          tmp_path / "second.txt", "--wait-for", release, cwd=tmp_path)
        assert second.returncode == 2 and "another head is running" in second.stderr
        [other] = map(int, (tmp_path / "second.txt").read_text().split())
        assert other != agent
        wait_for(lambda: exited(other), timeout=10)  # the second head's agent exited
        time.sleep(0.5)  # were the first agent killed, its guardian would kill the task now
        assert not exited(agent)
        assert pidfile.read_text().split()[0] == str(agent)  # not the second head's agent
        release.touch()
        _, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 0, err
    db = journal(run)
    assert [tuple(r) for r in db.execute("SELECT outcome FROM attempts")] == [("ok",)]
    assert [r[0] for r in db.execute("SELECT event FROM host_events")].count("up") == 1
    assert not pidfile.exists()  # a clean exit leaves nothing for a next agent to act on


def test_an_agent_started_for_a_plan_that_fails_exits_having_written_nothing(tmp_path):
    app = make_app(tmp_path)
    record = tmp_path / "agents.txt"
    before = set(os.listdir(tempfile.gettempdir()))
    p = parallel("run", app, "--procs", "1", "-q", "--", "--record", record, "--fail",
                 cwd=tmp_path)
    assert p.returncode == 2 and "this plan fails on purpose" in p.stderr
    assert "Traceback" not in p.stderr
    [agent] = map(int, record.read_text().split())
    wait_for(lambda: exited(agent), timeout=10)
    pidfiles = {n for n in set(os.listdir(tempfile.gettempdir())) - before
                if n.startswith("lasair-agent-")}
    assert not pidfiles  # no slot was ever given: nothing for a next agent to read
    assert not (tmp_path / "runs" / "planwatch" / "journal.sqlite").exists()
