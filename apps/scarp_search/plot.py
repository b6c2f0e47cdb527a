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


def detections_png(path: str | Path, dem: Dem, segs: list[Segment], title: str,
                   summary: str) -> None:
    """Hillshade (sun at azimuth 315, 45 deg up) in map coordinates, north up, and the
    segments coloured by median SNR on a scale set by the 5th-95th percentiles of the segments
    (one outlier cannot wash the others out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    from matplotlib.colors import LightSource, LogNorm
    from matplotlib.lines import Line2D

    z = dem.z
    zf = np.where(np.isfinite(z), z, np.nanmean(z) if np.isfinite(z).any() else 0.0)
    img = north_up(zf, dem.dy_n)
    # LightSource takes row 0 as north: true once the array is north up.
    shade = LightSource(azdeg=315, altdeg=45).hillshade(img, dx=abs(dem.dx_e),
                                                        dy=abs(dem.dy_n))
    t = dem.transform
    ny, nx = z.shape
    left, right = sorted((t.c, t.c + nx * t.a))
    bottom, top = sorted((t.f, t.f + ny * t.e))
    fig, ax = plt.subplots(figsize=(7, max(3.0, 7 * (top - bottom) / max(right - left, 1e-9))),
                           dpi=120)
    ax.imshow(shade, cmap="gray", interpolation="nearest", extent=(left, right, bottom, top),
              origin="upper")
    if segs:
        snr = np.array([s.snr for s in segs])
        lo, hi = np.percentile(snr, [5, 95])
        hi = max(hi, lo * 1.01)
        lines = LineCollection([[(s.x0, s.y0), (s.x1, s.y1)] for s in segs], cmap="plasma",
                               norm=LogNorm(vmin=max(lo, 1e-3), vmax=max(hi, 1e-3)),
                               linewidths=2.0)
        lines.set_array(snr)
        ax.add_collection(lines)
        fig.colorbar(lines, ax=ax, extend="both",
                     label="segment median SNR (n_eff rho^2 / (1 - rho^2), dimensionless)")
        handle = Line2D([], [], color="purple", lw=2)
        ax.legend([handle], [f"scarp segment ({len(segs)}; length >= the minimum)"],
                  loc="lower right", fontsize=7)
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("easting (m, DEM's CRS)\n" + textwrap.fill(summary, 110), fontsize=7)
    ax.set_ylabel("northing (m)  ^ north")
    ax.tick_params(labelsize=7)
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    with atomic_write(path, "wb") as f:
        f.write(buf.getvalue())
