"""Worker entry: search a range of strikes on one DEM and write a partial best fit.

``python -m lasair_parallel.apps.scarp_search.task --dem D --d 100 --angles 0:23 --out part.npz``
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from lasair_parallel.apps.scarp_search.gather import save_partial
from lasair_parallel.apps.scarp_search.io import read_dem
from lasair_parallel.apps.scarp_search.matching import Matcher
from lasair_parallel.apps.scarp_search.templates import search_grid
from lasair_parallel.tasks import Task, python_command, split
from lasair_parallel.tasks.emit import head_path, spawn
from lasair_parallel.tasks.finish import exit_task
from lasair_parallel.tasks.protocol import ENV_TASK_ID, ENV_WEIGHT

MODULE = "lasair_parallel.apps.scarp_search.task"


def add_grid_options(p: argparse.ArgumentParser) -> None:
    """Options shared by the app and its task (the task must rebuild the same grid)."""
    p.add_argument("--d", type=float, default=None,
                   help="along-strike half-length of the window, metres (default 100, or a "
                        "quarter of the DEM's shorter side if that is less)")
    p.add_argument("--angle-step", type=float, default=1.0, help="strike step, deg (default 1)")
    p.add_argument("--log-kt-min", type=float, default=0.0)
    p.add_argument("--log-kt-max", type=float, default=3.4)
    p.add_argument("--log-kt-step", type=float, default=0.1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lasair_parallel.apps.scarp_search.task")
    p.add_argument("--dem", required=True)
    p.add_argument("--angles", required=True, help="index range i0:i1 into the strike grid")
    p.add_argument("--out", required=True)
    add_grid_options(p)
    a = p.parse_args(argv)
    if a.d is None:
        p.error("--d is required here (the planner passes the resolved value)")
    angles, kts = search_grid(a.angle_step, a.log_kt_min, a.log_kt_max, a.log_kt_step)
    i0, i1 = (int(v) for v in a.angles.split(":"))
    i1 = split_strikes(a, i0, i1)  # predicted too long: the other strikes go to subtasks
    t0 = time.perf_counter()
    dem = read_dem(a.dem)
    m = Matcher(dem.z, dem.dx_e, dem.dy_n, a.d, kts, angles)
    best = m.run(range(i0, i1))
    save_partial(a.out, best, m.snr_ratio())
    print(f"scarp_search: strikes {i0}:{i1} x {len(kts)} kt on {dem.z.shape} "
          f"in {time.perf_counter() - t0:.1f} s -> {a.out}")
    return 0


def split_strikes(a: argparse.Namespace, i0: int, i1: int) -> int:
    """When the head predicts this task runs longer than wanted (tasks.split.wanted), spawn
    even strike ranges after the first as tasks ``<task>.<k>`` writing ``<out>.<k>.npz``
    beside this task's partial (gather finds them by that name); return this task's new end.
    Every strike costs the same, so equal ranges are equal pieces."""
    ranges = split.even_ranges(i0, i1, split.wanted())
    if len(ranges) <= 1:
        return i1
    me = os.environ.get(ENV_TASK_ID) or Path(a.out).stem
    out = Path(head_path(os.path.abspath(a.out)))
    dem = head_path(os.path.abspath(a.dem))
    grid = ["--d", repr(a.d), "--angle-step", repr(a.angle_step), "--log-kt-min",
            repr(a.log_kt_min), "--log-kt-max", repr(a.log_kt_max), "--log-kt-step",
            repr(a.log_kt_step)]
    per_strike = float(os.environ.get(ENV_WEIGHT) or 0) / max(1, i1 - i0)
    children = []
    for k, (lo, hi) in enumerate(ranges[1:], start=1):
        part = str(out.with_name(f"{out.stem}.{k}{out.suffix}"))
        argv = ["--dem", dem, "--angles", f"{lo}:{hi}", "--out", part, *grid]
        children.append(Task(id=f"{me}.{k}", command=python_command(MODULE, argv),
                             weight=per_strike * (hi - lo), outputs=(part,), inputs=(dem,)))
    spawn(*children)
    return ranges[0][1]


if __name__ == "__main__":
    exit_task(main())
