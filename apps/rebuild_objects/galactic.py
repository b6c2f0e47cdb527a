"""Equatorial (ICRS, degrees) to galactic coordinates (degrees), vectorized."""

from __future__ import annotations

import numpy as np

# Rotation taking an ICRS unit vector to a galactic one (g = M @ v).  Computed with astropy 8.0
# (SkyCoord(...).galactic of the three ICRS axes: the IAU 1958 galactic system defined in FK4
# B1950 and carried to ICRS through FK5 J2000).  It agrees with the Hipparcos catalogue's matrix
# A_G (ESA 1997, vol. 1, sec. 1.5.3) to 1e-8; tests check it against astropy output and the
# galactic centre / north galactic pole.
ICRS_TO_GALACTIC = np.array([
    [-0.05487565771259163, -0.8734370519556159, -0.48383507361671546],
    [0.4941094371927268, -0.44482972122329517, 0.7469821839866676],
    [-0.8676661375596576, -0.19807633727300059, 0.45598381368730156],
])


def radec_to_galactic(ra_deg: np.ndarray, dec_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Galactic longitude in [0, 360) and latitude in [-90, 90], degrees, of ICRS (ra, dec)."""
    ra = np.radians(np.asarray(ra_deg, dtype=float))
    dec = np.radians(np.asarray(dec_deg, dtype=float))
    cd = np.cos(dec)
    v = np.stack([cd * np.cos(ra), cd * np.sin(ra), np.sin(dec)])
    # Element by element, not ``M @ v`` (BLAS): a matrix product's summation order depends on
    # the array's length, so an object's last digit would depend on its block (a split task's
    # shards must hold the unsplit shard's bytes).
    m, v = ICRS_TO_GALACTIC, v.reshape(3, -1)
    x, y, z = (m[i, 0] * v[0] + m[i, 1] * v[1] + m[i, 2] * v[2] for i in range(3))
    lon = np.degrees(np.arctan2(y, x)) % 360.0
    lat = np.degrees(np.arctan2(z, np.hypot(x, y)))
    return lon.reshape(np.shape(ra)), lat.reshape(np.shape(ra))
