"""Hierarchical Triangular Mesh ids (Kunszt, Szalay & Thakar 2001), vectorized over points.

Follows the JHU reference implementation that Lasair's ``htm16`` comes from (SpatialIndex
``idByPoint``): eight base triangles S0..S3 = ids 8..11, N0..N3 = 12..15, each split into four
children per level (child c of id i is 4 i + c), children tested in the order 0, 1, 2, 3 with
the reference code's tolerance, so points on an edge land where the C++ code puts them.  A
level-L id lies in [8 * 4**L, 16 * 4**L).  Checked against lsst-sphgeom's independent
HtmPixelization in the tests.

Speed: the reference recursion (``htm_id_reference``, kept as it was) costs ~4 us a point.
``htm_id`` runs an exact-arithmetic equivalent first and uses the reference only for the few
points it cannot vouch for, so its ids are the reference's, bit for bit:

* Per point it keeps the cone coordinates X of p in the current triangle (p = sum X_k a_k over
  the unit corner vectors a_k), the cosines C of the triangle's sides and D = det(a0, a1, a2).
  With w_i the normalized midpoints, det(w2, w1, p) is proportional to X0 - X1 - X2, so the child
  is the corner k with 2 X_k > X0 + X1 + X2 (else the middle child 3), and the child's X, C, D
  follow from X, C, D by closed formulas (|a_i + a_j| = sqrt(2 + 2 cos)); ~40 array operations
  a level instead of ~200, no cross products.
* Each of the reference's nine tests det(e1, e2, p) at a level equals one of X_k or d_k =
  2 X_k - sum(X) times D / (|a_i + a_j| |P|) or D / (|a_i + a_j| |a_k + a_l| |P|); all are at
  least min(X_k, |d_k|) D / (4 sum(X)).  When that bound is above V_SAFE = 1e-13 at every level,
  the reference's rounded tests (error < 1e-15 per test, vertex rounding < 1e-15 on the test
  at any level, tolerance 1e-15) all have the exact sign, so it picks the same child.  Points
  nearer than that to any edge (within ~2e-4 of a level-16 trixel's size; ~0.5% of random
  points), or on an octant plane, are recomputed by the reference.
"""

from __future__ import annotations

import numpy as np

# Tolerance of the JHU code's isInside (gEpsilon in SpatialGeneral.h).
EPSILON = 1.0e-15

_V = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0],
               [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])
# id -> corner vertices (indices into _V), from the HTM papers / JHU SpatialIndex.
_BASES = {8: (1, 5, 2), 9: (2, 5, 3), 10: (3, 5, 4), 11: (4, 5, 1),
          12: (1, 0, 4), 13: (4, 0, 3), 14: (3, 0, 2), 15: (2, 0, 1)}


def _unit(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    ra = np.radians(ra_deg)
    dec = np.radians(dec_deg)
    cd = np.cos(dec)
    return np.stack([cd * np.cos(ra), cd * np.sin(ra), np.sin(dec)], axis=-1)


def _inside(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """p inside spherical triangle (a, b, c) counter-clockwise, with the reference tolerance."""
    return ((np.einsum("ij,ij->i", np.cross(a, b), p) >= -EPSILON)
            & (np.einsum("ij,ij->i", np.cross(b, c), p) >= -EPSILON)
            & (np.einsum("ij,ij->i", np.cross(c, a), p) >= -EPSILON))


def _mid(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    m = a + b
    return m / np.linalg.norm(m, axis=1)[:, None]


def htm_id_reference(ra_deg: np.ndarray, dec_deg: np.ndarray, level: int = 16) -> np.ndarray:
    """HTM id (int64) at ``level`` of each (ra, dec) in degrees; -1 where ra or dec is NaN.

    The JHU recursion as written (see the module docstring): every test on every point."""
    ra = np.atleast_1d(np.asarray(ra_deg, dtype=float))
    dec = np.atleast_1d(np.asarray(dec_deg, dtype=float))
    ok = np.isfinite(ra) & np.isfinite(dec)
    p = _unit(ra[ok], dec[ok])
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    base = _start_pane(x, y, z)
    corners = _CORNERS[base - 8]
    v0, v1, v2 = _V[corners[:, 0]], _V[corners[:, 1]], _V[corners[:, 2]]
    ids = base
    for _ in range(level):
        w0, w1, w2 = _mid(v1, v2), _mid(v0, v2), _mid(v0, v1)
        c0 = _inside(p, v0, w2, w1)
        c1 = ~c0 & _inside(p, v1, w0, w2)
        c2 = ~c0 & ~c1 & _inside(p, v2, w1, w0)
        child = np.where(c0, 0, np.where(c1, 1, np.where(c2, 2, 3)))
        ids = ids * 4 + child
        k0, k1, k2 = c0[:, None], c1[:, None], c2[:, None]
        n0 = np.where(k0, v0, np.where(k1, v1, np.where(k2, v2, w0)))
        n1 = np.where(k0, w2, np.where(k1, w0, np.where(k2, w1, w1)))
        n2 = np.where(k0, w1, np.where(k1, w2, np.where(k2, w0, w2)))
        v0, v1, v2 = n0, n1, n2
    out = np.full(ra.shape, -1, dtype=np.int64)
    out[ok] = ids
    return out


def _start_pane(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Base triangle by octant, exactly as the reference code's startpane()."""
    north = z >= 0
    return np.select(
        [(x > 0) & (y >= 0), (x <= 0) & (y > 0), (x < 0) & (y <= 0)],
        [np.where(north, 15, 8), np.where(north, 14, 9), np.where(north, 13, 10)],
        default=np.where(north, 12, 11),
    ).astype(np.int64)


_CORNERS = np.array([_BASES[b] for b in range(8, 16)])
V_SAFE = 1e-13  # see the module docstring
CHUNK = 16_384  # points per pass of the recursion
assert all(np.linalg.det(_V[c]) > 0.999 for c in _CORNERS)  # D = 1 for every base triangle
_NEXT = np.array([1, 2, 0])  # position j -> j + 1 (mod 3)
_PREV = np.array([2, 0, 1])  # position j -> j + 2 (mod 3)


def _htm_cone(p: np.ndarray, base: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, safe) by the cone-coordinate recursion; ids are the reference's where safe.

    Values are kept by position: the corner held at position j changes with the children, and r
    is the position of corner 0 (the child's digit is its corner index, (position - r) mod 3).
    """
    n = base.size
    x = np.einsum("nkc,nc->kn", _V[_CORNERS[base - 8]], p)  # p . (+-axis): exact
    c = np.zeros((3, n))
    det = np.ones(n)
    r = np.zeros(n, dtype=np.int64)
    ids = base.copy()
    safe = np.ones(n, dtype=bool)
    j = np.arange(3)[:, None]
    for _ in range(level):
        s = x[0] + x[1] + x[2]
        d = 2.0 * x - s
        norm = np.sqrt(2.0 + 2.0 * c)  # |a_i + a_j| of the side opposite each position
        safe &= np.minimum(x.min(axis=0), np.abs(d).min(axis=0)) * det > (4.0 * V_SAFE) * s
        k = np.where(d[0] > 0, 0, np.where(d[1] > 0, 1, np.where(d[2] > 0, 2, 3)))
        mid = k == 3
        ids = ids * 4 + np.where(mid, 3, (k - r) % 3)
        r = np.where(mid, r, k)
        n_next, n_prev = norm[_NEXT], norm[_PREV]
        rel = (j - k) % 3  # 0: the kept corner, 1 and 2: the corners after it
        corner = (rel == 0) & ~mid
        x = np.where(mid, -d * norm,
                     np.where(corner, d, x * np.where(rel == 1, n_next, n_prev)))
        t = 1.0 + c[0] + c[1] + c[2]
        c = np.where(mid | corner, t / (n_next * n_prev), 0.5 * norm)
        n_k = np.where(k == 0, norm[0], np.where(k == 1, norm[1], norm[2]))
        det = det * np.where(mid, 2.0, n_k) / (norm[0] * norm[1] * norm[2])
    return ids, safe


def htm_id(ra_deg: np.ndarray, dec_deg: np.ndarray, level: int = 16) -> np.ndarray:
    """HTM id (int64) at ``level`` of each (ra, dec) in degrees; -1 where ra or dec is NaN.

    Bit for bit the ids of htm_id_reference (see the module docstring), ~10x faster."""
    ra = np.atleast_1d(np.asarray(ra_deg, dtype=float))
    dec = np.atleast_1d(np.asarray(dec_deg, dtype=float))
    ok = np.isfinite(ra) & np.isfinite(dec)
    p = _unit(ra[ok], dec[ok])
    base = _start_pane(p[:, 0], p[:, 1], p[:, 2])
    ids = np.empty(base.size, dtype=np.int64)
    safe = np.empty(base.size, dtype=bool)
    for lo in range(0, base.size, CHUNK):  # chunks that stay in the CPU cache
        ids[lo:lo + CHUNK], safe[lo:lo + CHUNK] = _htm_cone(p[lo:lo + CHUNK],
                                                            base[lo:lo + CHUNK], level)
    redo = np.flatnonzero(~safe)
    if redo.size:
        ids[redo] = htm_id_reference(ra[ok][redo], dec[ok][redo], level)
    out = np.full(ra.shape, -1, dtype=np.int64)
    out[ok] = ids
    return out
