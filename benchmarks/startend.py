"""Start and end of a run: `parallel run` vs GNU parallel over 4 loopback sshd hosts x 8 slots.

    python benchmarks/startend.py [--runs 5] [--quick] [--python PATH]

Starts the test bed's sshd hosts (127.0.0.2-5) and runs the real CLI on two task lists,
32 x `true` and 320 x `sleep 0.5`, ``--runs`` times each.  From each run's journal
(runs/<name>/journal.sqlite) it takes when the scheduler began (meta ``started``, written just
before the scheduler is built), the first attempt's start and the last attempt's end, and
prints the medians of:
  * process start -> scheduler start (interpreter, imports, reading the inputs, the journal);
    the imports alone are measured in one extra run under ``python -X importtime``;
  * scheduler start -> first task start (``ssh -G``, connecting, starting the agents);
  * last task end -> process exit (closing, the final journal writes and summary);
  * the whole wall time against the ideal (sum of task seconds / 32 slots).
GNU parallel runs the same lists side by side (ssh ControlMaster masters already up, its best
case, as in benchmarks/dispatch.py): its process start -> first task start and last task end ->
exit from its joblog, and the ratio of wall times.  ``--python`` sets the workers' interpreter
(default: the bed's, the head's own interpreter, as dispatch.py uses).
"""

from __future__ import annotations

import argparse
import os
import re
import select
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from dispatch import SLOTS, gnu_parallel  # noqa: E402
from sshbed import SSHBed, start_bed  # noqa: E402

HOSTS = 4
CLI = [sys.executable, "-m", "lasair_parallel.head.cli.main"]


def run_once(bed: SSHBed, work: Path, name: str, tasks: Path, python: str | None = None,
             env: dict[str, str] | None = None) -> dict:
    """One `parallel run` of ``tasks``; the phases in seconds (and stderr)."""
    extra = {"python": python} if python else {}
    hosts = bed.write_hosts_yaml(work / "hosts.yaml", procs=SLOTS, shared_fs=True, **extra)
    shutil.rmtree(work / "runs" / name, ignore_errors=True)
    cmd = CLI + ["run", "--tasks", str(tasks), "--workers", str(hosts), "--procs", str(SLOTS),
                 "--ssh-config", str(bed.ssh_config), "-q", "--name", name]
    t0 = time.time()
    p = subprocess.run(cmd, cwd=work, capture_output=True, text=True, env=env)
    t_exit = time.time()
    if p.returncode != 0:
        raise SystemExit(f"parallel run failed ({p.returncode}): {p.stderr[-2000:]}")
    db = sqlite3.connect(work / "runs" / name / "journal.sqlite")
    try:
        (started,) = db.execute("SELECT value FROM meta WHERE key = 'started'").fetchone()
        first, last, n = db.execute(
            "SELECT MIN(start), MAX(end), COUNT(*) FROM attempts WHERE outcome = 'ok'").fetchone()
    finally:
        db.close()
    started = float(started)
    return {"to_sched": started - t0, "to_first": first - started, "after_last": t_exit - last,
            "wall": t_exit - t0, "n": n, "stderr": p.stderr}


def gnu_once(bed: SSHBed, work: Path, commands: list[str]) -> dict:
    """One GNU parallel run; its phases from the joblog, as for ours."""
    t: dict = {}
    wall = gnu_parallel(bed, work, commands, times=t)
    starts, ends = [], []
    for line in (work / "gnu.joblog").read_text().splitlines()[1:]:
        f = line.split("\t")
        starts.append(float(f[2]))
        ends.append(float(f[2]) + float(f[3]))
    return {"to_first": min(starts) - t["t0"], "after_last": t["t1"] - max(ends), "wall": wall}


def imports_alone(runs: int) -> tuple[float, float]:
    """Median seconds of a bare interpreter start (``python -c pass``) and of importing, in
    a fresh interpreter, the modules a run imports (the CLI, the runner, the SSH client)."""
    mods = ("lasair_parallel.head.cli.main, lasair_parallel.head.core.runner, "
            "lasair_parallel.head.connect.sshclient")
    code = f"import time; t = time.perf_counter(); import {mods}; print(time.perf_counter() - t)"
    bare, imp = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - t0)
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                             text=True, cwd=tempfile.gettempdir()).stdout
        imp.append(float(out))
    return statistics.median(bare), statistics.median(imp)


def session_floor(bed: SSHBed, python: str | None, runs: int) -> float:
    """Median seconds until the first of 4 fresh ssh sessions started together (OpenSSH's
    client, one per host) has run the workers' python: what any agent start pays here before
    its first line (the login shell's rc files, the interpreter's start)."""
    py = python or sys.executable  # the bed's default (tests/sshbed.py write_hosts_yaml)
    firsts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        procs = [subprocess.Popen(["ssh", "-F", str(bed.ssh_config), f"node{i}",
                                   f"exec {py} -c 'print(1)'"], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL) for i in range(len(bed.hosts))]
        ready, _, _ = select.select([p.stdout for p in procs], [], [], 30)
        firsts.append(time.perf_counter() - t0)
        for p in procs:
            p.wait(timeout=30)
            p.stdout.close()
    return statistics.median(firsts)


def import_seconds(stderr: str) -> float:
    """Total import time from ``-X importtime`` output: the sum over top-level imports
    (an import made later, inside a function, is top-level too)."""
    total = 0
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", line)
        if m and not m.group(2).startswith(" "):
            total += int(m.group(1))
    return total / 1e6


def median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="runs of each list (medians)")
    ap.add_argument("--quick", action="store_true", help="3 runs, the `true` list only")
    ap.add_argument("--python", help="the workers' python (default: the head's interpreter)")
    a = ap.parse_args()
    runs = 3 if a.quick else a.runs
    lists = [("32 x true", ["true"] * 32, 0.0)]
    if not a.quick:
        lists.append(("320 x sleep 0.5", ["sleep 0.5"] * 320, 320 * 0.5))
    work = Path(tempfile.mkdtemp(prefix="lasair-startend-"))
    results = []
    try:
        # Twice: the workers' shells as this machine has them (root's ~/.bashrc), then as on a
        # worker account with no rc file of its own (tests/sshbed.py ``login_rc``).
        for login_rc in (True, False):
            results.append((login_rc, measure(work / f"rc{int(login_rc)}", a.python, runs,
                                              lists, login_rc)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"\nmedians of {runs} runs, {HOSTS} hosts x {SLOTS} slots, load {' '.join(load)}, "
          f"workers' python {a.python or sys.executable}")
    for login_rc, (bare, imp_alone, imports, floor, out) in results:
        shells = ("runs ~/.bashrc (this machine: pyenv init)" if login_rc
                  else "skips ~/.bashrc (as an account without one)")
        print(f"\n== workers' bash {shells}")
        print(f"interpreter start (python -c pass) {bare:.3f} s; imports alone {imp_alone:.3f} s; "
              f"all imports of one run (python -X importtime) {imports:.3f} s")
        print(f"floor: first of 4 fresh `ssh nodeN python -c` sessions done after {floor:.3f} s")
        print(f"{'list':<16} {'':>8} {'start->sched':>12} {'sched->1st':>10} {'start->1st':>10} "
              f"{'last->exit':>10} {'wall':>6} {'ideal':>6}")
        for label, rows, gnu, ideal in out:
            wall = median(rows, "wall")
            print(f"{label:<16} {'ours':>8} {median(rows, 'to_sched'):>12.3f} "
                  f"{median(rows, 'to_first'):>10.3f} "
                  f"{statistics.median(r['to_sched'] + r['to_first'] for r in rows):>10.3f} "
                  f"{median(rows, 'after_last'):>10.3f} {wall:>6.2f} {ideal:>6.2f}")
            gwall = median(gnu, "wall")
            print(f"{'':<16} {'GNU':>8} {'':>12} {'':>10} {median(gnu, 'to_first'):>10.3f} "
                  f"{median(gnu, 'after_last'):>10.3f} {gwall:>6.2f}   GNU/ours wall "
                  f"{gwall / wall:.2f}x")


def measure(work: Path, python: str | None, runs: int, lists: list, login_rc: bool):
    """Start a bed, time its runs; (bare start, imports alone, imports of a run, ssh floor,
    [(label, our runs, GNU's runs, ideal)])."""
    bed = start_bed(work / "bed", n=HOSTS, first=2, login_rc=login_rc)
    out = []
    try:
        # One run of the short list with the import profiler on: its import time only.
        tl = work / "warm.txt"
        tl.write_text("true\n" * 32)
        run_once(bed, work, "warm", tl, python)  # page cache, sshd's first logins
        prof = run_once(bed, work, "imports", tl, python,
                        env=dict(os.environ, PYTHONPROFILEIMPORTTIME="1"))
        imports = import_seconds(prof["stderr"])
        bare, imp_alone = imports_alone(runs)
        floor = session_floor(bed, python, runs)
        for label, commands, work_s in lists:
            tl = work / f"{label.split()[-1].replace('.', '')}.txt"
            tl.write_text("\n".join(commands) + "\n")
            rows = []
            gnu = []
            for i in range(runs):
                rows.append(run_once(bed, work, f"r{i}", tl, python))
                assert rows[-1]["n"] == len(commands), rows[-1]
                gnu.append(gnu_once(bed, work, commands))
            ideal = work_s / (HOSTS * SLOTS)
            out.append((label, rows, gnu, ideal))
    finally:
        bed.stop()
    return bare, imp_alone, imports, floor, out


if __name__ == "__main__":
    main()
