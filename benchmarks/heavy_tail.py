"""Heavy-tailed workload: makespan / ideal with splitting and backups on and off, and GNU parallel.

    python benchmarks/heavy_tail.py [--count 400] [--shortest 0.25] [--alpha 1.2] [--seed 3]

Starts the test bed's sshd hosts (127.0.0.2-5) with 8 slots each, and runs, in one run, side
by side, the same list of `busy` sleep tasks: durations drawn from a Pareto distribution
(alpha 1.2: a few tasks hold much of the work, OpenQuake's "slow tasks"), weights that misjudge
them (log-normal factor, sigma 1: the planner's estimate, not the truth):
  1. splitting and backups on  (`--task-seconds S`: a task planned longer than S spawns pieces
     of at most S; backups on idle slots at the end, the default);
  2. splitting on, backups off (`--no-backups`);
  3. splitting off, backups on;
  4. both off;
  5. GNU parallel on the same list of `sleep d` commands, in plan order (its best case: ssh
     ControlMaster connections already up);
  6-7. the same with one host 4x slower (`busy --slow-host`), splitting on, backups on / off:
     what backup copies are for (ideal there: work / (3 x 8 + 8 / 4) slot-equivalents).
ideal = sum of durations / 32 slots.  S = ideal / 10 (head.core.sizing.AUTO_PIECES: the last
task then overruns the ideal by at most ~1/10 of it).  Ours is timed from the first task's
start to the last task's end (the journal); GNU parallel's by its wall clock.
Prints a table; results are recorded in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from dispatch import SLOTS, gnu_parallel  # noqa: E402
from lasair_parallel.apps.busy.app import heavy_tail  # noqa: E402
from sshbed import SSHBed, start_bed  # noqa: E402

SLOW_FACTOR = 4.0  # the slow host's sleeps take this many times longer


def run_ours(bed: SSHBed, work: Path, name: str, busy: list[str], runner: list[str]) -> dict:
    hosts = bed.write_hosts_yaml(work / "hosts.yaml", procs=SLOTS, shared_fs=True,
                                 python=sys.executable)  # lasair-parallel is installed there
    cmd = [sys.executable, "-m", "lasair_parallel.head.cli.main", "run", "busy", "--workers",
           str(hosts), "--ssh-config", str(bed.ssh_config), "-q", "--name", name, *runner,
           "--", *busy]
    p = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"parallel run failed: {p.stderr}")
    db = sqlite3.connect(work / "runs" / name / "journal.sqlite")
    t0, t1 = db.execute("SELECT MIN(start), MAX(end) FROM attempts").fetchone()
    tasks = db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
    spawned = db.execute("SELECT COUNT(*) FROM tasks WHERE parent IS NOT NULL").fetchone()[0]
    backups = db.execute("SELECT COUNT(*) FROM attempts WHERE backup = 1").fetchone()[0]
    won = db.execute("SELECT COUNT(*) FROM attempts WHERE backup = 1 AND outcome = 'ok'"
                     ).fetchone()[0]
    return {"span": t1 - t0, "tasks": tasks, "spawned": spawned, "backups": backups, "won": won}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=400)
    ap.add_argument("--shortest", type=float, default=0.25, help="Pareto x_m, seconds")
    ap.add_argument("--alpha", type=float, default=1.2)
    ap.add_argument("--noise", type=float, default=1.0, help="weight misjudgement sigma")
    ap.add_argument("--seed", type=int, default=3)
    a = ap.parse_args()
    durations = [heavy_tail(a.shortest, a.alpha, a.seed, i) for i in range(a.count)]
    slots = 4 * SLOTS
    ideal = sum(durations) / slots
    piece = round(ideal / 10, 2)
    busy = ["--count", str(a.count), "--seconds", str(a.shortest), "--pareto", str(a.alpha),
            "--weight-noise", str(a.noise), "--seed", str(a.seed), "--mode", "sleep"]
    work = Path(tempfile.mkdtemp(prefix="lasair-heavy-"))
    bed = start_bed(work / "bed", n=4, first=2)
    rows = []
    try:
        configs = [("splitting + backups", ["--task-seconds", str(piece)]),
                   ("splitting, no backups", ["--task-seconds", str(piece), "--no-backups"]),
                   ("backups, no splitting", []),
                   ("neither", ["--no-backups"])]
        for i, (label, runner) in enumerate(configs):
            r = run_ours(bed, work, f"c{i}", busy, runner)
            rows.append((label, r["span"] / ideal,
                         f"{r['tasks']} tasks ({r['spawned']} spawned), {r['backups']} "
                         f"backups ({r['won']} won)"))
        t0 = time.perf_counter()
        gnu = gnu_parallel(bed, work, [f"sleep {d}" for d in durations])
        rows.append(("GNU parallel", gnu / ideal, f"wall {time.perf_counter() - t0:.1f} s"))
        slow = ["--slow-host", bed.hosts[0].addr, "--slow-factor", str(SLOW_FACTOR)]
        capacity = sum(durations) / (3 * SLOTS + SLOTS / SLOW_FACTOR)
        for i, (label, runner) in enumerate(configs[:2]):
            r = run_ours(bed, work, f"s{i}", busy + slow, runner)
            rows.append((f"slow host: {label}", r["span"] / capacity,
                         f"{r['backups']} backups ({r['won']} won); vs the equal-host ideal "
                         f"{r['span'] / ideal:.3f}"))
    finally:
        bed.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{a.count} busy sleep tasks, Pareto alpha {a.alpha} x {a.shortest} s, weights "
          f"misjudged (sigma {a.noise}), seed {a.seed}: {sum(durations):.0f} s of work, "
          f"longest {max(durations):.1f} s; 4 x {SLOTS} slots, ideal {ideal:.2f} s, "
          f"pieces of {piece} s")
    print(f"{'configuration':<24} {'makespan/ideal':>15}  notes")
    for label, ratio, notes in rows:
        print(f"{label:<24} {ratio:>15.3f}  {notes}")


if __name__ == "__main__":
    main()
