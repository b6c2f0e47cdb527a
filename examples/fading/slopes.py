"""The science of the fading example: a weighted straight-line fit per object and band."""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def slope(jd: np.ndarray, mag: np.ndarray, sigma: np.ndarray) -> tuple[float, float]:
    """Weighted least-squares slope of ``mag`` against ``jd`` (mag/day) and its 1-sigma error."""
    w = 1.0 / np.maximum(sigma, 1e-3) ** 2  # ZTF's sigmapsf floor is ~0.01; guard zeros
    t = jd - jd.mean()
    sw, st, sm = w.sum(), (w * t).sum(), (w * mag).sum()
    stt, stm = (w * t * t).sum(), (w * t * mag).sum()
    den = sw * stt - st * st
    if den <= 0:
        return float("nan"), float("nan")
    return float((sw * stm - st * sm) / den), float(np.sqrt(sw / den))


def fading_rows(rows: list[dict], rate: float, days: float, min_points: int,
                min_span: float = 1.0) -> list[list]:
    """``[objectId, fid, n, days, slope, slope_err, last_mag]`` for each band fading faster
    than ``rate`` mag/day over the object's last ``days`` days (positive detections only), from
    at least ``min_points`` points spanning at least ``min_span`` days."""
    groups: dict[tuple[str, int], list[tuple[float, float, float]]] = defaultdict(list)
    last_jd: dict[str, float] = {}
    for r in rows:
        if r.get("isdiffpos") not in ("t", "1") or not r.get("magpsf"):
            continue
        jd = float(r["jd"])
        groups[(r["objectId"], int(r["fid"]))].append(
            (jd, float(r["magpsf"]), float(r["sigmapsf"] or 0.1)))
        last_jd[r["objectId"]] = max(jd, last_jd.get(r["objectId"], -np.inf))
    out = []
    for (oid, fid), pts in sorted(groups.items()):
        a = np.array([p for p in pts if p[0] >= last_jd[oid] - days])
        if len(a) < min_points or a[:, 0].max() - a[:, 0].min() < min_span:
            continue
        order = np.argsort(a[:, 0])
        a = a[order]
        s, e = slope(a[:, 0], a[:, 1], a[:, 2])
        if np.isfinite(s) and s > rate:
            out.append([oid, fid, len(a), round(float(a[-1, 0] - a[0, 0]), 4), round(s, 6),
                        round(e, 6), round(float(a[-1, 1]), 4)])
    return out
