"""What a new user meets first (issue 16): file modes, how failures are named and read back,
what `status` says about a run's state, one default for workers, help texts, progress lines,
plot labels, and the quick start's parallelism.  Real runs on this machine (transport: local).
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import struct
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import click
from helpers import PARALLEL, count, parallel, start_parallel, wait_for

ENV = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="80")


def one_line_error(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr, p.stderr
    return p.stderr.strip()


def png_size(path: Path) -> tuple[int, int]:
    return struct.unpack(">II", path.read_bytes()[16:24])


def test_outputs_honour_the_umask(tmp_path):
    """Declared outputs (written by atomic_write through mkstemp) get 0666 less the umask,
    like the logs beside them, instead of mkstemp's private 0600."""
    p = subprocess.run(PARALLEL + ["run", "apps/busy", "--procs", "2", "-q", "--", "--count",
                                   "3", "--seconds", "0", "--outputs"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60, env=ENV,
                       preexec_fn=lambda: os.umask(0o027))
    assert p.returncode == 0, p.stderr
    outs = sorted((tmp_path / "runs" / "busy" / "out").iterdir())
    assert len(outs) == 3
    assert {stat.S_IMODE(f.stat().st_mode) for f in outs} == {0o640}
    logs = list((tmp_path / "runs" / "busy" / "logs").iterdir())
    assert logs and {stat.S_IMODE(f.stat().st_mode) for f in logs} == {0o640}


def test_failures_are_named_by_command_and_logs_prints_them(tmp_path):
    tl = tmp_path / "mylist.txt"
    tl.write_text("# a comment line, then the tasks\ntrue\n\n"
                  "echo to-stdout; echo to-stderr >&2; exit 3\necho two\necho three\n")
    p = parallel("run", "--tasks", tl, "--procs", "2", "-q", cwd=tmp_path)
    assert p.returncode == 1
    assert "3 ok, 1 failed of 4 task(s)" in p.stderr
    assert "(echo to-stdout; echo to-stderr >&2; exit 3) on localhost: exit status 3" in p.stderr
    assert "parallel logs" in p.stderr
    text = parallel("status", "runs/mylist", cwd=tmp_path, check=True).stdout
    assert "(echo to-stdout; echo to-stderr >&2; exit 3) attempt 1 on localhost" in text

    # By its line number in the task list (line 4: a comment and a blank line come before).
    by_line = parallel("logs", "runs/mylist", "4", cwd=tmp_path, check=True)
    assert by_line.stdout == "--- stdout ---\nto-stdout\n--- stderr ---\nto-stderr\n"
    assert "attempt 1 of 1 on localhost: failed: exit status 3" in by_line.stderr
    # By a piece of its command, by its id and by the start of its id.
    assert parallel("logs", "runs/mylist", "exit 3", "--stderr", cwd=tmp_path,
                    check=True).stdout == "to-stderr\n"
    tid = json.loads(parallel("status", "runs/mylist", "--json", cwd=tmp_path,
                              check=True).stdout)["failures"][0]["task"]
    for ref in (tid, tid[:6]):
        assert parallel("logs", "runs/mylist", ref, "--stdout", cwd=tmp_path,
                        check=True).stdout == "to-stdout\n"
    assert parallel("logs", "runs/mylist", "5", "--stdout", cwd=tmp_path,
                    check=True).stdout == "two\n"  # line 5 is `echo two`
    # Ambiguous, unknown, and a missing attempt: one line each, exit 2.
    assert "matches 3 tasks" in one_line_error(parallel("logs", "runs/mylist", "echo",
                                                        cwd=tmp_path))
    assert "no task" in one_line_error(parallel("logs", "runs/mylist", "nothing-like-it",
                                                cwd=tmp_path))
    assert "not 2" in one_line_error(parallel("logs", "runs/mylist", tid, "--attempt", "2",
                                              cwd=tmp_path))
    # A log file gone (a run directory copied without logs/): the journal's tail instead.
    for f in (tmp_path / "runs" / "mylist" / "logs").glob(f"{tid}.*"):
        f.unlink()
    gone = parallel("logs", "runs/mylist", tid, "--stderr", cwd=tmp_path, check=True)
    assert gone.stdout == "to-stderr\n" and "from the journal" in gone.stderr
    # The report names tasks by command too.
    parallel("report", "runs/mylist", cwd=tmp_path, check=True)
    md = (tmp_path / "runs" / "mylist" / "report" / "summary.md").read_text()
    assert "`echo two`" in md or "`echo three`" in md


def test_status_says_running_then_interrupted_then_stopped(tmp_path):
    tl = tmp_path / "slow.txt"
    tl.write_text("true\n" + "sleep 30\n" * 2 + "true\n" * 3)
    run = tmp_path / "runs" / "slow"
    proc = start_parallel("run", "--tasks", tl, "--procs", "2", "-q", cwd=tmp_path)
    try:
        # (2 running alone can also be `true` and a `sleep 30`, before `true` is journalled)
        _wait_or_show(proc, lambda: count(
            run, "SELECT COUNT(*) FROM tasks WHERE state = 'running'") == 2 and count(
            run, "SELECT COUNT(*) FROM tasks WHERE state = 'done'") == 1)
        live = parallel("status", "runs/slow", cwd=tmp_path, check=True).stdout
        assert f"running (head pid {proc.pid} on this machine)" in live
        assert "1 ok, 0 failed, 2 running, 3 pending of 6" in live
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
        assert proc.returncode == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    text = parallel("status", "runs/slow", cwd=tmp_path, check=True).stdout
    assert "interrupted (exit 130); rerun the same command to resume" in text
    assert "running" not in text.split("\n")[1]  # nothing runs once the head is gone
    s = json.loads(parallel("status", "runs/slow", "--json", cwd=tmp_path, check=True).stdout)
    assert (s["state"], s["live"], s["running"]) == ("interrupted", False, 0)
    for key in ("started", "finished", "first_start", "last_end", "now"):
        assert abs(datetime.fromisoformat(s[f"{key}_iso"]).timestamp() - s[key]) < 1e-3, key
    assert abs(s["elapsed"] - (s["finished"] - s["started"])) < 1e-6
    assert s["started_iso"].endswith("+00:00")

    # A head killed outright records no end: "stopped", not "finished" nor "running".
    proc = start_parallel("run", "--tasks", tl, "--procs", "2", "-q", cwd=tmp_path)
    try:
        _wait_or_show(proc, lambda: count(
            run, "SELECT COUNT(*) FROM tasks WHERE state = 'running'") == 2 and count(
            run, "SELECT COUNT(*) FROM meta WHERE key = 'finished' AND value = 'null'") == 1)
        proc.kill()
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = parallel("status", "runs/slow", cwd=tmp_path, check=True).stdout
    assert f"stopped without finishing (head pid {proc.pid} is not running here)" in text
    assert "2 cut off when it stopped" in text
    # A head on another machine (its run lock names the host): no pid check from here.
    (run / "head.lock").write_text(f"pid {proc.pid} on elsewhere.example.org\n")
    text = parallel("status", "runs/slow", cwd=tmp_path, check=True).stdout
    assert f"its head (pid {proc.pid}) runs on elsewhere.example.org, not here" in text


def _wait_or_show(proc: subprocess.Popen, predicate) -> None:
    """wait_for, and on a timeout the head's own output (why it never got there)."""
    try:
        wait_for(predicate)
    except AssertionError:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"head exit {proc.returncode}: {err[-2000:]}") from None


def test_every_command_uses_the_same_default_workers(tmp_path):
    """No hosts.yaml: run, hosts check, deploy and bench all use this machine; with one, all
    use it."""
    check = parallel("hosts", "check", cwd=tmp_path, check=True).stdout
    assert "localhost" in check and "1 of 1 worker(s) ready" in check
    assert "to 1 of 1 worker(s)" in parallel("deploy", cwd=tmp_path, check=True).stdout
    b = parallel("bench", "apps/busy", "--sweep-procs", "1,2", "--out", "b", "--", "--count",
                 "2", "--seconds", "0", "--mode", "sleep", cwd=tmp_path, timeout=120)
    assert b.returncode == 0, b.stderr
    assert "| procs \\ workers | 1 |\n" in (tmp_path / "b" / "bench.md").read_text()
    w, h = png_size(tmp_path / "b" / "bench.png")
    assert w >= 900 and h >= 600  # big enough to read (it was 570 x 360)
    (tmp_path / "hosts.yaml").write_text(
        "workers:\n  - host: localhost\n    transport: local\n    name: thisbox\n    procs: 1\n")
    assert "thisbox" in parallel("hosts", "check", cwd=tmp_path, check=True).stdout
    assert "thisbox" in parallel("deploy", cwd=tmp_path, check=True).stdout


def _commands(group: click.Group, path: tuple = ()):
    for name, cmd in group.commands.items():
        yield (*path, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))


def test_help_documents_every_option_and_lists_commands_whole(tmp_path):
    from lasair_parallel.head.cli.main import main

    undocumented = [f"parallel {' '.join(path)} {opt.opts[0]}"
                    for path, cmd in _commands(main) for opt in cmd.params
                    if isinstance(opt, click.Option) and not opt.help]
    assert undocumented == []
    for group in ([], ["hosts"]):
        out = subprocess.run(PARALLEL + [*group, "--help"], capture_output=True, text=True,
                             env=ENV, cwd=tmp_path, check=True).stdout
        listing = out.split("Commands:")[1]
        assert "..." not in listing and len(listing.strip().splitlines()) >= 3, out
    # The scarp_search app: every option explained, and no time limit of its own.
    from lasair_parallel.apps.scarp_search.app import build_parser

    actions = [a for a in build_parser()._actions if a.dest != "help"]
    assert [a.dest for a in actions if not a.help] == []
    assert "timeout" not in {a.dest for a in actions}
    assert "diffusion age" in build_parser().format_help()


def test_progress_lines_count_ok_and_failed(tmp_path):
    tl = tmp_path / "p.txt"
    tl.write_text("true\nexit 1\ntrue\n")
    p = parallel("run", "--tasks", tl, "--procs", "2", cwd=tmp_path)  # not a tty: plain lines
    assert p.returncode == 1
    assert re.search(r"^2 ok, 1 failed of 3, 0 running; \d+s elapsed", p.stderr, re.M), p.stderr


def test_quick_start_plans_at_least_two_tasks_per_slot(tmp_path):
    from lasair_parallel.head.api import Worker, prepare

    for slots in (1, 2, 4):
        planned = prepare("rebuild_objects", [Worker(host="localhost", transport="local",
                                                     procs=slots)],
                          run_dir=tmp_path / f"r{slots}")
        assert len(planned.tasks) >= 2 * slots, (slots, len(planned.tasks))


def test_report_timeline_labels_long_bars(tmp_path):
    from lasair_parallel.head.views.report import analyse, bar_label

    tl = tmp_path / "l.txt"
    tl.write_text("sleep 0.5\ntrue\n")
    parallel("run", "--tasks", tl, "--procs", "1", "-q", cwd=tmp_path, check=True)
    r = analyse(tmp_path / "runs" / "l")
    bars = {b["command"]: b for b in r["bars"]}
    assert bar_label(bars["sleep 0.5"], 40) == "sleep 0.5"  # a hashed id: named by command
    assert bar_label(bars["sleep 0.5"], 3) == ""  # too short a bar stays bare
    assert bar_label({"task": "busy-00003", "attempt": 2, "command": "x"}, 40) == \
        "busy-00003 #2"
    assert bar_label({"task": "busy-00003", "attempt": 1}, 7) == "busy-0\u2026"
    parallel("report", "runs/l", cwd=tmp_path, check=True)
    assert png_size(tmp_path / "runs" / "l" / "report" / "timeline.png")[0] >= 1000


def test_readme_scripts_install_only_when_setup_cfg_changes(tmp_path):
    """scripts/venv.sh (sourced by both README scripts) runs pip on the first call and after
    setup.cfg changes, not on every call.  The venv's python is a stand-in that records its
    arguments, so no package is fetched."""
    root = Path(__file__).resolve().parents[1]
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    calls = tmp_path / "calls"
    (venv / "bin" / "python").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (venv / "bin" / "python").chmod(0o755)

    def source() -> str:
        p = subprocess.run(["bash", "-c", '. scripts/venv.sh "[test]"'], cwd=root,
                           capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, LASAIR_VENV=str(venv)))
        assert p.returncode == 0, p.stderr
        return p.stdout

    assert "installing" in source() and "pip install" in calls.read_text()
    calls.unlink()
    assert "already installed" in source()
    # a rerun: no pip, only the byte-compile of the project's modules (up to date: cheap)
    assert calls.read_text().splitlines() == [
        "-m compileall -q head tasks apps csv_to_database lasair_parallel"]
    stamp = next(venv.glob(".installed*"))
    old = (root / "setup.cfg").stat().st_mtime - 60
    os.utime(stamp, (old, old))  # setup.cfg changed since the last install
    assert "installing" in source() and "pip install" in calls.read_text()
    for script in ("quickstart.sh", "test.sh"):
        assert ". scripts/venv.sh" in (root / "scripts" / script).read_text()


def test_test_sh_keeps_ruff_quiet_when_clean():
    """test.sh runs ruff with --quiet: a clean check prints nothing between its output lines."""
    root = Path(__file__).resolve().parents[1]
    line = next(x for x in (root / "scripts" / "test.sh").read_text().splitlines()
                if "ruff check" in x)
    assert "--quiet" in line
    quiet = subprocess.run([sys.executable, "-m", "ruff", "check", "--quiet",
                            str(root / "tasks" / "outputs.py")], capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""
