"""The strongest straight trace in a best-fit map (a strike-consistent Hough transform of SNR).

Definition used by the tests and reported in benchmarks/README.md: for every line strike
phi on a grid (default 1 deg) and every line offset (1 lattice step = the smaller pixel size),
sum the SNR of the pixels that lie within half a step of the line *and* whose own best-fit strike
is within ``tol`` degrees of phi (strikes compared modulo 180).  The strongest trace is the line
with the largest sum: long, continuous, coherent scarps win over short strong features (a single
channel wall) and over broad areas of high SNR with scattered strikes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Trace:
    strike_deg: float
    offset_m: float  # across-strike coordinate u = E cos phi - N sin phi from pixel (0, 0)
    score: float
    rows: np.ndarray
    cols: np.ndarray


def strongest_trace(snr: np.ndarray, strike: np.ndarray, dx_e: float, dy_n: float,
                    snr_min: float = 0.0, tol: float = 10.0, phi_step: float = 1.0) -> Trace:
    """Strongest straight trace of pixels with SNR >= snr_min (NaN strike = no fit)."""
    ok = np.isfinite(strike) & np.isfinite(snr) & (snr >= snr_min)
    rows, cols = np.nonzero(ok)
    w = snr[rows, cols].astype(np.float64)
    s = strike[rows, cols].astype(np.float64)
    e, n = cols * dx_e, rows * dy_n
    h = min(abs(dx_e), abs(dy_n))
    best = None
    for phi in np.arange(-90.0, 90.0, phi_step):
        dphi = (s - phi + 90.0) % 180.0 - 90.0
        sel = np.abs(dphi) <= tol
        t = np.radians(phi)
        b = np.rint((e[sel] * np.cos(t) - n[sel] * np.sin(t)) / h).astype(np.int64)
        if not len(b):
            continue
        b0 = b.min()
        sums = np.bincount(b - b0, weights=w[sel])
        k = int(np.argmax(sums))
        if best is None or sums[k] > best[0]:
            on = np.flatnonzero(sel)[b - b0 == k]
            best = (float(sums[k]), float(phi), (k + b0) * h, rows[on], cols[on])
    if best is None:
        raise ValueError("no fitted pixels")
    return Trace(strike_deg=best[1], offset_m=float(best[2]), score=best[0], rows=best[3],
                 cols=best[4])
