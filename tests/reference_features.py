"""Plain per-object reference for Lasair's features: a Python loop written from the definitions.

Mirrors anchors.md section 2 and the decisions documented in apps/rebuild_objects/features.py
(fid 1 = g, fid 2 = r, fid 3 in neither band; NaN magnitudes are not measurements; duplicate jd
gives NULL dmdt; each PS1 field from the last detection having it; ssnamenr from the latest
detection itself, as Lasair).  It is deliberately naive:
one object at a time, one detection at a time, no shared code with the vectorized version
except the coordinate conversions (tested separately against astropy and lsst-sphgeom).
"""

from __future__ import annotations

import math

import numpy as np
from lasair_parallel.apps.rebuild_objects.galactic import radec_to_galactic
from lasair_parallel.apps.rebuild_objects.htm import htm_id

NULL = None


def reference_features(rows: list[dict], window_days: float = 0.0) -> dict | None:
    """Features of one object from its detection dicts (keys as the `candidates` table).

    ``positive`` must be a bool per row.  Returns None when no detection is left.
    """
    dets = sorted((r for r in rows if r.get("candid") is not None),
                  key=lambda r: (r["jd"], r["candid"]))
    if window_days and dets:
        newest = max(r["jd"] for r in dets)
        dets = [r for r in dets if r["jd"] > newest - window_days]
    if not dets:
        return None
    out: dict = {"objectId": dets[0]["objectId"], "ncand": len(dets)}

    ra0 = dets[0]["ra"]
    dra = np.array([(r["ra"] - ra0 + 180.0) % 360.0 - 180.0 for r in dets])
    dec = np.array([r["dec"] for r in dets])
    out["ramean"] = (ra0 + np.mean(dra)) % 360.0
    out["rastd"] = 3600.0 * np.std(dra)
    out["decmean"] = np.mean(dec)
    out["decstd"] = 3600.0 * np.std(dec)
    lon, lat = radec_to_galactic(np.array([out["ramean"]]), np.array([out["decmean"]]))
    out["glonmean"], out["glatmean"] = float(lon[0]), float(lat[0])
    out["htm16"] = int(htm_id(np.array([out["ramean"]]), np.array([out["decmean"]]), 16)[0])

    out["jdmin"] = dets[0]["jd"]
    out["jdmax"] = jdmax = dets[-1]["jd"]
    for band, fid in (("g", 1), ("r", 2)):
        in_band = [r for r in dets if r["fid"] == fid]
        meas = [r for r in in_band if not math.isnan(r["magpsf"])]
        out[f"jd{band}max"] = in_band[-1]["jd"] if in_band else NULL
        mags = [r["magpsf"] for r in meas]
        out[f"mag{band}min"] = min(mags) if mags else NULL
        out[f"mag{band}max"] = max(mags) if mags else NULL
        out[f"mag{band}mean"] = float(np.mean(mags)) if mags else NULL
        out[f"{band}mag"] = meas[-1]["magpsf"] if meas else NULL
        out[f"dmdt_{band}"] = out[f"dmdt_{band}_err"] = out[f"dmdt_{band}_2"] = NULL
        if len(meas) >= 2:
            new, old = meas[-1], meas[-2]
            dt = new["jd"] - old["jd"]
            if new["positive"] and old["positive"] and dt > 0:
                out[f"dmdt_{band}"] = (old["magpsf"] - new["magpsf"]) / dt
                err = math.sqrt(old["sigmapsf"] ** 2 + new["sigmapsf"] ** 2) / dt
                out[f"dmdt_{band}_err"] = NULL if math.isnan(err) else err
        if len(meas) >= 3:
            new, old = meas[-2], meas[-3]
            dt = new["jd"] - old["jd"]
            if new["positive"] and old["positive"] and dt > 0:
                out[f"dmdt_{band}_2"] = (old["magpsf"] - new["magpsf"]) / dt
        for tau in (2.0, 8.0, 28.0):
            m, jd_prev = 0.0, 0.0
            for r in meas:
                f = math.exp(-(r["jd"] - jd_prev) / tau)
                m = m * f + r["magpsf"] * (1.0 - f)
                jd_prev = r["jd"]
            out[f"mag_{band}{int(tau):02d}"] = m if meas else NULL

    out["g_minus_r"] = out["jd_g_minus_r"] = NULL
    nights: dict[int, dict] = {}
    for r in dets:  # later detections overwrite earlier ones: the latest per night and band
        if r["positive"] and not math.isnan(r["magpsf"]) and r["fid"] in (1, 2):
            nights.setdefault(r["nid"], {})[r["fid"]] = r
    both = [n for n, d in nights.items() if 1 in d and 2 in d]
    if both:
        d = nights[max(both)]
        out["g_minus_r"] = d[1]["magpsf"] - d[2]["magpsf"]
        out["jd_g_minus_r"] = d[1]["jd"]

    def good(r):
        rb, drb = r["rb"], r["drb"]
        return r["positive"] and ((rb is not None and rb > 0.75) or (drb is not None and drb > 0.75))

    out["ncandgp"] = sum(1 for r in dets if good(r))
    out["ncandgp_7"] = sum(1 for r in dets if good(r) and jdmax - r["jd"] < 7)
    out["ncandgp_14"] = sum(1 for r in dets if good(r) and jdmax - r["jd"] < 14)
    for name in ("sgmag1", "srmag1", "sgscore1", "distpsnr1"):
        out[name] = NULL
        for r in dets:
            v = r[name]
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                out[name] = v
    # ssnamenr: the latest detection's own value, NULL if it has none (Lasair's create_features).
    out["ssnamenr"] = dets[-1]["ssnamenr"]
    return out


def rows_of(det) -> dict[str, list[dict]]:
    """Detections block -> {objectId: [row dicts]} for the reference (NaN rb/drb become None)."""
    out: dict[str, list[dict]] = {}
    i = 0
    cand = det.candid if det.candid is not None else np.arange(det.n_rows)
    for oid, n in zip(det.ids, det.counts, strict=True):
        rows = []
        for k in range(i, i + int(n)):
            r = {name: det.cols[name][k].item() for name in det.cols}
            r["positive"] = bool(det.cols["positive"][k])
            for name in ("rb", "drb"):
                if math.isnan(r[name]):
                    r[name] = None
            r["ssnamenr"] = det.ssnamenr[k]
            r["candid"] = int(cand[k])
            r["objectId"] = oid
            rows.append(r)
        out[oid] = rows
        i += int(n)
    return out
