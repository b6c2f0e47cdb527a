"""Benchmark rebuild_objects on one process: SQLite source -> features -> CSV shard.

    python benchmarks/rebuild_objects.py [--objects 128000] [--reference 2000]

128,000 synthetic objects (Lasair's benchmark size) are written to a SQLite file (setup, not
timed), then one task reads them by key range, computes the features and writes one shard
(``apps.rebuild_objects.task.run``, the worker's code path, in-process).  The feature step is also
timed alone, and the plain per-object reference loop runs on the first --reference objects with
its rate extrapolated.  The same for the bundled real sample.  Lasair: 61 ms/object.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from reference_features import reference_features, rows_of  # noqa: E402

from apps.rebuild_objects import task  # noqa: E402
from apps.rebuild_objects.features import compute_features  # noqa: E402
from apps.rebuild_objects.sources import open_source  # noqa: E402
from apps.rebuild_objects.sources.dbwrite import write_sqlite  # noqa: E402

LASAIR_S_PER_OBJECT = 7828 / 128_000  # anchors.md section 1


def bench(label: str, spec: str, det, n_ref: int, out: Path) -> None:
    src = open_source(spec)
    ids, counts = src.list_objects()
    src.close()
    r = task.run(spec, out / f"{label}.csv", str(ids[0]), str(ids[-1]))
    n = r["objects"]
    t = time.perf_counter()
    compute_features(det)
    feat = time.perf_counter() - t
    sub_rows = rows_of(det)
    some = list(sub_rows.items())[:n_ref]
    t = time.perf_counter()
    for _, rows in some:
        reference_features(rows)
    ref = (time.perf_counter() - t) / len(some)
    print(f"{label}: {n} objects, {r['detections']} detections")
    print(f"  end to end (task.run: list excluded, read+features+write): {r['total_s']:.2f} s = "
          f"{n / r['total_s']:,.0f} objects/s (read {r['read_s']:.2f}, features "
          f"{r['features_s']:.2f}, write {r['write_s']:.2f})")
    print(f"  feature step alone: {feat:.3f} s = {n / feat:,.0f} objects/s")
    print(f"  reference loop: {len(some)} objects, {ref * 1e3:.2f} ms/object = {1 / ref:,.0f} "
          f"objects/s (extrapolated to {n}: {ref * n:.1f} s)")
    print(f"  Lasair (stated): {LASAIR_S_PER_OBJECT * 1e3:.0f} ms/object -> "
          f"{LASAIR_S_PER_OBJECT * n:,.0f} s; speed-up end to end x{LASAIR_S_PER_OBJECT * n / r['total_s']:,.0f}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--objects", type=int, default=128_000)
    p.add_argument("--reference", type=int, default=2000)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        syn = open_source(f"synthetic:{a.objects}")
        ids, _ = syn.list_objects()
        det = syn.read_range(ids[0], ids[-1])
        t = time.perf_counter()
        write_sqlite(tmp / "synthetic.db", det)
        print(f"setup: {a.objects} synthetic objects written to SQLite in "
              f"{time.perf_counter() - t:.1f} s (not timed below)")
        bench("synthetic-sqlite", f"sqlite:///{tmp}/synthetic.db", det, a.reference, tmp)
        sample = open_source("sample")
        sids, _ = sample.list_objects()
        bench("real-sample", "sample", sample.read_range(sids[0], sids[-1]), 364, tmp)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (ru_maxrss, whole benchmark incl. setup): {peak:.0f} MB")


if __name__ == "__main__":
    main()
