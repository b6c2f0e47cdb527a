"""One block of the fading search, run on a worker: fit, filter, write the block's CSV."""

from __future__ import annotations

import argparse
import csv
import sys

from lasair_parallel.tasks.outputs import atomic_write
from slopes import fading_rows  # a sibling module: the app's folder travels with the run

COLUMNS = ["objectId", "fid", "n", "days", "slope_mag_per_day", "slope_err", "last_mag"]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="examples/fading/task.py")
    p.add_argument("--light-curves", required=True)
    p.add_argument("--first", required=True)
    p.add_argument("--last", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--days", type=float, required=True)
    p.add_argument("--min-points", type=int, required=True)
    p.add_argument("--min-span", type=float, default=1.0)
    a = p.parse_args(argv)
    with open(a.light_curves, newline="") as f:
        rows = [r for r in csv.DictReader(f) if a.first <= r["objectId"] <= a.last]
    found = fading_rows(rows, a.rate, a.days, a.min_points, a.min_span)
    with atomic_write(a.out, newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(COLUMNS)
        w.writerows(found)
    print(f"{len(found)} fading band(s) among {len({r['objectId'] for r in rows})} objects")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
