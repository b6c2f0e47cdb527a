"""Directional curvature from a noise-isotropic Hessian estimate.

scarplet used a forward-difference z_xy, so white DEM noise gave the directional curvature a
variance of 3.0 at -45 deg and 15.0 at +45 deg (../shared/notes/anchors.md section 5) and biased
the fitted strike.  Here every second derivative is the product of two smoothed central-difference
gradients (a Scharr-type operator).  With the cross-smoothing weights [a, 1 - 2a, a] the variance
of the directional curvature of white noise is P + cos^2 sin^2 * Q for some P, Q; solving
Q = 0 numerically gives a = 0.2036 (Sobel's 0.25 gives -14 % at 45 deg, Scharr's 0.1875 +5.8 %),
so the noise variance is the same at every strike (to rounding) and does not pull the angle.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# Cross-smoothing weight making the directional-curvature noise variance angle independent
# (root of variance(45 deg) = variance(0 deg), computed with scipy.optimize.brentq).
SMOOTH_A = 0.20363723
# Half-width of the combined 5 x 5 stencil: curvature is undefined this close to an edge or NaN.
STENCIL_RADIUS = 2


def _gradient_kernels(dx_e: float, dy_n: float) -> tuple[np.ndarray, np.ndarray]:
    """3x3 kernels (rows, cols) for dz/dE and dz/dN in a grid whose metric steps are given."""
    sm = np.array([SMOOTH_A, 1.0 - 2.0 * SMOOTH_A, SMOOTH_A])
    diff = np.array([-0.5, 0.0, 0.5])
    # Correlation kernels: k[i, j] multiplies z[r + i - 1, c + j - 1].
    ge = np.outer(sm, diff) / dx_e  # columns step dx_e metres east
    gn = np.outer(diff, sm) / dy_n  # rows step dy_n metres north (negative if rows run south)
    return ge, gn


def hessian_kernels(dx_e: float, dy_n: float) -> dict[str, np.ndarray]:
    """5x5 correlation kernels for z_EE, z_EN, z_NN (products of the smoothed gradients)."""
    ge, gn = _gradient_kernels(dx_e, dy_n)

    def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        # Correlating with a then b equals correlating with the full convolution of a and b.
        out = np.zeros((5, 5))
        for i in range(3):
            for j in range(3):
                out[i:i + 3, j:j + 3] += a[i, j] * b
        return out

    return {"ee": compose(ge, ge), "en": compose(ge, gn), "nn": compose(gn, gn)}


def noise_floor(z: np.ndarray, dx_e: float, dy_n: float) -> float:
    """Variance of the directional curvature that float32 rounding of ``z`` alone produces.

    GeoTIFF DEMs are float32 at best: elevations carry a rounding error uniform over one unit in
    the last place at the DEM's largest |z| (variance ulp^2 / 12), which the curvature stencil
    maps to ulp^2 / 12 * sum k^2 (the largest over strikes 0 and 45 deg).  Curvature below this
    level is rounding, not terrain.
    """
    zmax = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 0.0
    ulp = float(np.spacing(np.float32(max(zmax, 1.0))))
    k = hessian_kernels(dx_e, dy_n)
    gain = max(float(np.sum(k["ee"] ** 2)), float(np.sum(k["nn"] ** 2)),
               float(np.sum((0.5 * (k["ee"] + k["nn"]) - k["en"]) ** 2)))
    return ulp * ulp / 12.0 * gain


def hessian(z: np.ndarray, dx_e: float, dy_n: float) -> tuple[np.ndarray, np.ndarray]:
    """Hessian (3, ny, nx) float64 of z in the E/N map frame, and the mask of undefined pixels.

    ``z`` is never modified.  A pixel is undefined when its 5x5 stencil touches a NaN or leaves
    the grid; its Hessian is set to 0 there so FFT sums stay finite (callers mask the windows
    that touch such pixels).
    """
    z = np.asarray(z, dtype=np.float64)
    nan = ~np.isfinite(z)
    zf = np.where(nan, 0.0, z)
    r = STENCIL_RADIUS
    bad = ndimage.binary_dilation(nan, structure=np.ones((2 * r + 1, 2 * r + 1), bool))
    bad[:r, :] = bad[-r:, :] = True
    bad[:, :r] = bad[:, -r:] = True
    out = np.empty((3,) + z.shape)
    for i, k in enumerate(hessian_kernels(dx_e, dy_n).values()):
        h = ndimage.correlate(zf, k, mode="nearest")
        h[bad] = 0.0
        out[i] = h
    return out, bad


def directional(h: np.ndarray, theta_deg: float) -> np.ndarray:
    """Second derivative across a strike of azimuth ``theta_deg`` (along n = (cos, -sin))."""
    t = np.radians(theta_deg)
    c, s = np.cos(t), np.sin(t)
    return c * c * h[0] - 2 * c * s * h[1] + s * s * h[2]
