"""How many pieces of what size: the arithmetic of a task that splits itself at run time.

The head hands each attempt its measured rate (seconds per unit of ``Task.weight``), its
weight and the longest wanted task (``$PARALLEL_RATE``, ``$PARALLEL_WEIGHT``,
``$PARALLEL_TASK_SECONDS``; :func:`lasair_parallel.tasks.emit.sizing`).  A task predicted to
run longer than wanted cuts its work into pieces, spawns all but the first
(:func:`lasair_parallel.tasks.emit.spawn`) and computes the first itself.  The apps differ only
in what a piece is (seconds of busy work, a range of objects, a range of strikes); the
counting is here, once.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lasair_parallel.tasks.emit import sizing
from lasair_parallel.tasks.protocol import ENV_DEPTH

if TYPE_CHECKING:
    import numpy as np


def count(total: float, piece: float) -> int:
    """Pieces of at most ``piece`` that ``total`` needs (at least 1).

    The quotient is rounded to 6 digits first: 3.0000000001 pieces (float noise in a weight
    or a rate) is 3, not 4.
    """
    if not piece > 0 or not total > 0:
        return 1
    return max(1, math.ceil(round(total / piece, 6)))


def cut(total: float, piece: float) -> tuple[int, float]:
    """``(n, remainder)``: ``total`` as n - 1 pieces of exactly ``piece`` and a last one of
    the remainder (<= ``piece``), rounded to milliseconds (busy's seconds)."""
    n = count(total, piece)
    return n, round(total - piece * (n - 1), 3)


def wanted(weight: float | None = None, env: tuple | None = None) -> int:
    """How many pieces this running task should become: 1 unless the head measured a rate
    and the predicted time (rate x weight) is over the longest wanted task.

    A spawned task ($PARALLEL_SPAWN_DEPTH > 0) is 1 piece.  ``weight`` defaults to the
    task's own ($PARALLEL_WEIGHT); ``env`` is a
    ``(rate, task_seconds, weight)`` triple for callers that have one (tests), else it is
    read from the environment.
    """
    if env is None and int(os.environ.get(ENV_DEPTH) or 0) > 0:
        # A spawned piece was sized by its parent: it does not split again.  Its rate counts
        # each task's start-up (~0.25 s for rebuild_objects), which weighs more the smaller
        # the pieces, so pieces re-splitting by it would cut down to single objects.
        return 1
    rate, seconds, own = env if env is not None else sizing()
    w = own if weight is None else weight
    if rate is None or seconds is None or not seconds > 0 or not w or w <= 0:
        return 1
    return count(rate * w, seconds)


def even_ranges(start: int, stop: int, n: int) -> list[tuple[int, int]]:
    """``[start, stop)`` as at most ``n`` contiguous ranges whose sizes differ by at most 1
    (every item costs the same: a strike of scarp_search)."""
    import numpy as np  # here: a task that never splits (busy's) does not pay its import

    n = max(1, min(n, stop - start))
    edges = np.linspace(start, stop, n + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def weighted_ranges(weights: Sequence[float] | np.ndarray, n: int) -> list[tuple[int, int]]:
    """Items (in order) as at most ``n`` contiguous index ranges ``[a, b)`` of about equal
    total weight: cut where the running sum crosses k / n of the total.  An item heavier
    than a share stays whole (its range may then hold it alone); no range is empty."""
    import numpy as np

    w = np.asarray(weights, dtype=float)
    if w.size == 0:
        return []
    n = max(1, min(n, w.size))
    cum = np.cumsum(w)
    total = float(cum[-1])
    if not total > 0:
        return even_ranges(0, w.size, n)
    # An item goes to the piece its running sum's midpoint falls in: cuts land between items.
    mid = cum - w / 2.0
    piece = np.minimum((mid / total * n).astype(int), n - 1)
    edges = [0, *(np.flatnonzero(np.diff(piece)) + 1).tolist(), w.size]
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]
