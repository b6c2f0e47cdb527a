"""From best-fit maps to detections: false-alarm threshold, physical limits, ridge, segments.

A pixel is a detection candidate when its best template passes the null model's threshold for
the requested per-pixel false-alarm rate (nullmodel.py), its fitted amplitude and kt are within
physical limits, and its own curvature is above the DEM's rounding level (a pixel inside a flat
area is not on a scarp even if its window reaches one).  Candidates are thinned to the ridge of
the SNR across strike (the scarp's trace, not the band of pixels whose windows overlap it), and
the ridge pixels are linked into straight segments (traces.py); segments shorter than the
minimum length are dropped.  The flagged pixels are those of the kept segments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from lasair_parallel.apps.scarp_search.curvature import hessian, noise_floor
from lasair_parallel.apps.scarp_search.matching import FLAT_FACTOR
from lasair_parallel.apps.scarp_search.nullmodel import rho2_threshold
from scipy import ndimage

# Default per-pixel false-alarm rate of the SNR threshold, before the physical limits, the ridge
# and the minimum length remove most of what noise passes.  An upper bound: on 400 x 800 noise
# DEMs the observed rate is 0-0.2 x the nominal one (tests/test_scarp_search.py).  Measured on
# carrizo.tif (d = 100 m): at 1e-5-1e-3 the strongest segment is the San Andreas; at 1e-3 its
# candidate pixels make a > 1 km trace while 0.2 % of the DEM is flagged.
DEFAULT_FALSE_ALARM = 1e-3
# Amplitude limits (A = half the total vertical offset, metres).  Lower: airborne lidar's vertical
# accuracy, RMSEz <= 0.10 m for USGS 3DEP quality level 2 (USGS Lidar Base Specification); an
# offset is a difference of two elevations (error sqrt(2) RMSEz = 0.14 m), so an offset 2|A| is
# resolved at 3 sigma from 0.42 m: |A| >= 0.2 m.  (On carrizo.tif N-S stripes of |A| 0.14-0.19 m
# and kt ~3 m^2 every ~10 m, apparently a survey artefact, are the strongest fits below that.)  Upper: the
# erf (linear diffusion) model is applied to single- and few-event scarps metres high (Hanks et
# al. 1984, JGR 89, 5771; Nash 1980, J. Geol. 88, 353); a 20 m step is an escarpment.
DEFAULT_AMP_MIN = 0.2
DEFAULT_AMP_MAX = 10.0
# kt limit, m^2: kappa is ~1-10 m^2/kyr for scarps in unconsolidated material (Hanks 2000,
# "The age of scarplike landforms from diffusion-equation analysis", AGU Ref. Shelf 4) and the
# scarps datable this way are < ~100 kyr old, so kt > ~1000 m^2 is terrain, not a scarp.
DEFAULT_KT_MAX = 1000.0


@dataclass(frozen=True)
class Limits:
    """Physical sanity limits on a detection's fitted parameters."""

    amp_min: float = DEFAULT_AMP_MIN
    amp_max: float = DEFAULT_AMP_MAX
    kt_max: float = DEFAULT_KT_MAX


def snr_thresholds(n_eff: np.ndarray, alpha: float, m_eff: float) -> np.ndarray:
    """SNR each template (strike, kt) must reach for a per-pixel false-alarm rate <= alpha,
    with ``m_eff`` effectively independent templates (nullmodel.effective_templates)."""
    r2 = rho2_threshold(n_eff, alpha, m_eff)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isfinite(r2) & (r2 < 1), n_eff * r2 / (1.0 - r2), np.inf)


def flat_pixels(z: np.ndarray, dx_e: float, dy_n: float) -> np.ndarray:
    """Pixels whose own 5 x 5 neighbourhood has curvature at the rounding level (or none)."""
    h, bad = hessian(z, dx_e, dy_n)
    mag = h[0] ** 2 + 2.0 * h[1] ** 2 + h[2] ** 2
    local = ndimage.uniform_filter(mag, size=5, mode="nearest")
    return bad | (local <= FLAT_FACTOR * noise_floor(z, dx_e, dy_n))


def candidates(snr: np.ndarray, amp: np.ndarray, kt: np.ndarray, ang_idx: np.ndarray,
               kt_idx: np.ndarray, thresholds: np.ndarray, flat: np.ndarray,
               limits: Limits) -> np.ndarray:
    """Pixels that pass the threshold of their best template and the physical limits."""
    fitted = (ang_idx >= 0) & np.isfinite(snr)
    thr = np.full(snr.shape, np.inf)
    thr[fitted] = thresholds[ang_idx[fitted], kt_idx[fitted]]
    with np.errstate(invalid="ignore"):
        a = np.abs(amp)
        return (fitted & (snr >= thr) & (a >= limits.amp_min) & (a <= limits.amp_max)
                & (kt <= limits.kt_max) & ~flat)


def ridge(snr: np.ndarray, strike: np.ndarray, cand: np.ndarray, dx_e: float,
          dy_n: float) -> np.ndarray:
    """Candidates that are the SNR maximum across their own strike (non-maximum suppression).

    The neighbours are one pixel step along n = (cos theta, -sin theta) either side; a tie with
    the neighbour on the +n side keeps that one only, so a plateau two pixels wide gives one line.
    """
    ny, nx = snr.shape
    r, c = np.nonzero(cand)
    t = np.radians(strike[r, c])
    step = min(abs(dx_e), abs(dy_n))
    dc = np.rint(np.cos(t) * step / dx_e).astype(np.int64)
    dr = np.rint(-np.sin(t) * step / dy_n).astype(np.int64)
    s = np.where(np.isfinite(snr), snr, -np.inf)
    keep = np.ones(r.size, bool)
    for sgn in (1, -1):
        rr, cc = r + sgn * dr, c + sgn * dc
        inside = (rr >= 0) & (rr < ny) & (cc >= 0) & (cc < nx)
        nb = np.full(r.size, -np.inf)
        nb[inside] = s[rr[inside], cc[inside]]
        keep &= (s[r, c] > nb) if sgn == 1 else (s[r, c] >= nb)
    out = np.zeros(snr.shape, bool)
    out[r[keep], c[keep]] = True
    return out
