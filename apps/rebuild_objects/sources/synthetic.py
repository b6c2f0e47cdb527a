"""Deterministic ZTF-like detections for tests and benchmarks: ``synthetic:N[:SEED]``.

Objects are generated in fixed chunks of CHUNK objects, each from its own seeded generator, so
object k's light curve is the same whichever block (task) asks for it.  Shapes follow the bundled
real sample: detections per object log-normal with median 7 (real sample: median 8, mean 10),
clipped to 1..300; 15% g-only and 15% r-only objects; several detections per night (so g - r
exists); 2% exact duplicate jd; 15% negative differences; drb and the PS1 fields only on a third
of the rows (real ZTF history rows lack them); a few solar-system names.
"""

from __future__ import annotations

import numpy as np
from lasair_parallel.apps.rebuild_objects.sources.base import (
    FLOAT_COLUMNS,
    Detections,
    concat,
    objects_slice,
)

CHUNK = 4096
MAX_DETECTIONS = 300
PREFIX = "SYN"  # ids SYN000000042: zero-padded, so string order = index order


def object_id(i: int) -> str:
    """The id of synthetic object ``i``."""
    return f"{PREFIX}{i:09d}"


def object_index(oid: str) -> int:
    """Inverse of :func:`object_id`."""
    if not oid.startswith(PREFIX):
        raise ValueError(f"{oid!r} is not a synthetic object id")
    return int(oid[len(PREFIX):])


class SyntheticSource:
    """N synthetic objects, generated on demand."""

    ranges = True

    def __init__(self, n: int, seed: int = 0):
        if n < 0:
            raise ValueError("synthetic:N needs N >= 0")
        self.n, self.seed = n, seed

    @classmethod
    def from_spec(cls, spec: str) -> SyntheticSource:
        parts = spec.split(":")
        try:
            return cls(int(parts[1]), int(parts[2]) if len(parts) > 2 else 0)
        except (IndexError, ValueError):
            raise ValueError(f"bad synthetic spec {spec!r}: use synthetic:N or synthetic:N:SEED") \
                from None

    def _counts(self, chunk: int) -> np.ndarray:
        size = min(CHUNK, self.n - chunk * CHUNK)
        rng = np.random.default_rng([self.seed, chunk, 0])
        n = np.floor(rng.lognormal(np.log(7.0), 0.9, size)).astype(np.int64)
        return np.clip(n, 1, MAX_DETECTIONS)

    def list_objects(self) -> tuple[np.ndarray, np.ndarray]:
        counts = np.concatenate([self._counts(c) for c in range(-(-self.n // CHUNK))] or [[]])
        ids = np.array([object_id(i) for i in range(self.n)], dtype=object)
        return ids, counts.astype(np.int64)

    def _chunk(self, chunk: int) -> Detections:
        counts = self._counts(chunk)
        m, n = counts.size, int(counts.sum())
        first_obj = chunk * CHUNK
        rng = np.random.default_rng([self.seed, chunk, 1])
        obj = np.repeat(np.arange(m), counts)
        starts = np.cumsum(counts) - counts
        k = np.arange(n) - starts[obj]  # detection number within the object
        # Per object: position, brightness, start time, which bands.
        ra = rng.uniform(0.0, 360.0, m)
        dec = np.degrees(np.arcsin(rng.uniform(-0.5, 1.0, m)))  # ZTF sees dec > -30
        base = rng.uniform(16.0, 20.5, m)
        amp = rng.uniform(0.0, 1.5, m)
        t0 = 2458200.5 + rng.uniform(0.0, 2500.0, m)
        kind = rng.choice(3, m, p=[0.7, 0.15, 0.15])  # both bands / g only / r only
        # Per detection: cadence (same night 40%, else 1-10 nights later), exact duplicates 2%.
        same_night = rng.random(n) < 0.4
        gap = np.where(same_night, rng.uniform(0.01, 0.1, n), rng.geometric(0.35, n) + 0.0)
        gap = np.where(rng.random(n) < 0.02, 0.0, gap)
        gap[starts] = 0.0
        t = np.cumsum(gap)
        jd = t0[obj] + (t - t[starts][obj]) + rng.uniform(0.6, 0.9, n) * (k == 0)
        jd = np.round(jd, 6)  # ZTF jd precision: ~0.1 s
        fid = np.where(kind[obj] == 1, 1, np.where(kind[obj] == 2, 2, rng.integers(1, 3, n)))
        phase = (jd - t0[obj]) / rng.uniform(5.0, 60.0, m)[obj]
        mag = base[obj] + amp[obj] * np.sin(phase) + 0.4 * (fid == 1) + rng.normal(0, 0.05, n)
        cols = {
            "jd": jd, "magpsf": mag, "sigmapsf": rng.uniform(0.03, 0.25, n),
            "ra": ra[obj] + rng.normal(0, 0.2 / 3600, n) / np.cos(np.radians(dec[obj])),
            "dec": dec[obj] + rng.normal(0, 0.2 / 3600, n),
            "rb": rng.uniform(0.3, 1.0, n), "drb": rng.uniform(0.0, 1.0, n),
            "sgmag1": rng.uniform(14.0, 23.0, m)[obj], "srmag1": rng.uniform(14.0, 22.0, m)[obj],
            "sgscore1": rng.uniform(0.0, 1.0, m)[obj], "distpsnr1": rng.uniform(0.0, 30.0, n),
        }
        cols["ra"] %= 360.0
        alert_row = rng.random(n) < 0.33
        for c in ("drb", "sgmag1", "srmag1", "sgscore1", "distpsnr1"):
            cols[c] = np.where(alert_row, cols[c], np.nan)
        cols["fid"] = fid.astype(np.int64)
        cols["nid"] = np.floor(jd - 2458119.5).astype(np.int64)  # ZTF night index
        cols["positive"] = rng.random(n) >= 0.15
        ss = np.full(n, None, dtype=object)
        named = np.flatnonzero((rng.random(m) < 0.01)[obj] & (rng.random(n) < 0.5))
        ss[named] = [f"{1000 + o % 90000}" for o in (obj[named] + first_obj)]
        candid = (first_obj + obj).astype(np.int64) * 1000 + k
        ids = np.array([object_id(first_obj + i) for i in range(m)], dtype=object)
        return Detections(ids, counts, {c: cols[c] for c in (*FLOAT_COLUMNS, "fid", "nid",
                                                             "positive")}, ss, candid)

    def read_index_range(self, lo: int, hi: int) -> Detections:
        """Objects lo <= index < hi."""
        lo, hi = max(lo, 0), min(hi, self.n)
        blocks = []
        for c in range(lo // CHUNK, -(-hi // CHUNK)):
            d = self._chunk(c)
            a, b = max(lo - c * CHUNK, 0), min(hi - c * CHUNK, d.ids.size)
            blocks.append(objects_slice(d, a, b))
        return concat(blocks)

    def read_range(self, first: str, last: str) -> Detections:
        return self.read_index_range(object_index(first), object_index(last) + 1)

    def read_ids(self, ids: list[str]) -> Detections:
        return concat([self.read_index_range(i, i + 1) for i in map(object_index, ids)])

    def close(self) -> None:
        pass
