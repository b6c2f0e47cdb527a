"""Hillshade PNG with the detections on top."""

from __future__ import annotations

import io as _io
from pathlib import Path

import numpy as np
from lasair_parallel.tasks.outputs import atomic_write


def hillshade_png(path: str | Path, z: np.ndarray, dx_e: float, dy_n: float,
                  rows: np.ndarray, cols: np.ndarray, snr: np.ndarray, title: str) -> None:
    """Hillshade (sun at azimuth 315, 45 deg up) in array layout, detections coloured by SNR."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LightSource

    zf = np.where(np.isfinite(z), z, np.nanmean(z))
    # LightSource assumes row 0 is north; flip for rows running north so the shading is right.
    north_up = dy_n < 0
    img = zf if north_up else zf[::-1]
    shade = LightSource(azdeg=315, altdeg=45).hillshade(img, dx=abs(dx_e), dy=abs(dy_n))
    if not north_up:
        shade = shade[::-1]
    ny, nx = z.shape
    fig, ax = plt.subplots(figsize=(6, 6 * ny / max(nx, 1)), dpi=120)
    ax.imshow(shade, cmap="gray", interpolation="nearest")
    if len(rows):
        sc = ax.scatter(cols, rows, c=snr, s=2, cmap="plasma", linewidths=0)
        fig.colorbar(sc, ax=ax, label="SNR")
    ax.set_title(title)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    with atomic_write(path, "wb") as f:
        f.write(buf.getvalue())
