"""Slurm transport benchmark: per-task overhead and makespan / ideal, Slurm beside SSH.

    python benchmarks/slurm.py [--quick]

Starts a real one-machine Slurm (tests/slurmbed.py: munged, slurmctld, slurmd by PID) and one
loopback sshd worker (tests/sshbed.py), then runs the same task lists through both, 2 slots
each (this machine has 2 cores; Slurm gives each task step 1 CPU and 100 MiB):
  1. N x `true`: per-task overhead = wall time / N x slots (the run's start-up excluded:
     measured from the first attempt's start to the last one's end);
  2. M x `sleep 0.5`: makespan / ideal (ideal = M x 0.5 / 2 slots).
Also: the start-up, first `parallel run` to first task start (the allocation on Slurm, the
handshake on SSH).  Results are recorded in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from slurmbed import have_slurm, start_slurm  # noqa: E402
from sshbed import start_bed  # noqa: E402

SLOTS = 2


def run(work: Path, hosts: Path, name: str, commands: list[str], extra: list[str],
        env: dict, limit: float = 240) -> dict:
    tl = work / f"{name}.txt"
    tl.write_text("\n".join(commands) + "\n")
    cmd = [sys.executable, "-m", "lasair_parallel.head.cli.main", "run", "--tasks", str(tl),
           "--workers", str(hosts), "-q", "--name", name, *extra]
    t0 = time.time()
    p = subprocess.Popen(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, env=env)
    hung = False
    try:
        _, err = p.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        # A run that never ends (an attempt whose exit never came) is reported, not waited
        # for: its numbers are taken over the attempts that did end.
        p.kill()
        _, err = p.communicate()
        hung = True
    wall = time.time() - t0
    if p.returncode != 0 and not hung:
        raise SystemExit(f"{name}: parallel run failed: {err[-2000:]}")
    db = sqlite3.connect(work / "runs" / name / "journal.sqlite")
    first, last, n = db.execute("SELECT MIN(start), MAX(end), COUNT(*) FROM attempts "
                                "WHERE outcome = 'ok'").fetchone()
    return {"wall": wall, "span": last - first, "startup": first - t0, "ok": n, "hung": hung}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller task counts")
    a = ap.parse_args()
    why = have_slurm()
    if why:
        raise SystemExit(why)
    n_true, n_sleep = (100, 40) if a.quick else (400, 120)
    # A SIGTERM (e.g. from `timeout`) still stops the daemons started below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="bench-slurm-") as d:
        work = Path(d)
        slurm = start_slurm(work / "slurm")
        bed = start_bed(work / "ssh", n=1, first=60)
        try:
            env = dict(os.environ, SLURM_CONF=str(slurm.conf))
            s_hosts = work / "slurm.yaml"
            s_hosts.write_text(f"workers:\n  - host: cluster\n    transport: slurm\n"
                               f"    procs: {SLOTS}\n    slurm:\n      mem_per_task: 100M\n")
            h_hosts = bed.write_hosts_yaml(work / "ssh.yaml", procs=SLOTS, shared_fs=True)
            ssh_extra = ["--ssh-config", str(bed.ssh_config)]
            rows = []
            for label, hosts, extra in (("slurm", s_hosts, []), ("ssh", h_hosts, ssh_extra)):
                t = run(work, hosts, f"{label}-true", ["true"] * n_true, extra, env)
                s = run(work, hosts, f"{label}-sleep", ["sleep 0.5"] * n_sleep, extra, env)
                ideal = n_sleep * 0.5 / SLOTS
                hung = [f"{x['ok']}/{n} ok, then hung" for x, n in ((t, n_true), (s, n_sleep))
                        if x["hung"]]
                rows.append((label, t["span"] / t["ok"] * SLOTS * 1000, t["startup"],
                             s["span"] / ideal, s["wall"] / ideal, "; ".join(hung)))
        finally:
            bed.stop()
            slurm.stop()
    print(f"{n_true} x true, {n_sleep} x sleep 0.5, {SLOTS} slots "
          f"(Slurm: 1 CPU + 100 MiB per step)")
    print(f"{'transport':<10} {'per-task ms':>12} {'start-up s':>11} "
          f"{'makespan/ideal':>15} {'wall/ideal':>11}")
    for label, per_task, startup, span, wall, note in rows:
        print(f"{label:<10} {per_task:>12.1f} {startup:>11.2f} {span:>15.3f} {wall:>11.3f}"
              f"  {note}")


if __name__ == "__main__":
    main()
