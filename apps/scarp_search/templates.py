"""Windowed curvature templates of a diffusion-degraded scarp, and the default search grid."""

from __future__ import annotations

import numpy as np
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
