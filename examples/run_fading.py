"""Drive a run from Python: the fading example on this machine, results printed per task.

    python examples/run_fading.py [--workers hosts.yaml] [--rate 0.05]

Everything here is lasair-parallel's public API: ``run`` plans and runs the app (resuming
when the run directory already has a journal), calls ``on_result`` as each task finishes, and
returns a ``RunResult`` with every task's attempts.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import lasair_parallel as lp


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", help="hosts.yaml [default: ./hosts.yaml, else this machine]")
    ap.add_argument("--rate", default="0.02", help="mag/day (default 0.02)")
    ap.add_argument("--run-dir", default="runs/fading-api")
    a = ap.parse_args()
    app = str(Path(__file__).with_name("fading"))

    def done(t: lp.TaskResult) -> None:
        last = t.last
        print(f"  {'ok    ' if t.succeeded else 'FAILED'} {t.id} on {last.host} "
              f"in {last.end - last.start:.2f} s")

    try:
        result = lp.run(app, a.workers, args=["--rate", a.rate], run_dir=a.run_dir,
                        retries=1, on_result=done)
    except lp.UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{len(result.succeeded)} ok, {len(result.failed)} failed of {result.total}; "
          f"journal in {result.run_dir}")
    for t in result.failed:
        print(f"  {t.id}: {t.last.reason}\n    {t.last.err_tail.strip()[-300:]}")
    fading = result.run_dir / "fading.csv"
    if result.ok and fading.exists():
        with open(fading, newline="") as f:
            rows = list(csv.DictReader(f))
        print(f"{len(rows)} fading band(s); the fastest:")
        for r in rows[:5]:
            print(f"  {r['objectId']} fid {r['fid']}: {float(r['slope_mag_per_day']):+.3f} "
                  f"mag/day over {r['days']} d ({r['n']} points)")
    return result.exit_status


if __name__ == "__main__":
    sys.exit(main())
