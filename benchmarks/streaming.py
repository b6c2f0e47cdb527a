"""Streaming benchmark: 10 million rows emitted by tasks, through the head, with bounded memory.

    python benchmarks/streaming.py [--rows 10000000]

Runs `parallel run apps/busy -- --emit-rows N` on 4 loopback sshd hosts whose workers do not
share the head's files, two ways side by side in one run:
  stream    rows go over the agent's channel and are spooled on the head (tasks.emit)
  copy-back the same bytes written to a file on the worker, then copied back over SFTP
and reports rows/s, bytes through the head and the head's peak memory (from the journal).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from sshbed import start_bed  # noqa: E402

TASKS = 4


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000, help="rows in all (default 10M)")
    a = ap.parse_args()
    per_task = a.rows // TASKS
    work = Path(tempfile.mkdtemp(prefix="lasair-stream-"))
    bed = start_bed(work / "bed", n=4, first=2)
    out = []
    try:
        hosts = bed.write_hosts_yaml(work / "hosts.yaml", procs=1, shared_fs=False,
                                     workdir=work / "worker")
        base = [sys.executable, "-m", "lasair_parallel.head.cli.main", "run", "apps/busy", "--workers", str(hosts),
                "--ssh-config", str(bed.ssh_config), "-q"]
        for name, extra in (("stream", ["--emit-rows", str(per_task)]),
                            ("copyback", ["--emit-rows", str(per_task), "--emit-to-file"])):
            t0 = time.perf_counter()
            p = subprocess.run(base + ["--name", name, "--", "--count", str(TASKS), "--seconds",
                                       "0", "--mode", "cpu", *extra],
                               cwd=work, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if p.returncode != 0:
                raise SystemExit(p.stderr)
            db = sqlite3.connect(work / "runs" / name / "journal.sqlite")
            meta = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
            files = list((work / "runs" / name).rglob("busy-*.csv"))
            size = sum(f.stat().st_size for f in files)
            out.append((name, wall, size, meta["head_maxrss_kb"] / 1024))
    finally:
        bed.stop()
        shutil.rmtree(work, ignore_errors=True)
    rows = per_task * TASKS
    print(f"\n{rows:,} rows from {TASKS} tasks on 4 hosts without a shared filesystem")
    print(f"{'mode':<10} {'seconds':>8} {'rows/s':>12} {'MB on head':>11} {'head peak MB':>13}")
    for name, wall, size, peak in out:
        print(f"{name:<10} {wall:>8.1f} {rows / wall:>12,.0f} {size / 1e6:>11.0f} {peak:>13.0f}")
    print(f"head peak memory / bytes streamed: {out[0][3] * 1048576 / out[0][2]:.3f}")


if __name__ == "__main__":
    main()
