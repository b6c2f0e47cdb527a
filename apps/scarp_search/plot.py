"""Hillshade PNG, north up, with the detected segments on top."""

from __future__ import annotations

import io as _io
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from lasair_parallel.tasks.outputs import atomic_write

if TYPE_CHECKING:
    from lasair_parallel.apps.scarp_search.io import Dem
    from lasair_parallel.apps.scarp_search.traces import Segment


def north_up(z: np.ndarray, dy_n: float) -> np.ndarray:
    """The array with row 0 northmost (rows of a DEM with dy > 0 run north: flip them)."""
    return z if dy_n < 0 else z[::-1]


def hillshade(z: np.ndarray, dx: float, dy: float, azimuth: float = 315.0,
              altitude: float = 45.0) -> np.ndarray:
    """Lambertian shading in [0, 1] of a north-up array, not rescaled (matplotlib's LightSource
    stretches min..max, which turns flat ground black next to one scarp)."""
    gn, ge = np.gradient(z, abs(dy), abs(dx))  # row 0 north: +rows go south
    az, alt = np.radians(azimuth), np.radians(altitude)
    # Unit normal (-dz/dE, -dz/dN, 1) with dz/dN = -gn; sun direction (E, N, up).
    sun = np.array([np.sin(az) * np.cos(alt), np.cos(az) * np.cos(alt), np.sin(alt)])
    norm = np.sqrt(ge ** 2 + gn ** 2 + 1.0)
    return np.clip((-ge * sun[0] + gn * sun[1] + sun[2]) / norm, 0.0, 1.0)


def colour_limits(snr: np.ndarray) -> tuple[float, float]:
    """Colour scale of the segments' SNR: 5th-95th percentiles, so one outlier cannot wash the
    others out; a factor 4 around them when they are all alike (or alone)."""
    lo, hi = (float(v) for v in np.percentile(snr, [5, 95]))
    if hi < 2 * lo:
        lo, hi = np.sqrt(lo * hi) / 2, np.sqrt(lo * hi) * 2
    return max(lo, 1e-3), max(hi, 2e-3)


def detections_png(path: str | Path, dem: Dem, segs: list[Segment], title: str,
                   summary: str) -> None:
    """Hillshade (sun at azimuth 315, 45 deg up) in map coordinates, north up, and the
    segments coloured by median SNR on a scale set by the 5th-95th percentiles of the segments
    (one outlier cannot wash the others out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    from matplotlib.colors import LogNorm
    from matplotlib.lines import Line2D

    z = dem.z
    zf = np.where(np.isfinite(z), z, np.nanmean(z) if np.isfinite(z).any() else 0.0)
    img = north_up(zf, dem.dy_n)
    shade = hillshade(img, dem.dx_e, dem.dy_n)
    t = dem.transform
    ny, nx = z.shape
    left, right = sorted((t.c, t.c + nx * t.a))
    bottom, top = sorted((t.f, t.f + ny * t.e))
    fig, ax = plt.subplots(figsize=(7, max(3.0, 7 * (top - bottom) / max(right - left, 1e-9))),
                           dpi=120)
    ax.imshow(shade, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest",
              extent=(left, right, bottom, top), origin="upper")
    if segs:
        snr = np.array([s.snr for s in segs])
        lo, hi = colour_limits(snr)
        lines = LineCollection([[(s.x0, s.y0), (s.x1, s.y1)] for s in segs], cmap="plasma",
                               norm=LogNorm(vmin=lo, vmax=hi),
                               linewidths=2.0)
        lines.set_array(snr)
        ax.add_collection(lines)
        bar = fig.colorbar(lines, ax=ax, extend="both")
        bar.set_label("segment median SNR = n_eff rho^2 / (1 - rho^2) (dimensionless)",
                      fontsize=7)
        bar.ax.tick_params(labelsize=7)
        handle = Line2D([], [], color="purple", lw=2)
        ax.legend([handle], [f"scarp segment ({len(segs)}; length >= the minimum)"],
                  loc="lower right", fontsize=7)
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("easting (m, DEM's CRS)\n" + textwrap.fill(summary, 80), fontsize=7)
    ax.set_ylabel("northing (m)  ^ north")
    ax.tick_params(labelsize=7)
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    with atomic_write(path, "wb") as f:
        f.write(buf.getvalue())
