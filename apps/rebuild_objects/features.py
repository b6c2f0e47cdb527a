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
* PS1 fields: each from the last detection that has that field.
* ssnamenr: from the latest detection itself, NULL when it matches no asteroid even if an earlier
  detection did (Lasair's own ``create_features``, lsst-uk/lasair4
  ``pipeline/filter/features_ZTF/insert_query.py``; anchors.md section 2): a long-lived stationary
  source must not be tagged as an asteroid by one old chance match.
* ramean: ZTF positions of one object lie within arcseconds, so the mean is taken of RA offsets
  from the object's first detection wrapped to [-180, 180) (a plain mean of 359.9999 and 0.0001
  would give 180); rastd is 3600 * population std of those offsets (arcsec, no cos dec factor,
  as Lasair).  For objects away from RA = 0 this equals the plain mean and std.
* Objects with no detection (after the window) get no row.
"""

from __future__ import annotations

import numpy as np
from lasair_parallel.apps.rebuild_objects.galactic import radec_to_galactic
from lasair_parallel.apps.rebuild_objects.htm import htm_id
from lasair_parallel.apps.rebuild_objects.sources.base import LATE_COLUMNS, Deferred, Detections

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


def _last_of_runs(keys: np.ndarray) -> np.ndarray:
    """Mask of the last element of each run of equal values in ``keys``."""
    last = np.empty(keys.size, dtype=bool)
    if keys.size:
        np.not_equal(keys[1:], keys[:-1], out=last[:-1])
        last[-1] = True
    return last


def _last_index(mask: np.ndarray, obj: np.ndarray, n_obj: int) -> np.ndarray:
    """Per object, the row index of the last row where ``mask`` is true, -1 if none.

    Rows are grouped by object: the last masked row of each object is the last of its run."""
    rows = np.flatnonzero(mask)
    o = obj[rows]
    last = _last_of_runs(o)
    out = np.full(n_obj, -1, dtype=np.int64)
    out[o[last]] = rows[last]
    return out


def _take(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """values[idx] as float, NaN where idx is -1."""
    out = np.full(idx.shape, np.nan)
    ok = idx >= 0
    out[ok] = values[idx[ok]]
    return out


def _seg_mean(values: np.ndarray, obj: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-object mean of values over all rows (every object has one): sums run in row order
    (bincount)."""
    return np.bincount(obj, weights=values, minlength=counts.size) / counts


def _dmdt(mag, err, jd, pos, newer, older, ok, with_err=True):
    """(m_older - m_newer) / (jd_newer - jd_older) and its error at the objects where ``ok``
    (both rows exist); NaN unless both positive and dt > 0.  Returns (where, rate, rate_err)."""
    a, b = newer[ok], older[ok]
    dt = jd[a] - jd[b]
    good = pos[a] & pos[b] & (dt > 0)
    a, b, dt = a[good], b[good], dt[good]
    where = np.flatnonzero(ok)[good]
    rate = (mag[b] - mag[a]) / dt
    rate_err = np.sqrt(err[b] ** 2 + err[a] ** 2) / dt if with_err else None
    return where, rate, rate_err


def _ema(x, t, o, first, end, has, n_obj, taus):
    """Moving averages m_k = f_k m_{k-1} + (1 - f_k) x_k, f_k = exp(-(jd_k - jd_{k-1}) / tau),
    m_0 = 0, jd_0 = 0, over each object's measurements in one band: the value after the last one.

    ``x``, ``t``, ``o``: the band's measurements (grouped by object, jd order), ``first``: the
    first of each object, ``end``: each object's last one (for the objects with ``has``).
    Unrolled, m_L = sum_k x_k (1 - f_k) prod_{j>k} f_j, and the product telescopes to
    exp(-(jd_L - jd_k) / tau).  Every factor is <= 1 (no division by a running product that
    underflows, the flaw of the cumsum(x / P) form), so one weighted segment sum gives the final
    value exactly to rounding; only that value is a feature, so no full scan is needed.
    """
    prev = np.empty_like(t)
    prev[1:] = t[:-1]
    prev[first] = 0.0  # the definition starts from jd_prev = 0
    step = t - prev
    np.negative(step, out=step)
    last_t = np.empty(n_obj)
    last_t[has] = t[end]
    age = last_t[o]
    age -= t
    np.negative(age, out=age)
    w, v = np.empty_like(t), np.empty_like(t)
    out = []
    for tau in taus:
        np.divide(step, tau, out=w)
        np.exp(w, out=w)
        np.subtract(1.0, w, out=w)
        np.divide(age, tau, out=v)
        np.exp(v, out=v)
        w *= v
        w *= x
        out.append(np.where(has, np.bincount(o, weights=w, minlength=n_obj), np.nan))
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


def _colour_runs(mag, jd, nid, gp, rp, obj, n_obj):
    """_colour by runs: when nid never decreases within an object (rows in jd order; else
    _colour's sort), the night's rows are one run of (object, nid)."""
    g_minus_r = np.full(n_obj, np.nan)
    jd_g = np.full(n_obj, np.nan)
    if not (gp.any() and rp.any()):
        return g_minus_r, jd_g
    rows = np.flatnonzero(gp | rp)
    o, night = obj[rows], nid[rows]
    if np.any((night[1:] < night[:-1]) & (o[1:] == o[:-1])):
        return _colour(mag, jd, nid, gp, rp, obj, n_obj)
    new = np.empty(rows.size, dtype=bool)
    new[0] = True
    new[1:] = (o[1:] != o[:-1]) | (night[1:] != night[:-1])
    run = np.cumsum(new) - 1
    n_run = int(run[-1]) + 1
    last = np.empty(rows.size, dtype=bool)
    last[:-1] = new[1:]
    last[-1] = True
    latest = []
    for mask in (gp[rows], rp[rows]):
        sel = np.flatnonzero(mask)
        rs = run[sel]
        end = _last_of_runs(rs)
        idx = np.full(n_run, -1, dtype=np.int64)
        idx[rs[end]] = rows[sel[end]]  # the latest g (r) row of each night
        latest.append(idx)
    both = np.flatnonzero((latest[0] >= 0) & (latest[1] >= 0))
    if both.size == 0:
        return g_minus_r, jd_g
    ob = o[new][both]  # nights ascend within an object: its last such night is the latest
    end = _last_of_runs(ob)
    gi, ri = latest[0][both[end]], latest[1][both[end]]
    g_minus_r[ob[end]] = mag[gi] - mag[ri]
    jd_g[ob[end]] = jd[gi]
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
    dra = c["ra"] - ra0[obj]
    dra += 180.0
    if dra.size and not (dra.min() >= 0.0 and dra.max() < 360.0):  # else % 360 is exact
        dra %= 360.0
    dra -= 180.0
    mean_dra = _seg_mean(dra, obj, counts)
    f["ramean"] = (ra0 + mean_dra) % 360.0
    dra -= mean_dra[obj]
    np.square(dra, out=dra)
    f["rastd"] = 3600.0 * np.sqrt(_seg_mean(dra, obj, counts))
    f["decmean"] = _seg_mean(c["dec"], obj, counts)
    ddec = c["dec"] - f["decmean"][obj]
    np.square(ddec, out=ddec)
    f["decstd"] = 3600.0 * np.sqrt(_seg_mean(ddec, obj, counts))
    f["glonmean"], f["glatmean"] = radec_to_galactic(f["ramean"], f["decmean"])
    f["htm16"] = htm_id(f["ramean"], f["decmean"], HTM_LEVEL)

    f["jdmin"] = jd[starts]
    f["jdmax"] = jdmax = jd[ends]
    finite = np.isfinite(mag)
    meas_rows = {}
    for b, fid_b in BANDS:
        meas = fid == fid_b
        f[f"jd{b}max"] = _take(jd, _last_index(meas, obj, n_obj))
        meas &= finite
        meas_rows[b] = meas
        # The band's measurements, compacted: still grouped by object, in jd order.
        rows = np.flatnonzero(meas)
        o, x, t = obj[rows], mag[rows], jd[rows]
        n = np.bincount(o, minlength=n_obj)
        has = n > 0
        last = _last_of_runs(o)
        end = np.flatnonzero(last)  # each object's last measurement (objects with ``has``)
        first = np.empty(rows.size, dtype=bool)
        if rows.size:
            first[0] = True
            first[1:] = last[:-1]
        oh = o[end]
        for name, ufunc in (("min", np.minimum), ("max", np.maximum)):
            out = np.full(n_obj, np.nan)
            if rows.size:
                out[oh] = ufunc.reduceat(x, np.flatnonzero(first))
            f[f"mag{b}{name}"] = out
        total = np.bincount(o, weights=x, minlength=n_obj)
        f[f"mag{b}mean"] = np.divide(total, n, out=np.full(n_obj, np.nan), where=has)
        latest = np.full(n_obj, np.nan)
        latest[oh] = x[end]
        f[f"{b}mag"] = latest
        e, p = err[rows], pos[rows]
        nh = n[oh]
        rate, rate_err, rate2 = (np.full(n_obj, np.nan) for _ in range(3))
        w, r, re = _dmdt(x, e, t, p, end, end - 1, nh >= 2)
        rate[oh[w]], rate_err[oh[w]] = r, re
        w, r, _ = _dmdt(x, e, t, p, end - 1, end - 2, nh >= 3, with_err=False)
        rate2[oh[w]] = r
        f[f"dmdt_{b}"], f[f"dmdt_{b}_err"], f[f"dmdt_{b}_2"] = rate, rate_err, rate2
        for tau, m in zip(EMA_TAUS, _ema(x, t, o, first, end, has, n_obj, EMA_TAUS),
                          strict=True):
            f[f"mag_{b}{int(tau):02d}"] = m

    gp, rp = meas_rows["g"] & pos, meas_rows["r"] & pos
    f["g_minus_r"], f["jd_g_minus_r"] = _colour_runs(mag, jd, c["nid"], gp, rp, obj, n_obj)

    with np.errstate(invalid="ignore"):
        good = (c["rb"] > RB_GOOD) | (c["drb"] > RB_GOOD)
    good &= pos
    rows = np.flatnonzero(good)
    og = obj[rows]
    f["ncandgp"] = np.bincount(og, minlength=n_obj).astype(np.int64)
    age = jdmax[og] - jd[rows]
    for days in RECENT_DAYS:
        f[f"ncandgp_{int(days)}"] = np.bincount(
            og[age < days], minlength=n_obj).astype(np.int64)

    mask = idx = None
    for name in LATE_COLUMNS:
        m = c[name].finite() if isinstance(c[name], Deferred) else np.isfinite(c[name])
        if mask is None or not np.array_equal(m, mask):  # the PS1 fields are NULL together
            mask, idx = m, _last_index(m, obj, n_obj)
        f[name] = _take(c[name], idx)
    # The latest detection's own value (None = no match), as Lasair: see the module docstring.
    ss_out = np.full(n_obj, None, dtype=object)
    if n_obj:
        ss_out[:] = ss[ends]
    f["ssnamenr"] = ss_out
    return ids, {name: f[name] for name in COLUMN_NAMES}
