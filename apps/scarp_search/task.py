"""Worker entry: search a range of strikes on one DEM and write a partial best fit.

``python -m lasair_parallel.apps.scarp_search.task --dem D --d 100 --angles 0:23 --out part.npz``
"""

from __future__ import annotations

import argparse
import sys
import time

from lasair_parallel.apps.scarp_search.gather import save_partial
from lasair_parallel.apps.scarp_search.io import read_dem
from lasair_parallel.apps.scarp_search.matching import Matcher
from lasair_parallel.apps.scarp_search.templates import search_grid


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
    t0 = time.perf_counter()
    dem = read_dem(a.dem)
    m = Matcher(dem.z, dem.dx_e, dem.dy_n, a.d, kts, angles)
    best = m.run(range(i0, i1))
    save_partial(a.out, best, m.snr_ratio())
    print(f"scarp_search: strikes {i0}:{i1} x {len(kts)} kt on {dem.z.shape} "
          f"in {time.perf_counter() - t0:.1f} s -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
