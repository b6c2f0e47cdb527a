"""Lasair's table reproduced: `parallel bench apps/rebuild_objects` over the loopback sshd bed.

    python benchmarks/rebuild_sweep.py [--objects 128000] [--workers 1,2,4] [--procs 1,2,4,8]

128,000 real-shaped objects (benchmarks/_tables.py: the bundled real sample replicated, rows in
arrival order, index on (objectId, jd) only) in one SQLite
file that every worker reads in place (the 4 sshd hosts are 127.0.0.2-5 on this machine);
workers 1,2,4 x procs 1,2,4,8, each cell a whole `parallel run` (connect, plan, tasks, shards
copied back).  Prints the bench's table next to Lasair's stated one (anchors.md section 1).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))  # _tables when run from elsewhere

from _tables import live_sqlite  # noqa: E402
from sshbed import start_bed  # noqa: E402

# anchors.md section 1: Lasair's stated seconds for 128,000 objects, procs x workers
LASAIR = {1: (7828, 3615, 2735), 2: (3939, 1853, 1089), 4: (2067, 927, 473),
          8: (1066, 486, 358)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=128_000)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--procs", default="1,2,4,8")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-rebuild-sweep-"))
    db = work / "candidates.db"
    live_sqlite(db, a.objects)
    bed = start_bed(work / "bed", n=4)
    try:
        # The 4 loopback hosts share this machine's filesystem (the database file, the run
        # directory): say so, as a cluster with a shared filesystem would.  Without it the
        # runner sends inputs and copies shards back per host into one remote work dir that
        # all four hosts share here, and copy-backs collided (2 of 33 / 65 tasks failed).
        hosts = bed.write_hosts_yaml(work / "hosts.yaml", procs=1, shared_fs=True)
        cmd = [sys.executable, "-m", "lasair_parallel.head.cli.main", "bench",
               str(ROOT / "apps" / "rebuild_objects"), "--workers", str(hosts),
               "--ssh-config", str(bed.ssh_config), "--sweep-workers", a.workers,
               "--sweep-procs", a.procs, "--out", str(work / "bench"), "--",
               "--source", f"sqlite:///{db}"]
        print("$ " + " ".join(cmd), flush=True)
        t = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=work)
        print(f"sweep: {time.perf_counter() - t:.0f} s")
        for md in sorted((work / "bench").glob("*.md")):
            print(md.read_text())
        print("Lasair (stated, seconds): procs \\ workers | 1 | 2 | 4")
        for p, row in LASAIR.items():
            print(f"| {p} | " + " | ".join(str(v) for v in row) + " |")
    finally:
        bed.stop()
        shutil.rmtree(work, ignore_errors=True)
    with open("/proc/loadavg") as f:
        print("load average", " ".join(f.read().split()[:3]))


if __name__ == "__main__":
    main()
