"""Traces: detections linked into segments, and the strongest straight trace of a best-fit map.

``segments``: ridge pixels (detect.py) are linked to their 8 neighbours when their fitted strikes
agree within LINK_TOL degrees; every linked group is a segment, reported by its principal axis
(end points, length, azimuth) and the median fitted kt, amplitude and SNR of its pixels.

``strongest_trace``: a strike-consistent Hough transform of SNR.

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
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

# Neighbouring ridge pixels belong to one trace when their strikes differ by at most this much
# (the strike of one pixel's fit scatters by ~3 deg under noise, tests/test_scarp_search.py;
# a bend sharper than 20 deg between neighbours is two features).
LINK_TOL = 20.0


@dataclass(frozen=True)
class Segment:
    """One linked trace: end points in map coordinates, length, azimuth and median fit values."""

    x0: float
    y0: float
    x1: float
    y1: float
    length_m: float
    strike_deg: float  # azimuth of the segment's line, clockwise from north, [-90, 90)
    kt_m2: float
    amplitude_m: float
    snr: float  # median over the segment's pixels
    snr_max: float
    score: float  # sum of SNR over its pixels: what orders the segments
    rows: np.ndarray
    cols: np.ndarray


def _strike_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs((a - b + 90.0) % 180.0 - 90.0)


def segments(mask: np.ndarray, strike: np.ndarray, kt: np.ndarray, amp: np.ndarray,
             snr: np.ndarray, transform: object, min_length: float) -> list[Segment]:
    """Segments of the ridge ``mask`` at least ``min_length`` metres long, strongest first."""
    t = transform
    dx_e, dy_n = float(t.a), float(t.e)
    rows, cols = np.nonzero(mask)
    n = rows.size
    if n == 0:
        return []
    index = np.full(mask.shape, -1, np.int64)
    index[rows, cols] = np.arange(n)
    ny, nx = mask.shape
    src, dst = [], []
    for dr, dc in ((0, 1), (1, -1), (1, 0), (1, 1)):
        rr, cc = rows + dr, cols + dc
        inside = (rr < ny) & (cc >= 0) & (cc < nx)
        j = np.full(n, -1, np.int64)
        j[inside] = index[rr[inside], cc[inside]]
        ok = j >= 0
        ok[ok] = _strike_diff(strike[rows[ok], cols[ok]], strike[rows[j[ok]], cols[j[ok]]]) \
            <= LINK_TOL
        src.append(np.flatnonzero(ok))
        dst.append(j[ok])
    s, d = np.concatenate(src), np.concatenate(dst)
    graph = coo_matrix((np.ones(s.size), (s, d)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    order = np.argsort(label, kind="stable")
    bounds = np.flatnonzero(np.diff(label[order])) + 1
    step = min(abs(dx_e), abs(dy_n))
    x00, y00 = t.c + 0.5 * t.a, t.f + 0.5 * t.e  # centre of pixel (0, 0)
    out = []
    for grp in np.split(order, bounds):
        r, c = rows[grp], cols[grp]
        e, nn = c * dx_e, r * dy_n
        ce, cn = e.mean(), nn.mean()
        if grp.size > 1:
            cov = np.cov(np.vstack([e - ce, nn - cn]))
            w, v = np.linalg.eigh(cov)
            de, dn = v[:, np.argmax(w)]
        else:
            de, dn = 0.0, 1.0
        proj = (e - ce) * de + (nn - cn) * dn
        p0, p1 = proj.min(), proj.max()
        length = float(p1 - p0 + step)
        if length < min_length:
            continue
        az = (np.degrees(np.arctan2(de, dn)) + 90.0) % 180.0 - 90.0
        sv = snr[r, c].astype(np.float64)
        out.append(Segment(
            x0=float(x00 + ce + p0 * de), y0=float(y00 + cn + p0 * dn),
            x1=float(x00 + ce + p1 * de), y1=float(y00 + cn + p1 * dn),
            length_m=length, strike_deg=float(az), kt_m2=float(np.median(kt[r, c])),
            amplitude_m=float(np.median(amp[r, c])), snr=float(np.median(sv)),
            snr_max=float(sv.max()), score=float(sv.sum()), rows=r, cols=c))
    out.sort(key=lambda g: -g.score)
    return out


@dataclass(frozen=True)
class Trace:
    """The strongest straight trace found by ``strongest_trace``."""

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
