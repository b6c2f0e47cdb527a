"""Arrow columns as numpy arrays without pandas.

pyarrow imports pandas (~0.2 s, measured with ``python -X importtime``: 177-250 ms on this
machine) the first time a Python value is turned into Arrow (``pa.array``, ``pa.scalar``, any
scalar argument of a compute function) and on ``to_numpy``; a task process pays that once per
block for nothing.  These helpers read the Arrow buffers directly (``np.frombuffer``) and map
string columns through their dictionary (a few distinct values decided in Python), so a block's
conversion never touches pandas.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from lasair_parallel.apps.rebuild_objects.lazynp import np


def compute(name: str, *args, options=None):
    """Arrow compute function ``name`` on ``args``.  Called through ``pyarrow._compute``, the
    kernel module that pyarrow.compute wraps: importing pyarrow.compute builds ~300 Python
    wrappers with their docstrings, 60 ms of every task process (measured beside
    ``import pyarrow._compute``: 8-19 ms) for the five functions used here."""
    try:
        from pyarrow._compute import call_function
    except ImportError:  # pragma: no cover - a pyarrow without the private module
        from pyarrow.compute import call_function
    return call_function(name, list(args), options)


def cast(arr, target):
    """``arr`` cast to the Arrow type ``target`` (safe: overflow and lossy casts raise)."""
    try:
        from pyarrow._compute import CastOptions
    except ImportError:  # pragma: no cover
        from pyarrow.compute import CastOptions
    return compute("cast", arr, options=CastOptions.safe(target))


def sort_indices(arr):
    """Indices that sort ``arr`` ascending (strings: by their bytes)."""
    return compute("array_sort_indices", arr)


def flat(col):
    """One contiguous Arrow array from a table column (a ChunkedArray) or an array."""
    return col.combine_chunks() if hasattr(col, "combine_chunks") else col


def pieces(col) -> list:
    """A table column's chunks with rows (an array: itself; a column without rows: one empty
    array).  connectorx returns 64k-row batches (20 chunks for the 1.28M-row benchmark table):
    the readers below take them chunk by chunk, never joining them into a copy first (each
    join was 10 MB of fresh memory a column, and fresh memory is dear: see
    apps/rebuild_objects/__init__.py)."""
    chunks = getattr(col, "chunks", None)
    if chunks is None:
        return [col]
    kept = [c for c in chunks if len(c)]
    return kept or [col.combine_chunks()]


def inverse(order: np.ndarray) -> np.ndarray:
    """The inverse of a permutation: ``inverse(order)[order[i]] == i``."""
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order), dtype=order.dtype)
    return inv


def _joined(parts: list, dtype, null, inv: np.ndarray | None) -> tuple[np.ndarray, bool]:
    """Chunks of a primitive column as one new array, ``null`` where null: in storage order,
    or scattered through ``inv`` (row r goes to ``inv[r]``).  A chunk is read in order and
    written at its rows' places, which measured 0.010-0.015 s for a 1.28M-row float column in
    a random order against 0.020-0.037 s to join the chunks and gather the joined column."""
    out = np.empty(sum(len(p) for p in parts), dtype=dtype)
    had_null = False
    a = 0
    for p in parts:
        b = a + len(p)
        ok = valid_mask(p)
        if inv is None:
            out[a:b] = values(p, dtype)
            if ok is not None:
                out[a:b][~ok] = null
        else:
            out[inv[a:b]] = values(p, dtype)
            if ok is not None:
                out[inv[a:b][~ok]] = null
        had_null = had_null or ok is not None
        a = b
    return out, had_null


def valid_mask(arr) -> np.ndarray | None:
    """The array's validity as a bool array, or None when it has no null."""
    if arr.null_count == 0:
        return None
    n = len(arr)
    bitmap = arr.buffers()[0]
    if bitmap is None:  # a null-typed array: every value is null
        return np.zeros(n, dtype=bool)
    bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), bitorder="little")
    return bits[arr.offset:arr.offset + n].view(bool)


def values(arr, dtype) -> np.ndarray:
    """The data buffer of a primitive (fixed-width, non-bool) array as a read-only view;
    slots that are null hold whatever the buffer holds there."""
    dt = np.dtype(dtype)
    n = len(arr)
    if n == 0:
        return np.empty(0, dtype=dt)
    return np.frombuffer(arr.buffers()[1], dtype=dt, count=n, offset=arr.offset * dt.itemsize)


def floats(arr, order: np.ndarray | None = None, inv: np.ndarray | None = None) -> np.ndarray:
    """A float64 Arrow array or table column as a new numpy array, NaN where null; rows taken
    in ``order`` (a permutation; ``inv`` its inverse, if known) when given: the gather is then
    the only copy (fresh memory costs)."""
    parts = pieces(arr)
    if len(parts) > 1:
        return _joined(parts, np.float64, np.nan, _inverse_of(order, inv))[0]
    arr = parts[0]
    v = values(arr, np.float64)
    ok = valid_mask(arr)
    if order is None:
        return v.copy() if ok is None else np.where(ok, v, np.nan)
    return _gathered(v, ok, order)


def _gathered(v: np.ndarray, ok: np.ndarray | None, order: np.ndarray) -> np.ndarray:
    """``v[order]`` as a new array, NaN where ``ok`` (the validity, None: no null) is false."""
    out = v[order]
    if ok is not None:
        out[~ok[order]] = np.nan
    return out


def _inverse_of(order: np.ndarray | None, inv: np.ndarray | None) -> np.ndarray | None:
    if order is None or inv is not None:
        return inv
    return inverse(order)


def ints(arr, order: np.ndarray | None = None,
         inv: np.ndarray | None = None) -> tuple[np.ndarray, bool]:
    """An int64 Arrow array or table column as a new numpy array (0 where null; rows in
    ``order`` when given, ``inv`` its inverse if known) and whether it had a null."""
    parts = pieces(arr)
    if len(parts) > 1:
        return _joined(parts, np.int64, 0, _inverse_of(order, inv))
    arr = parts[0]
    v = values(arr, np.int64)
    ok = valid_mask(arr)
    out = v.copy() if order is None else v[order]
    if ok is not None:
        out[~(ok if order is None else ok[order])] = 0
    return out, ok is not None


def codes(arr) -> tuple[np.ndarray, np.ndarray | None]:
    """The int64 indices of a DictionaryArray and its validity (None: no null)."""
    idx = arr.indices
    itemsize = idx.type.bit_width // 8
    v = values(idx, f"<i{itemsize}").astype(np.int64)
    return v, valid_mask(idx)


def encoded(col):
    """``col`` (a string array or table column) dictionary-encoded: (its dictionary, each
    row's int64 index, validity or None).  A column in chunks is encoded as it is: Arrow
    gives every chunk the one dictionary of the whole column."""
    parts = pieces(compute("dictionary_encode", col))
    dictionary = parts[0].dictionary
    if len(parts) == 1:
        return (dictionary, *codes(parts[0]))
    if any(len(p.dictionary) != len(dictionary) for p in parts):  # pragma: no cover
        return encoded(flat(col))  # not what Arrow does; a safeguard: encode it joined
    got = [codes(p) for p in parts]
    ok = None
    if any(m is not None for _, m in got):
        ok = np.concatenate([np.ones(len(k), bool) if m is None else m for k, m in got])
    return dictionary, np.concatenate([k for k, _ in got]), ok


def map_strings(col, decide: Callable[[list], np.ndarray], null,
                order: np.ndarray | None = None) -> np.ndarray:
    """Each value of a column -> ``decide(distinct values)[its index]``; ``null`` for NULL;
    rows taken in ``order`` (a permutation) when given.

    The column is dictionary-encoded by Arrow (as text when it is not a string type), so
    Python sees each distinct value once (isdiffpos has 2-4, ssnamenr a few hundred per
    block), not each row.
    """
    return string_taker(col, decide, null)(order)


def string_taker(col, decide: Callable[[list], np.ndarray], null
                 ) -> Callable[[np.ndarray | None], np.ndarray]:
    """``take(rows)``: the decided values (see ``map_strings``) of those rows of the column
    (all of them for None), the column encoded once."""
    import pyarrow as pa

    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        col = cast(col, pa.string())
    dictionary, k, ok = encoded(col)
    table = decide(dictionary.to_pylist())
    out_table = np.empty(len(table) + 1, dtype=table.dtype)
    out_table[:-1] = table
    out_table[-1] = null
    if ok is not None:
        k = np.where(ok, k, len(table))

    def take(rows: np.ndarray | None) -> np.ndarray:
        return out_table[k if rows is None else k[rows]]

    return take


def float_taker(arr, inf_is_null: bool = False
                ) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[], np.ndarray]]:
    """(``take(rows)``, ``finite()``) of a float64 Arrow array, nothing copied until asked:
    ``take`` gives those rows as a new array, NaN where null (and where -inf when
    ``inf_is_null``); ``finite`` whether each row holds a finite number (computed once).
    ``arr`` may be a table column in chunks: each is read where it lies."""
    parts = pieces(arr)
    vs = [values(p, np.float64) for p in parts]
    oks = [valid_mask(p) for p in parts]
    ends = np.cumsum([len(v) for v in vs])

    def take(rows: np.ndarray) -> np.ndarray:
        if len(vs) == 1:
            out = _gathered(vs[0], oks[0], rows)
        else:  # the rows grouped by chunk (a radix sort of small keys), each group taken
            out = np.empty(len(rows))
            which = np.searchsorted(ends, rows, side="right")
            if len(vs) <= 1 << 16:  # numpy radix-sorts 16-bit keys (others: timsort)
                which = which.astype(np.uint16)
            by_chunk = np.argsort(which, kind="stable")
            cuts = np.searchsorted(which[by_chunk], np.arange(len(vs) + 1))
            for i, (v, ok) in enumerate(zip(vs, oks, strict=True)):
                here = by_chunk[cuts[i]:cuts[i + 1]]
                if len(here):
                    out[here] = _gathered(v, ok, rows[here] - (ends[i] - len(v)))
        if inf_is_null:
            out[out == -np.inf] = np.nan
        return out

    @functools.cache
    def finite() -> np.ndarray:
        fs = [np.isfinite(v) if ok is None else np.isfinite(v) & ok
              for v, ok in zip(vs, oks, strict=True)]
        return fs[0] if len(fs) == 1 else np.concatenate(fs)

    return take, finite
