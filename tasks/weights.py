"""Split weighted items into tasks of similar total weight, heaviest first.

After OpenQuake's block splitting (../shared/notes/anchors.md section 6): a block holds about
``total / (2 x slots)`` weight, so every slot gets at least two blocks and a straggler costs at
most half a slot's share; heavy items are placed first so they do not end up last.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def target_block_weight(total: float, slots: int, per_slot: int = 2) -> float:
    """Weight per block so each of ``slots`` gets ``per_slot`` blocks (OpenQuake uses 2)."""
    return max(total / max(1, slots * per_slot), 1e-12)


def split_by_weight(weights: Sequence[float] | np.ndarray, max_weight: float) -> list[np.ndarray]:
    """Cut items into contiguous blocks whose weight stays near ``max_weight``.

    Items keep their order (so a block is a contiguous key range, cheap to query); an item
    heavier than ``max_weight`` gets a block of its own.  Returns arrays of item indices,
    ordered heaviest block first.
    """
    w = np.asarray(weights, dtype=float)
    if w.size == 0:
        return []
    blocks: list[np.ndarray] = []
    start = 0
    acc = 0.0
    for i, wi in enumerate(w):
        if i > start and acc + wi > max_weight:
            blocks.append(np.arange(start, i))
            start, acc = i, 0.0
        acc += wi
    blocks.append(np.arange(start, w.size))
    blocks.sort(key=lambda b: -float(w[b].sum()))
    return blocks
