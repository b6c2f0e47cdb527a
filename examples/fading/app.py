"""Find objects fading faster than a given rate (mag/day): a user app outside the package.

Lasair's features give a light curve's latest magnitudes and an EMA, not its trend; this job
fits a straight line to each object's magnitudes per band over its last ``--days`` days and
keeps the objects whose fitted slope exceeds ``--rate`` mag/day (magnitudes grow as a source
fades).  It is written only against lasair-parallel's public API:

    parallel run examples/fading -- --rate 0.05
    parallel run examples/fading --workers hosts.yaml -- --light-curves candidates.csv

The planner (this file) runs on the head: it reads the object ids, cuts them into blocks of
similar detection counts and plans one task per block.  ``task.py`` runs on a worker for each
block; ``gather`` merges the blocks' CSVs into ``fading.csv`` in the run directory.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from lasair_parallel.tasks.outputs import atomic_write
from lasair_parallel.tasks.weights import split_by_weight, target_block_weight

import lasair_parallel as lp

COLUMNS = ["objectId", "fid", "n", "days", "slope_mag_per_day", "slope_err", "last_mag"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="parallel run examples/fading --",
                                description="Objects fading faster than RATE mag/day.")
    p.add_argument("--light-curves", default=None,
                   help="CSV of detections (objectId, jd, fid, magpsf, sigmapsf, ...) "
                        "[default: the bundled ZTF sample]")
    p.add_argument("--rate", type=float, default=0.02,
                   help="minimum fading rate, mag/day (default 0.02)")
    p.add_argument("--days", type=float, default=30.0,
                   help="fit each band over the object's last DAYS days (default 30)")
    p.add_argument("--min-points", type=int, default=3,
                   help="detections a band needs in the window to be fitted (default 3)")
    p.add_argument("--min-span", type=float, default=1.0,
                   help="days a band's fitted points must span (default 1: one night's "
                        "scatter is not a trend)")
    p.add_argument("--tasks-per-slot", type=int, default=2,
                   help="blocks per worker slot (default 2, so a slow block costs little)")
    return p


def light_curves(args: argparse.Namespace) -> Path:
    return Path(args.light_curves) if args.light_curves else lp.sample_light_curves()


def plan(args: argparse.Namespace, ctx: lp.PlanContext) -> list[lp.Task]:
    if not args.rate > 0 or not args.days > 0 or args.min_points < 2:
        raise lp.AppError("--rate and --days must be > 0 and --min-points >= 2")
    src = light_curves(args).resolve()
    if not src.is_file():
        raise lp.AppError(f"--light-curves {src}: no such file")
    with open(src, newline="") as f:
        ids = [row["objectId"] for row in csv.DictReader(f)]
    names, counts = np.unique(np.array(ids), return_counts=True)
    per_block = target_block_weight(counts.sum(), ctx.slots, args.tasks_per_slot)
    tasks = []
    for block in split_by_weight(counts, per_block):
        first, last = names[block[0]], names[block[-1]]
        out = ctx.run_dir / "blocks" / f"{first}-{last}.csv"
        argv = ["--light-curves", src, "--first", first, "--last", last, "--out", out,
                "--rate", args.rate, "--days", args.days, "--min-points", args.min_points,
                "--min-span", args.min_span]
        tasks.append(ctx.task(f"fading-{first}-{last}", argv, weight=float(counts[block].sum()),
                              outputs=(str(out),), inputs=(str(src),)))
    return tasks


def describe(args: argparse.Namespace, ctx: lp.PlanContext, tasks: list[lp.Task]) -> str:
    return (f"fading: {len(tasks)} block(s) of {light_curves(args).name} for {ctx.slots} "
            f"slot(s); objects fading faster than {args.rate} mag/day over {args.days} days")


def gather(args: argparse.Namespace, ctx: lp.PlanContext) -> None:
    """Merge the blocks into fading.csv, fastest fading first."""
    rows = []
    for part in sorted((ctx.run_dir / "blocks").glob("*.csv")):
        with open(part, newline="") as f:
            rows += list(csv.DictReader(f))
    rows.sort(key=lambda r: (-float(r["slope_mag_per_day"]), r["objectId"], r["fid"]))
    with atomic_write(ctx.run_dir / "fading.csv", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
