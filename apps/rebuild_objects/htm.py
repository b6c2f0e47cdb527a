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
  follow from X, C, D by closed formulas (|a_i + a_j| = sqrt(2 + 2 cos)); ~60 in-place
  operations on flat per-point arrays a level (see _htm_cone), no cross products.
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
CHUNK = 32_768  # points per pass of the recursion
assert all(np.linalg.det(_V[c]) > 0.999 for c in _CORNERS)  # D = 1 for every base triangle
# code = 4 r + k (k = 3: middle child) -> the child's digit and the new position of corner 0
_DIGIT = np.array([(k - r) % 3 if k < 3 else 3 for r in range(3) for k in range(4)], np.int8)
_NEW_R = np.array([k if k < 3 else r for r in range(3) for k in range(4)], np.int8)


def _htm_cone(p: np.ndarray, base: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, safe) by the cone-coordinate recursion; ids are the reference's where safe.

    Values are kept by position j = 0, 1, 2 in flat per-point arrays (preallocated, updated in
    place): the cone coordinates X_j (homogeneous: any positive per-point scale), Q_j = 2 + 2 C_j
    = |a_i + a_k|^2 for the side opposite position j, and D.  The corner held at position j
    changes with the children; r is the position of corner 0 (the child's digit is its corner
    index, (position - r) mod 3, looked up in a table).  With N_j = sqrt(Q_j), P = N_0 N_1 N_2:

    * corner child k (d_k > 0): X'_j = X_j / N_j for j != k, X'_k = d_k N_k / P (the closed
      formulas X_j N_l, d_k scaled by 1 / P); Q'_j = 2 + N_j (j != k), Q'_k = 2 + N_k 2t / P;
      D' = D N_k / P;
    * middle child: X'_j = -d_j N_j, Q'_j = 2 + N_j 2t / P, D' = 2 D / P;

    with t = 1 + C_0 + C_1 + C_2.  The safety bound min(X_k, |d_k|) D / (4 sum(X)) is kept as a
    running minimum over the levels and compared with V_SAFE once.
    """
    n = base.size
    x0, x1, x2 = np.einsum("nkc,nc->kn", _V[_CORNERS[base - 8]], p)  # p . (+-axis): exact
    xs = (x0.copy(), x1.copy(), x2.copy())
    q = (np.full(n, 2.0), np.full(n, 2.0), np.full(n, 2.0))  # C = 0: the octant's right angles
    det = np.ones(n)
    r = np.zeros(n, dtype=np.int8)
    ids = base.copy()
    acc = np.full(n, np.inf)  # running minimum of min(X, |d|) D / sum(X)
    s, h, m, w, tt, g, tmp = (np.empty(n) for _ in range(7))
    d = (np.empty(n), np.empty(n), np.empty(n))
    nn = (np.empty(n), np.empty(n), np.empty(n))
    e = (np.empty(n, dtype=bool), np.empty(n, dtype=bool), np.empty(n, dtype=bool))
    em = np.empty(n, dtype=bool)
    mid = np.empty(n, dtype=bool)
    code = np.empty(n, dtype=np.int8)
    digit = np.empty(n, dtype=np.int8)
    for _ in range(level):
        np.add(xs[0], xs[1], out=s)
        s += xs[2]
        np.multiply(s, 0.5, out=h)
        for j in range(3):
            np.subtract(xs[j], h, out=d[j])  # d_j / 2
            np.greater(d[j], 0.0, out=e[j])
        # safety: min(X_j, |d_j|) = 2 min(X_j / 2, |d_j / 2|)
        np.minimum(xs[0], xs[1], out=m)
        np.minimum(m, xs[2], out=m)
        m *= 0.5
        for j in range(3):
            np.abs(d[j], out=tmp)
            np.minimum(m, tmp, out=m)
        m *= det
        m /= s
        np.minimum(acc, m, out=acc)
        # child: k = j with d_j > 0 (at most one), else the middle child 3
        np.logical_or(e[0], e[1], out=mid)
        np.logical_or(mid, e[2], out=mid)
        np.logical_not(mid, out=mid)
        np.multiply(r, 4, out=code)
        code += e[1]
        code += 2 * e[2].view(np.int8)
        code += 3 * mid.view(np.int8)
        np.take(_DIGIT, code, out=digit)
        np.take(_NEW_R, code, out=r)
        ids *= 4
        ids += digit
        for j in range(3):
            np.sqrt(q[j], out=nn[j])
        np.multiply(nn[0], nn[1], out=w)
        w *= nn[2]  # P
        # N_k (corner child) or 2 (middle): D' = D * that / P
        np.copyto(tmp, 2.0)
        np.copyto(tmp, nn[0], where=e[0])
        np.copyto(tmp, nn[1], where=e[1])
        np.copyto(tmp, nn[2], where=e[2])
        det *= tmp
        det /= w
        # 2t / P = (Q_0 + Q_1 + Q_2 - 4) / P
        np.add(q[0], q[1], out=tt)
        tt += q[2]
        tt -= 4.0
        tt /= w
        # per-point scale of d in X': 2 / P for a corner child (d / 2 -> d N_k / P), -2 for
        # the middle child (-d N_j); 2 and 1 / P are exact scalings of the closed formulas
        np.divide(2.0, w, out=g)
        np.copyto(g, -2.0, where=mid)
        for j in range(3):
            np.logical_or(e[j], mid, out=em)
            np.multiply(d[j], nn[j], out=tmp)
            tmp *= g
            np.divide(xs[j], nn[j], out=xs[j])
            np.copyto(xs[j], tmp, where=em)
            # Q'_j = 2 + N_j (2t / P if em else 1)
            np.multiply(nn[j], tt, out=q[j])
            np.copyto(q[j], nn[j], where=~em)
            np.add(q[j], 2.0, out=q[j])
    return ids, acc > 2.0 * V_SAFE  # min(X, |d|) D / s > 4 V_SAFE, as m = min(X, |d|) / 2


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
