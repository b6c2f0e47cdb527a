"""The columnar detections block every source returns, and helpers shared by the sources."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lasair_parallel.apps.rebuild_objects.lazynp import np

# Lasair `candidates` columns the features read, in this order everywhere (SQL select lists,
# Cassandra prepared statements, synthetic generation).
FLOAT_COLUMNS = ("jd", "magpsf", "sigmapsf", "ra", "dec", "rb", "drb",
                 "sgmag1", "srmag1", "sgscore1", "distpsnr1")
INT_COLUMNS = ("fid", "nid")
CANDIDATE_COLUMNS = ("objectId", "candid", "jd", "fid", "magpsf", "sigmapsf", "isdiffpos",
                     "ra", "dec", "nid", "rb", "drb", "ssnamenr", "sgmag1", "srmag1",
                     "sgscore1", "distpsnr1")
# ZTF's isdiffpos: 't' / '1' = positive difference (the source brightened), 'f' / '0' negative.
POSITIVE_VALUES = ("t", "1")
# The same test in SQL, for the SQL sources' reads (both the row and the Arrow path): a NULL
# isdiffpos is "not positive", and the server compares in the column's collation.
POSITIVE_SQL = f"COALESCE(isdiffpos IN ({', '.join(repr(v) for v in POSITIVE_VALUES)}), 0)"
# ssnamenr values that mean "no solar-system match" in ZTF alerts.
NO_SSNAME = ("", "null", "None")
# Detections from which a block's work is split in two: the Arrow read's column gathers over
# two threads (numpy's gathers and Arrow's casts release the GIL: 0.387 -> 0.324-0.376 s for
# 128,000 objects / 1.28M rows on 2 cores, benchmarks/rebuild_live.py), the features and CSV
# text over this process and a forked one (task.shard_pieces; the text holds the GIL: 0.60-0.66
# -> 0.40-0.50 s).  Below ~50 ms of work the second thread or process is not worth its start.
THREADED_ROWS = 50_000


# Columns the features read at one row per object only (the PS1 fields from the last detection
# that has them, ssnamenr from the latest: features.compute_features).
LATE_COLUMNS = ("sgmag1", "srmag1", "sgscore1", "distpsnr1")


class Deferred:
    """A column whose rows are not gathered yet: row i is ``take(rows)[i]``.

    A block scanned in storage order is gathered into object order column by column; a column
    the features read at one row per object (``LATE_COLUMNS``, ssnamenr) need not be.  For the
    1.28M-row benchmark table that gather took 17-80 ms of CPU for each PS1 field and
    93-126 ms for ssnamenr (two threads; benchmarks/README.md), taking the rows the features
    use ~1 ms each.  Indexing with a slice, an index array or a mask moves ``rows`` only, as
    does assigning one Deferred of the same column into another (``features._move``); numpy
    sees the taken values (``__array__``), so code that does not know this class gets the
    gathered column.  ``finite`` (float columns): whether each row holds a finite value.
    """

    __slots__ = ("_take", "_finite", "rows")

    def __init__(self, take: Callable[[np.ndarray], np.ndarray], rows: np.ndarray,
                 finite: Callable[[], np.ndarray] | None = None):
        self._take = take
        self._finite = finite  # in the source's order, over all its rows
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.rows.shape

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self._take(self.rows[[key]])[0]
        return Deferred(self._take, self.rows[key], self._finite)

    def __setitem__(self, key, value: Deferred) -> None:
        if not (isinstance(value, Deferred) and value._take is self._take):
            raise TypeError("only rows of the same deferred column can be assigned")
        self.rows[key] = value.rows

    def copy(self) -> Deferred:
        return Deferred(self._take, self.rows.copy(), self._finite)

    def finite(self) -> np.ndarray:
        """Whether each row's value is finite (not NULL, NaN or infinite)."""
        if self._finite is None:
            raise TypeError("finite() of a column without numbers")
        return self._finite()[self.rows]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self._take(self.rows)
        return out if dtype is None else out.astype(dtype)

    def tolist(self) -> list:
        return self._take(self.rows).tolist()


@dataclass
class Detections:
    """Detections of a block of objects, as columns.

    Rows are grouped by object in the order of ``ids`` (``counts[i]`` rows for ``ids[i]``; a count
    may be 0).  If ``candid`` is None the source promises rows sorted by (jd, candid) within each
    object; otherwise the feature code sorts them.  Missing floats are NaN, missing ssnamenr None.
    """

    ids: np.ndarray  # object ids (str), one per object
    counts: np.ndarray  # int64
    # FLOAT_COLUMNS (float64), fid/nid (int64), positive (bool); a LATE_COLUMNS one may be a
    # :class:`Deferred` (its rows not gathered yet)
    cols: dict[str, np.ndarray | Deferred]
    ssnamenr: np.ndarray | Deferred  # object array: str or None
    candid: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return int(self.counts.sum())


def positive_flags(values: Sequence) -> np.ndarray:
    """isdiffpos values -> bool array (True for 't' / '1', also for True / 1)."""
    arr = np.asarray(values, dtype=object)
    return np.isin(arr.astype(str), POSITIVE_VALUES + ("True",))


def clean_ssnamenr(values: Sequence) -> np.ndarray:
    """ssnamenr as an object array of str or None ('' / 'null' become None)."""
    out = np.empty(len(values), dtype=object)
    out[:] = [None if v is None or (isinstance(v, float) and v != v) or str(v) in NO_SSNAME
              else str(v) for v in values]
    return out


def empty_detections(ids: Sequence[str] = ()) -> Detections:
    """A block of objects with no detections."""
    cols = {c: np.empty(0) for c in FLOAT_COLUMNS}
    cols.update({c: np.empty(0, dtype=np.int64) for c in INT_COLUMNS})
    cols["positive"] = np.empty(0, dtype=bool)
    return Detections(np.asarray(list(ids), dtype=object), np.zeros(len(ids), dtype=np.int64),
                      cols, np.empty(0, dtype=object))


def objects_slice(det: Detections, lo: int, hi: int,
                  ends: np.ndarray | None = None) -> Detections:
    """The detections of objects ``lo``..``hi - 1`` of ``det`` (views, no copy).  ``ends``:
    ``np.cumsum(det.counts)``, for a caller slicing the same block many times."""
    ends = np.cumsum(det.counts) if ends is None else ends
    a = int(ends[lo - 1]) if lo > 0 else 0
    b = int(ends[hi - 1]) if hi > 0 else 0
    return Detections(det.ids[lo:hi], det.counts[lo:hi], {k: v[a:b] for k, v in det.cols.items()},
                      det.ssnamenr[a:b], None if det.candid is None else det.candid[a:b])


def concat(blocks: Sequence[Detections]) -> Detections:
    """Join blocks of distinct objects, keeping their order."""
    if not blocks:
        return empty_detections()
    cols = {c: np.concatenate([b.cols[c] for b in blocks]) for c in blocks[0].cols}
    cand = None
    if all(b.candid is not None for b in blocks):
        cand = np.concatenate([b.candid for b in blocks])
    elif any(b.candid is not None for b in blocks):
        raise ValueError("cannot mix sorted and unsorted detection blocks")
    return Detections(np.concatenate([b.ids for b in blocks]),
                      np.concatenate([b.counts for b in blocks]), cols,
                      np.concatenate([b.ssnamenr for b in blocks]), cand)


def from_frame(df) -> Detections:
    """A pandas DataFrame in the `candidates` shape -> Detections (rows with a candid only).

    Objects come out in sorted objectId order; candid is kept so the feature code sorts by
    (jd, candid) within each object.
    """
    import pandas as pd

    df = df[df["candid"].notna()]
    df = df.sort_values("objectId", kind="stable")
    ids, counts = np.unique(df["objectId"].to_numpy(dtype=str), return_counts=True)
    cols = {c: pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float) for c in FLOAT_COLUMNS}
    cols.update({c: df[c].to_numpy(dtype=np.int64) for c in INT_COLUMNS})
    cols["positive"] = positive_flags(df["isdiffpos"].to_numpy())
    return Detections(ids.astype(object), counts.astype(np.int64), cols,
                      clean_ssnamenr(df["ssnamenr"].to_numpy(dtype=object)),
                      df["candid"].to_numpy(dtype=np.int64))


def two_threads(rows: int) -> bool:
    """Whether work over ``rows`` detections goes on two threads (THREADED_ROWS, 2 cores)."""
    return rows >= THREADED_ROWS and (os.cpu_count() or 1) >= 2


def run_jobs(jobs: Sequence[Callable[[], object]], threaded: bool) -> list:
    """Each job's result, in order: on two threads when ``threaded``, else on this one."""
    if not threaded:
        return [job() for job in jobs]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda job: job(), jobs))
