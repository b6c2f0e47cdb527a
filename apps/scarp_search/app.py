"""Plan a scarp search: split the strike grid into tasks; gather reduces the partials.

``parallel run apps/scarp_search --workers hosts.yaml --procs 8 -- --dem carrizo.tif --d 100``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from lasair_parallel.apps.scarp_search.task import add_grid_options
from lasair_parallel.tasks import Task
from lasair_parallel.tasks.app import PlanContext
from lasair_parallel.tasks.weights import split_by_weight, target_block_weight

PARTS = "parts"
# gather() writes these (under the run directory): the head then runs it as a journaled task
# on a worker, after every part, with the parts staged as its inputs (tasks.app.gather_task).
GATHER_OUTPUTS = ("best_fit.tif", "detections.csv", "detections.png")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="parallel run apps/scarp_search --",
        description="Fit diffusion-degraded scarp templates to a DEM (best fit per pixel).",
    )
    p.add_argument("--dem", required=True, help="GeoTIFF DEM (NaN or nodata = missing)")
    add_grid_options(p)
    p.add_argument("--snr-min", type=float, default=200.0,
                   help="CSV/PNG detection threshold on SNR (default 200)")
    # Per-task time limits are the runner's own `parallel run --timeout S`, not an app option.
    kt_help = {"log_kt_min": "smallest log10 of the template's diffusion age kt, kt in m^2 "
                             "(default 0: 1 m^2)",
               "log_kt_max": "largest log10 kt of the template grid (default 3.4: ~2500 m^2)",
               "log_kt_step": "log10 kt step of the template grid (default 0.1)"}
    for action in p._actions:
        if action.dest in kt_help and not action.help:
            action.help = kt_help[action.dest]
    return p


def _grid(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    from lasair_parallel.apps.scarp_search.templates import search_grid

    return search_grid(args.angle_step, args.log_kt_min, args.log_kt_max, args.log_kt_step)


def _shape(path: str) -> tuple[int, int]:
    from lasair_parallel.apps.scarp_search.io import read_dem

    return read_dem(path).z.shape


def _blocks(args: argparse.Namespace, ctx: PlanContext) -> list[tuple[int, int]]:
    """Contiguous strike ranges of near-equal weight; deterministic, so ids are stable."""
    angles, _ = _grid(args)
    w = np.ones(len(angles))  # every strike costs the same: n_kt templates over the grid
    blocks = split_by_weight(w, target_block_weight(w.sum(), max(ctx.slots, 1)))
    return sorted((int(b[0]), int(b[-1]) + 1) for b in blocks)


def plan(args: argparse.Namespace, ctx: PlanContext) -> list[Task]:
    """One task per strike range; each writes parts/scarp-<i0>-<i1>.npz under the run dir."""
    dem = str(Path(args.dem).resolve())
    ny, nx = _shape(dem)
    _, kts = _grid(args)
    tasks = []
    for i0, i1 in _blocks(args, ctx):
        out = ctx.run_dir / PARTS / f"scarp-{i0:04d}-{i1:04d}.npz"
        argv = ["--dem", dem, "--angles", f"{i0}:{i1}", "--out", str(out),
                "--d", repr(args.d), "--angle-step", repr(args.angle_step),
                "--log-kt-min", repr(args.log_kt_min), "--log-kt-max", repr(args.log_kt_max),
                "--log-kt-step", repr(args.log_kt_step)]
        tasks.append(ctx.task(f"scarp-{i0:04d}-{i1:04d}", argv,
                              weight=float((i1 - i0) * len(kts) * ny * nx),
                              outputs=(str(out),), inputs=(dem,)))
    return tasks


def measure_rate(args: argparse.Namespace) -> tuple[float, float]:
    """Seconds per template and per strike, measured on this DEM (one strike, every kt)."""
    from lasair_parallel.apps.scarp_search.io import read_dem
    from lasair_parallel.apps.scarp_search.matching import Matcher

    dem = read_dem(args.dem)
    angles, kts = _grid(args)
    m = Matcher(dem.z, dem.dx_e, dem.dy_n, args.d, kts, angles[len(angles) // 4:][:1])
    t0 = time.perf_counter()
    m.run([0])
    per_strike = time.perf_counter() - t0
    return per_strike / len(kts), per_strike


def describe(args: argparse.Namespace, ctx: PlanContext, tasks: list[Task]) -> str:
    """Time estimate from a measured rate (one oblique strike timed on this DEM)."""
    angles, kts = _grid(args)
    _, per_strike = measure_rate(args)
    total = per_strike * len(angles)
    slots = max(1, min(ctx.slots, len(tasks)))
    return (f"scarp_search: {len(angles)} strikes x {len(kts)} kt = {len(angles) * len(kts)} "
            f"templates in {len(tasks)} tasks; measured {per_strike / len(kts) * 1e3:.1f} ms "
            f"per template -> ~{total:.0f} s of CPU, ~{total / slots:.0f} s on {slots} slots")


def gather(args: argparse.Namespace, ctx: PlanContext) -> None:
    """Reduce the partials into best_fit.tif, detections.csv and detections.png."""
    from lasair_parallel.apps.scarp_search.gather import reduce_partials, write_outputs
    from lasair_parallel.apps.scarp_search.io import read_dem

    angles, kts = _grid(args)
    paths = [ctx.run_dir / PARTS / f"scarp-{i0:04d}-{i1:04d}.npz"
             for i0, i1 in _blocks(args, ctx)]
    best = reduce_partials(paths)
    dem = read_dem(args.dem)
    write_outputs(ctx.run_dir, best, dem, kts, angles, args.snr_min,
                  f"{Path(args.dem).name}: scarps, d = {args.d:g} m, SNR >= {args.snr_min:g}")
