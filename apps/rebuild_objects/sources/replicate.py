"""Real-shaped detections at any size: the bundled real sample's objects replicated under new ids.

A live `candidates` table is filled by the alert stream: rows arrive in jd order across all
objects, so one object's ~9 detections lie far apart in the table (it is not clustered by
object).  ``replicated_sample(n)`` makes ``n`` objects from the 364 real ones (real light
curves, NULL patterns, duplicate jd, solar-system names), each copy shifted by a whole number
of days (jd and nid move together, so every feature of a copy is a real object's feature);
``arrival_order`` gives the order a live table would hold the rows in.
"""

from __future__ import annotations

import numpy as np
from lasair_parallel.apps.rebuild_objects.sources.base import Detections

# Copies are shifted by 0..MAX_SHIFT_DAYS whole days: ~ a year, so the copies of an object
# arrive at different times and interleave with every other object (jd + k is exact in
# float64: jd ~ 2.46e6 < 2**22 keeps its ulp for k < 2**21).
MAX_SHIFT_DAYS = 365


def replica_id(orig: str, copy: int) -> str:
    """Copy ``copy`` of real object ``orig``: 'ZTF17aaabbbp', 3 -> 'ZTF17003aaabbbp' (15 chars,
    fits Lasair's VARCHAR(16); ids of one copy sort together like a year's ids)."""
    return f"{orig[:5]}{copy:03d}{orig[5:]}"


def replicated_sample(n_objects: int, seed: int = 0) -> Detections:
    """``n_objects`` real-shaped objects, grouped by object in objectId order, with candid
    (unique; within an object in the original (jd, candid) order)."""
    from lasair_parallel.apps.rebuild_objects.sources.sample import CsvSource

    src = CsvSource()
    base = src.det
    order = np.lexsort((base.candid, base.cols["jd"], np.repeat(np.arange(base.ids.size),
                                                                base.counts)))
    m = base.ids.size
    copies = -(-n_objects // m)
    if copies > 999:
        raise ValueError("at most 999 copies of the sample (363,636 objects)")
    rng = np.random.default_rng(seed)
    shift = rng.integers(0, MAX_SHIFT_DAYS + 1, (copies, m))
    starts = np.cumsum(base.counts) - base.counts
    ids, counts, pieces = [], [], []
    for c in range(copies):
        for j in range(m):
            if len(ids) == n_objects:
                break
            ids.append(replica_id(str(base.ids[j]), c))
            counts.append(int(base.counts[j]))
            pieces.append((c, j))
    # rows object by object in objectId order
    perm = np.argsort(np.array(ids, dtype=object).astype(str), kind="stable")
    rows, copy_of_row, shift_of_row = [], [], []
    for k in perm:
        c, j = pieces[k]
        r = order[starts[j]:starts[j] + base.counts[j]]
        rows.append(r)
        copy_of_row.append(np.full(r.size, c))
        shift_of_row.append(np.full(r.size, shift[c, j]))
    idx = np.concatenate(rows)
    copy = np.concatenate(copy_of_row)
    days = np.concatenate(shift_of_row)
    cols = {name: v[idx].copy() for name, v in base.cols.items()}
    cols["jd"] = cols["jd"] + days
    cols["nid"] = cols["nid"] + days
    # unique candid, increasing with the original (jd, candid) rank within the object
    candid = copy.astype(np.int64) * 10_000_000 + np.argsort(order)[idx]
    return Detections(np.array(ids, dtype=object)[perm],
                      np.array(counts, dtype=np.int64)[perm], cols, base.ssnamenr[idx].copy(),
                      candid.astype(np.int64))


def arrival_order(det: Detections) -> np.ndarray:
    """Row permutation of ``det`` in alert-stream order: by (jd, candid) across all objects."""
    return np.lexsort((det.candid, det.cols["jd"]))
