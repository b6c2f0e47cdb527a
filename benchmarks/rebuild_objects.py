"""Benchmark rebuild_objects on one process: SQLite source -> features -> CSV shard.

    python benchmarks/rebuild_objects.py [--objects 128000] [--reference 2000]

128,000 real-shaped objects (Lasair's benchmark size: the bundled real sample replicated under new
ids, rows inserted in jd order across all objects, index on (objectId, jd) only, i.e. not
clustered by object; ``--table synthetic`` for the older synthetic table sorted by object) are
written to a SQLite file (setup, not timed), then one task reads them by key range, computes the features and writes one shard: the
worker's command (``python -m lasair_parallel.apps.rebuild_objects.task``) as a subprocess, so its peak memory
(ru_maxrss) is the task's own, not the set-up's.  The feature step is also timed alone, on the
block as the task reads it (sorted by the SQL index) and on the generator's block (rows out of
jd order: the sort included), and the plain per-object reference loop runs on the first
--reference objects with its rate extrapolated.  The same for the bundled real sample.
Lasair: 61 ms/object.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # _tables when run from elsewhere

from _tables import live_sqlite  # noqa: E402
from lasair_parallel.apps.rebuild_objects.features import compute_features  # noqa: E402
from lasair_parallel.apps.rebuild_objects.sources import open_source  # noqa: E402
from lasair_parallel.apps.rebuild_objects.sources.dbwrite import write_sqlite  # noqa: E402
from reference_features import reference_features, rows_of  # noqa: E402

LASAIR_S_PER_OBJECT = 7828 / 128_000  # anchors.md section 1


def run_task(spec: str, first: str, last: str, out: Path) -> dict:
    """The worker's command in a subprocess; its own report line parsed."""
    cmd = [sys.executable, "-m", "lasair_parallel.apps.rebuild_objects.task", "--source", spec, "--first", first,
           "--last", last, "--output", str(out)]
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    wall = time.perf_counter() - t
    m = re.search(r"\((\d+) objects, (\d+) detections\) -> .* in ([\d.]+) s \(read ([\d.]+), "
                  r"features(?:\+csv)? ([\d.]+), write ([\d.]+)\); peak (\d+) MB", res.stdout)
    if not m:
        raise RuntimeError(f"unexpected task output: {res.stdout!r} {res.stderr!r}")
    n, d, total, read, feat, write, peak = m.groups()
    return {"objects": int(n), "detections": int(d), "total_s": float(total),
            "read_s": float(read), "features_s": float(feat), "write_s": float(write),
            "peak_mb": int(peak), "wall_s": wall}


def bench(label: str, spec: str, det, n_ref: int, out: Path) -> None:
    src = open_source(spec)
    ids, counts = src.list_objects()
    read = src.read_range(str(ids[0]), str(ids[-1]))
    src.close()
    r = run_task(spec, str(ids[0]), str(ids[-1]), out / f"{label}.csv")
    n = r["objects"]
    feats = []
    for block in (read, det):
        best = float("inf")
        for _ in range(2):
            t = time.perf_counter()
            compute_features(block)
            best = min(best, time.perf_counter() - t)
        feats.append(best)
    sub_rows = rows_of(det)
    some = list(sub_rows.items())[:n_ref]
    t = time.perf_counter()
    for _, rows in some:
        reference_features(rows)
    ref = (time.perf_counter() - t) / len(some)
    print(f"{label}: {n} objects, {r['detections']} detections")
    print(f"  end to end (task subprocess; list excluded, read+features+write): "
          f"{r['total_s']:.2f} s = {n / r['total_s']:,.0f} objects/s (read {r['read_s']:.2f}, "
          f"features {r['features_s']:.2f}, write {r['write_s']:.2f}); with interpreter "
          f"start-up {r['wall_s']:.2f} s; task peak memory {r['peak_mb']} MB")
    print(f"  feature step alone (best of 2): {feats[0]:.3f} s = {n / feats[0]:,.0f} objects/s "
          f"on the block as read; {feats[1]:.3f} s = {n / feats[1]:,.0f} objects/s on the "
          f"generator's block (sort included)")
    print(f"  reference loop: {len(some)} objects, {ref * 1e3:.2f} ms/object = {1 / ref:,.0f} "
          f"objects/s (extrapolated to {n}: {ref * n:.1f} s)")
    print(f"  Lasair (stated): {LASAIR_S_PER_OBJECT * 1e3:.0f} ms/object -> "
          f"{LASAIR_S_PER_OBJECT * n:,.0f} s; speed-up end to end x"
          f"{LASAIR_S_PER_OBJECT * n / r['total_s']:,.0f}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--objects", type=int, default=128_000)
    p.add_argument("--reference", type=int, default=2000)
    p.add_argument("--table", choices=("live", "synthetic"), default="live")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        if a.table == "live":
            det = live_sqlite(tmp / "live.db", a.objects)
        else:
            syn = open_source(f"synthetic:{a.objects}")
            ids, _ = syn.list_objects()
            det = syn.read_range(ids[0], ids[-1])
            write_sqlite(tmp / "live.db", det)
        print(f"setup: {a.objects} {a.table} objects written to SQLite in "
              f"{time.perf_counter() - t:.1f} s (not timed below)")
        bench(f"{a.table}-sqlite", f"sqlite:///{tmp}/live.db", det, a.reference, tmp)
        sample = open_source("sample")
        sids, _ = sample.list_objects()
        bench("real-sample", "sample", sample.read_range(sids[0], sids[-1]), 364, tmp)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"benchmark process peak memory (incl. setup; the task's own is above): {peak:.0f} MB; "
          f"load average {' '.join(load)} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
