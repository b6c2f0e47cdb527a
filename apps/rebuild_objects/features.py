"""Lasair's ZTF object features (../shared/notes/anchors.md section 2), vectorized over objects.

All objects of a block are computed at once from one array of detections sorted by
(object, jd, candid): per-object values are segment reductions (``np.add.reduceat`` and friends
over contiguous rows), "latest X" values are last-index reductions, the colour is a join on
(object, night) keys.  No Python loop runs per object or per detection.

Decisions where the definitions leave room (tests/reference_features.py implements the same
rules with a plain loop):

* Band: fid 1 = g, fid 2 = r.  Lasair says "fid 1 = g; otherwise r", which would mix i-band
  (fid 3, present in ZTF's partnership data) magnitudes into the r statistics; that is clearly
  wrong, so an fid-3 detection counts for the detection-wide features (ncand, positions, jdmin,
  jdmax, ncandgp*, PS1 / ssnamenr) but for no g or r feature.  jdmax is therefore the latest
  detection, which is max(jdgmax, jdrmax) whenever there is no i-band detection.
* A detection with a NaN magpsf is a detection (counts, position, times, jdgmax / jdrmax) but not
  a magnitude measurement: min / max / mean, latest magnitude, dmdt, colour and the moving
  averages ignore it.
* dmdt: the last two (three) g measurements whatever their sign; NULL unless both of the pair are
  positive and their jd differ (duplicate jd gives dt = 0: NULL, never a division by zero).
* g_minus_r: the latest night (largest nid) with a positive g and a positive r measurement; within
  that night the latest g and the latest r.
* PS1 fields and ssnamenr: each from the last detection that has that field.
* ramean: ZTF positions of one object lie within arcseconds, so the mean is taken of RA offsets
  from the object's first detection wrapped to [-180, 180) (a plain mean of 359.9999 and 0.0001
  would give 180); rastd is 3600 * population std of those offsets (arcsec, no cos dec factor,
  as Lasair).  For objects away from RA = 0 this equals the plain mean and std.
* Objects with no detection (after the window) get no row.
"""

from __future__ import annotations

import numpy as np

from apps.rebuild_objects.galactic import radec_to_galactic
from apps.rebuild_objects.htm import htm_id
from apps.rebuild_objects.sources.base import Detections

G, R = 1, 2  # ZTF fid values
BANDS = (("g", G), ("r", R))
EMA_TAUS = (2.0, 8.0, 28.0)  # days: mag_g02, mag_g08, mag_g28 (anchors section 2)
RB_GOOD = 0.75  # ncandgp: rb or drb above this (anchors section 2)
RECENT_DAYS = (7.0, 14.0)  # ncandgp_7, ncandgp_14
HTM_LEVEL = 16

# Output columns, in schema/objects.sql order, with their kind: i = integer (never NULL),
# f = float (NaN = NULL), s = string (None = NULL).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("objectId", "s"), ("ncand", "i"),
    ("ramean", "f"), ("rastd", "f"), ("decmean", "f"), ("decstd", "f"),
    ("glonmean", "f"), ("glatmean", "f"), ("htm16", "i"),
    ("jdmin", "f"), ("jdmax", "f"), ("jdgmax", "f"), ("jdrmax", "f"),
    ("maggmin", "f"), ("maggmax", "f"), ("maggmean", "f"),
    ("magrmin", "f"), ("magrmax", "f"), ("magrmean", "f"), ("gmag", "f"), ("rmag", "f"),
    ("dmdt_g", "f"), ("dmdt_g_err", "f"), ("dmdt_g_2", "f"),
    ("dmdt_r", "f"), ("dmdt_r_err", "f"), ("dmdt_r_2", "f"),
    ("g_minus_r", "f"), ("jd_g_minus_r", "f"),
    ("ncandgp", "i"), ("ncandgp_7", "i"), ("ncandgp_14", "i"),
    ("sgmag1", "f"), ("srmag1", "f"), ("sgscore1", "f"), ("distpsnr1", "f"), ("ssnamenr", "s"),
    ("mag_g02", "f"), ("mag_g08", "f"), ("mag_g28", "f"),
    ("mag_r02", "f"), ("mag_r08", "f"), ("mag_r28", "f"),
)
COLUMN_NAMES = tuple(c for c, _ in COLUMNS)


def sort_and_window(det: Detections, window_days: float = 0.0):
    """Rows sorted by (object, jd, candid), cut to the window; objects left without rows dropped.

    Returns (ids, obj, cols, ssnamenr): ``obj`` is each row's object index into ``ids``.
    """
    n_obj = len(det.ids)
    obj = np.repeat(np.arange(n_obj, dtype=np.int64), det.counts)
    jd = det.cols["jd"]
    cols = dict(det.cols)
    ss = det.ssnamenr
    if np.isnan(jd).any():  # rare: NaN sorts last; the whole-block rule, as always
        rows = np.arange(obj.size) if det.candid is not None or (
            obj.size > 1 and np.any((np.diff(jd) < 0) & (obj[1:] == obj[:-1]))) else None
    else:
        rows = _unsorted_rows(obj, jd, det.candid)
    if rows is not None:
        # Only the objects with a row out of (jd, candid) order are sorted: objects are
        # contiguous, so sorting their rows in place equals the lexsort of the whole block.
        keys = (jd[rows], obj[rows]) if det.candid is None else \
            (det.candid[rows], jd[rows], obj[rows])
        src = rows[np.lexsort(keys)]  # stable: keeps the source's order on full ties
        cols = {k: _move(v, rows, src) for k, v in cols.items()}
        ss = _move(ss, rows, src)
    counts = det.counts
    if window_days and window_days > 0 and obj.size:
        # Rows are sorted by jd within the object: its last row holds the latest jd.
        last = np.cumsum(counts) - 1
        latest = np.where(counts > 0, cols["jd"][np.maximum(last, 0)], np.nan)
        keep = cols["jd"] > latest[obj] - window_days
        cols = {k: v[keep] for k, v in cols.items()}
        ss, obj = ss[keep], obj[keep]
        counts = np.bincount(obj, minlength=n_obj)
    present = counts > 0
    renumber = np.cumsum(present) - 1
    return det.ids[present], renumber[obj], cols, ss


def _unsorted_rows(obj: np.ndarray, jd: np.ndarray, candid: np.ndarray | None):
    """Row indices of the objects whose rows are not in (jd, candid) order; None if all are."""
    if obj.size < 2:
        return None
    same = obj[1:] == obj[:-1]
    with np.errstate(invalid="ignore"):
        down = jd[1:] < jd[:-1]
        if candid is not None:
            down |= (jd[1:] == jd[:-1]) & (candid[1:] < candid[:-1])
    down &= same
    if not down.any():
        return None
    bad = np.zeros(int(obj[-1]) + 1, dtype=bool)
    bad[obj[1:][down]] = True
    return np.flatnonzero(bad[obj])


def _move(values: np.ndarray, rows: np.ndarray, src: np.ndarray) -> np.ndarray:
    """A copy of values with values[rows] replaced by values[src]."""
    out = values.copy()
    out[rows] = values[src]
    return out


def _last_index(mask: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per object, the row index of the last row where ``mask`` is true, -1 if none."""
    idx = np.where(mask, np.arange(mask.size), -1)
    return np.maximum.reduceat(idx, starts) if starts.size else np.empty(0, dtype=np.int64)


def _take(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """values[idx] as float, NaN where idx is -1."""
    out = np.full(idx.shape, np.nan)
    ok = idx >= 0
    out[ok] = values[idx[ok]]
    return out


def _last_k(mask: np.ndarray, obj: np.ndarray, n_obj: int, k: int) -> list[np.ndarray]:
    """Per object, row indices of the last, second-last, ... k-th last masked rows (-1: none)."""
    rows = np.flatnonzero(mask)
    o = obj[rows]
    total = np.bincount(o, minlength=n_obj)
    # Rank from the end among the object's masked rows: 1 = last.
    before = np.cumsum(total) - total  # masked rows of earlier objects
    rank_from_end = total[o] - (np.arange(rows.size) - before[o])
    out = []
    for j in range(1, k + 1):
        sel = rank_from_end == j
        r = np.full(n_obj, -1, dtype=np.int64)
        r[o[sel]] = rows[sel]
        out.append(r)
    return out


def _seg_mean(values: np.ndarray, mask: np.ndarray | None, obj: np.ndarray, n_obj: int,
              counts: np.ndarray | None = None) -> np.ndarray:
    """Per-object mean of values[mask] (mask None: all rows, whose per-object counts are given);
    sums run in row order (bincount), NaN where an object has no row."""
    if mask is None:
        n = counts
        s = np.bincount(obj, weights=values, minlength=n_obj)
    else:
        n = np.bincount(obj[mask], minlength=n_obj)
        s = np.bincount(obj[mask], weights=values[mask], minlength=n_obj)
    return np.divide(s, n, out=np.full(n_obj, np.nan), where=n > 0)


def _dmdt(mag, err, jd, pos, newer, older):
    """(m_older - m_newer) / (jd_newer - jd_older) and its error; NaN unless both positive, dt > 0."""
    ok = (newer >= 0) & (older >= 0)
    a, b = np.where(ok, newer, 0), np.where(ok, older, 0)
    dt = jd[a] - jd[b]
    ok &= pos[a] & pos[b] & (dt > 0)
    dt = np.where(ok, dt, 1.0)
    rate = np.where(ok, (mag[b] - mag[a]) / dt, np.nan)
    rate_err = np.where(ok, np.sqrt(err[b] ** 2 + err[a] ** 2) / dt, np.nan)
    return rate, rate_err


def _ema(mag, jd, meas, obj, n_obj, taus):
    """Moving averages m_k = f_k m_{k-1} + (1 - f_k) x_k, f_k = exp(-(jd_k - jd_{k-1}) / tau),
    m_0 = 0, jd_0 = 0, over each object's measurements in one band: the value after the last one.

    Unrolled, m_L = sum_k x_k (1 - f_k) prod_{j>k} f_j, and the product telescopes to
    exp(-(jd_L - jd_k) / tau).  Every factor is <= 1 (no division by a running product that
    underflows, the flaw of the cumsum(x / P) form), so one weighted segment sum gives the final
    value exactly to rounding; only that value is a feature, so no full scan is needed.
    """
    rows = np.flatnonzero(meas)
    o, x, t = obj[rows], mag[rows], jd[rows]
    first = np.ones(rows.size, dtype=bool)
    first[1:] = o[1:] != o[:-1]
    prev = np.empty_like(t)
    prev[1:] = t[:-1]
    prev[first] = 0.0  # the definition starts from jd_prev = 0
    n = np.bincount(o, minlength=n_obj)
    last_t = np.full(n_obj, np.nan)
    last_t[o] = t  # rows are in jd order: the last write per object wins
    out = []
    for tau in taus:
        w = (1.0 - np.exp(-(t - prev) / tau)) * np.exp(-(last_t[o] - t) / tau)
        s = np.bincount(o, weights=x * w, minlength=n_obj)
        out.append(np.where(n > 0, s, np.nan))
    return out


def _colour(mag, jd, nid, gp, rp, obj, n_obj):
    """g - r and the g jd on the latest night with a positive g and a positive r measurement."""
    g_minus_r = np.full(n_obj, np.nan)
    jd_g = np.full(n_obj, np.nan)
    if not (gp.any() and rp.any()):
        return g_minus_r, jd_g
    lo = int(nid.min())
    span = int(nid.max()) - lo + 1
    key = obj * span + (nid - lo)

    def latest(mask):
        rows = np.flatnonzero(mask)[::-1]  # reversed: first occurrence = latest in jd order
        keys, first = np.unique(key[rows], return_index=True)
        return keys, rows[first]

    kg, rg = latest(gp)
    kr, rr = latest(rp)
    common, ig, ir = np.intersect1d(kg, kr, assume_unique=True, return_indices=True)
    if common.size == 0:
        return g_minus_r, jd_g
    o = common // span
    last = np.ones(common.size, dtype=bool)  # keys ascend: the object's last key = latest night
    last[:-1] = o[1:] != o[:-1]
    gi, ri = rg[ig[last]], rr[ir[last]]
    g_minus_r[o[last]] = mag[gi] - mag[ri]
    jd_g[o[last]] = jd[gi]
    return g_minus_r, jd_g


def compute_features(det: Detections, window_days: float = 0.0) -> tuple[np.ndarray, dict]:
    """Features of every object of ``det`` that has a detection in the window.

    ``window_days`` > 0 keeps detections with jd > jdmax - window_days per object; 0 keeps the
    whole light curve.  Returns (objectIds, {column: array}) with COLUMNS' names and kinds.
    """
    ids, obj, c, ss = sort_and_window(det, window_days)
    n_obj = ids.size
    counts = np.bincount(obj, minlength=n_obj)
    starts = np.cumsum(counts) - counts
    ends = starts + counts - 1
    jd, mag, err, fid = c["jd"], c["magpsf"], c["sigmapsf"], c["fid"]
    pos = c["positive"]
    f: dict[str, np.ndarray] = {"objectId": ids, "ncand": counts.astype(np.int64)}

    ra0 = c["ra"][starts] if n_obj else np.empty(0)
    dra = (c["ra"] - ra0[obj] + 180.0) % 360.0 - 180.0
    mean_dra = _seg_mean(dra, None, obj, n_obj, counts)
    f["ramean"] = (ra0 + mean_dra) % 360.0
    f["rastd"] = 3600.0 * np.sqrt(_seg_mean((dra - mean_dra[obj]) ** 2, None, obj, n_obj, counts))
    f["decmean"] = _seg_mean(c["dec"], None, obj, n_obj, counts)
    f["decstd"] = 3600.0 * np.sqrt(
        _seg_mean((c["dec"] - f["decmean"][obj]) ** 2, None, obj, n_obj, counts))
    f["glonmean"], f["glatmean"] = radec_to_galactic(f["ramean"], f["decmean"])
    f["htm16"] = htm_id(f["ramean"], f["decmean"], HTM_LEVEL)

    f["jdmin"] = jd[starts]
    f["jdmax"] = jdmax = jd[ends]
    finite = np.isfinite(mag)
    for b, fid_b in BANDS:
        in_band = fid == fid_b
        meas = in_band & finite
        f[f"jd{b}max"] = _take(jd, _last_index(in_band, starts))
        with np.errstate(invalid="ignore"):
            f[f"mag{b}min"] = np.fmin.reduceat(np.where(meas, mag, np.nan), starts) \
                if n_obj else np.empty(0)
            f[f"mag{b}max"] = np.fmax.reduceat(np.where(meas, mag, np.nan), starts) \
                if n_obj else np.empty(0)
        f[f"mag{b}mean"] = _seg_mean(mag, meas, obj, n_obj)
        i1, i2, i3 = _last_k(meas, obj, n_obj, 3)
        f[f"{b}mag"] = _take(mag, i1)
        f[f"dmdt_{b}"], f[f"dmdt_{b}_err"] = _dmdt(mag, err, jd, pos, i1, i2)
        f[f"dmdt_{b}_2"], _ = _dmdt(mag, err, jd, pos, i2, i3)
        for tau, m in zip(EMA_TAUS, _ema(mag, jd, meas, obj, n_obj, EMA_TAUS), strict=True):
            f[f"mag_{b}{int(tau):02d}"] = m

    finite_pos = pos & finite
    f["g_minus_r"], f["jd_g_minus_r"] = _colour(
        mag, jd, c["nid"], finite_pos & (fid == G), finite_pos & (fid == R), obj, n_obj)

    with np.errstate(invalid="ignore"):
        good = pos & ((c["rb"] > RB_GOOD) | (c["drb"] > RB_GOOD))
    f["ncandgp"] = np.bincount(obj[good], minlength=n_obj).astype(np.int64)
    age = jdmax[obj] - jd
    for days in RECENT_DAYS:
        f[f"ncandgp_{int(days)}"] = np.bincount(
            obj[good & (age < days)], minlength=n_obj).astype(np.int64)

    for name in ("sgmag1", "srmag1", "sgscore1", "distpsnr1"):
        f[name] = _take(c[name], _last_index(np.isfinite(c[name]), starts))
    has_ss = np.not_equal(ss, None)
    ss_idx = _last_index(has_ss, starts)
    ss_out = np.full(n_obj, None, dtype=object)
    ss_out[ss_idx >= 0] = ss[ss_idx[ss_idx >= 0]]
    f["ssnamenr"] = ss_out
    return ids, {name: f[name] for name in COLUMN_NAMES}
