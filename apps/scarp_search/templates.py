"""Windowed curvature templates of a diffusion-degraded scarp, and the default search grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy.special import erfinv

# scarplet's default grid (anchors.md section 5): 181 strikes, kt = 10^(0, 0.1, ..., 3.4) m^2.
DEFAULT_ANGLES = np.arange(-90.0, 91.0, 1.0)
DEFAULT_LOG_KT = np.round(np.arange(0.0, 3.45, 0.1), 10)
# Fraction of the scarp's elevation step inside the across-strike window: c = 2 sqrt(kt)
# erfinv(WINDOW_FRAC).  scarplet used 0.9, which leaves ~14 % of the template's curvature energy
# outside the window; under noise a wider kt then captures those tails and wins (kt 1-2 grid steps
# high, amplitude +20-40 % at sigma = 0.05 m).  With 0.999 (c = 4.65 sqrt(kt)) the window holds
# essentially all of it and the SNR maximum is at the true kt (tests/test_scarp_search.py).
WINDOW_FRAC = 0.999


def default_kts() -> np.ndarray:
    """The 35 default kt values in m^2."""
    return 10.0 ** DEFAULT_LOG_KT


def half_width(kt: float) -> float:
    """Across-strike half-width c = 2 sqrt(kt) erfinv(WINDOW_FRAC) of the window, in metres."""
    return float(2.0 * np.sqrt(kt) * erfinv(WINDOW_FRAC))


def profile(xr: np.ndarray, kt: float) -> np.ndarray:
    """Curvature of z = erf(xr / (2 sqrt(kt))): W(xr) = -xr / (2 kt^1.5 sqrt(pi)) e^(-xr^2/4kt)."""
    return -xr / (2.0 * kt ** 1.5 * np.sqrt(np.pi)) * np.exp(-(xr ** 2) / (4.0 * kt))


@dataclass(frozen=True)
class Template:
    """One windowed template on the pixel grid, as offsets from the centre pixel.

    ``w`` is a small array indexed [dr - rmin, dc - cmin]; ``support`` marks the window
    (|xr| < c and |yr| < d) even where W is 0 (xr = 0).
    """

    w: np.ndarray
    support: np.ndarray
    rmin: int
    cmin: int

    @property
    def rmax(self) -> int:
        return self.rmin + self.w.shape[0] - 1

    @property
    def cmax(self) -> int:
        return self.cmin + self.w.shape[1] - 1

    @property
    def n(self) -> int:
        return int(self.support.sum())

    @property
    def sww(self) -> float:
        return float(np.sum(self.w.astype(np.float64) ** 2))


def angle_grid(theta_deg: float, reach: float, dx_e: float, dy_n: float) -> tuple:
    """Rotated coordinates (xr, yr) of every pixel offset within ``reach`` metres, and the reach
    in rows and columns; computed once per strike and sliced for each kt."""
    rr = int(np.floor(reach / abs(dy_n)))
    cc = int(np.floor(reach / abs(dx_e)))
    dr, dc = np.mgrid[-rr:rr + 1, -cc:cc + 1]
    de, dn = dc * dx_e, dr * dy_n
    t = np.radians(theta_deg)
    xr = de * np.cos(t) - dn * np.sin(t)
    yr = de * np.sin(t) + dn * np.cos(t)
    return xr, yr, rr, cc


def make_template(kt: float, theta_deg: float, d: float, dx_e: float, dy_n: float,
                  grid: tuple | None = None) -> Template:
    """Rasterise the template for strike ``theta_deg`` centred on a pixel centre.

    A pixel (dr, dc) away from the centre is at dE = dc dx_e, dN = dr dy_n metres (dy_n < 0
    when rows run south), so the geotransform, not the array orientation, sets the strike.
    ``grid`` is :func:`angle_grid` for this strike with a reach >= c + d (a speed-up only).
    """
    c = half_width(kt)
    reach = c + d
    if grid is None:
        grid = angle_grid(theta_deg, reach, dx_e, dy_n)
    xr, yr, grr, gcc = grid
    rr = min(grr, int(np.floor(reach / abs(dy_n))))
    cc = min(gcc, int(np.floor(reach / abs(dx_e))))
    xr = xr[grr - rr:grr + rr + 1, gcc - cc:gcc + cc + 1]
    yr = yr[grr - rr:grr + rr + 1, gcc - cc:gcc + cc + 1]
    support = (np.abs(xr) < c) & (np.abs(yr) < d)
    rows = np.flatnonzero(support.any(axis=1))
    cols = np.flatnonzero(support.any(axis=0))
    sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    w = np.where(support[sl], profile(xr[sl], kt), 0.0)
    return Template(w=w, support=support[sl], rmin=int(rows[0] - rr), cmin=int(cols[0] - cc))


def spectra(tmpl: Template, fft_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Conjugate real-FFT spectra (complex64) of the template and of its window indicator.

    Offsets are wrapped around the origin so that irfft2(F_K * conj) is the correlation
    sum_q T(q) K(p + q) registered on pixel p's centre (scarplet convolved, flipping the sign).
    """
    ny, nx = fft_shape
    rows = np.arange(tmpl.rmin, tmpl.rmax + 1) % ny
    cols = np.arange(tmpl.cmin, tmpl.cmax + 1) % nx
    both = np.zeros((2, ny, nx), dtype=np.float32)
    both[0][np.ix_(rows, cols)] = tmpl.w
    both[1][np.ix_(rows, cols)] = tmpl.support
    f = sfft.rfft2(both, workers=1)
    return np.conj(f[0]), np.conj(f[1])


def search_grid(angle_step: float = 1.0, log_kt_min: float = 0.0, log_kt_max: float = 3.4,
                log_kt_step: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Strikes -90..90 and kt = 10^(min..max) in m^2; the defaults are scarplet's grid."""
    n_ang = int(round(180.0 / angle_step)) + 1
    angles = np.round(np.linspace(-90.0, 90.0, n_ang), 10)
    n_kt = int(round((log_kt_max - log_kt_min) / log_kt_step)) + 1
    kts = 10.0 ** np.round(log_kt_min + log_kt_step * np.arange(n_kt), 10)
    return angles, kts


def lattice_profile(kt: float, h: float, m: int) -> np.ndarray:
    """Across-strike template W(t h), t = -m..m, on the strike-aligned lattice (float64)."""
    return profile(np.arange(-m, m + 1) * h, kt)
