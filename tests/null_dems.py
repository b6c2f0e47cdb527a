"""DEMs with no scarp at all: the null cases of scarp_search's tests and benchmark."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def null_dem(kind: str, ny: int = 400, nx: int = 800) -> np.ndarray:
    """400 x 800 (2 m) DEMs with no scarp: the issue's four null cases."""
    rng = np.random.default_rng(12)
    if kind == "flat":
        return np.full((ny, nx), 250.0)
    if kind == "white":
        return 250.0 + rng.normal(0.0, 0.05, (ny, nx))
    if kind == "correlated":  # sigma 0.05 m after a 3-pixel Gaussian smoothing
        n = ndimage.gaussian_filter(rng.normal(0.0, 1.0, (ny, nx)), 3.0)
        return 250.0 + n * (0.05 / n.std())
    r, c = np.mgrid[0:ny, 0:nx] * 2.0  # hills: 12 broad Gaussians, sigma 60-200 m, 2-10 m high
    z = np.full((ny, nx), 250.0)
    for _ in range(12):
        y0, x0 = rng.uniform(0, ny * 2.0), rng.uniform(0, nx * 2.0)
        s, a = rng.uniform(60, 200), rng.uniform(2, 10)
        z += a * np.exp(-((r - y0) ** 2 + (c - x0) ** 2) / (2 * s * s))
    return z
