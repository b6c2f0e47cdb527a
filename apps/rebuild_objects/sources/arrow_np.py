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

import numpy as np


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


def floats(arr, order: np.ndarray | None = None) -> np.ndarray:
    """A float64 Arrow array as a new numpy array, NaN where null; rows taken in ``order``
    (a permutation) when given: the gather is then the only copy (fresh memory costs)."""
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


def ints(arr, order: np.ndarray | None = None) -> tuple[np.ndarray, bool]:
    """An int64 Arrow array as a new numpy array (0 where null; rows in ``order`` when given)
    and whether it had a null."""
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

    arr = flat(col)
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = cast(arr, pa.string())
    enc = compute("dictionary_encode", arr)
    table = decide(enc.dictionary.to_pylist())
    k, ok = codes(enc)
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
    ``inf_is_null``); ``finite`` whether each row holds a finite number (computed once)."""
    v = values(arr, np.float64)
    ok = valid_mask(arr)

    def take(rows: np.ndarray) -> np.ndarray:
        out = _gathered(v, ok, rows)
        if inf_is_null:
            out[out == -np.inf] = np.nan
        return out

    @functools.cache
    def finite() -> np.ndarray:
        f = np.isfinite(v)
        if ok is not None:
            f &= ok
        return f

    return take, finite
