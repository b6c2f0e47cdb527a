"""The bundled real ZTF sample (or any CSV file in the `candidates` shape)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
from lasair_parallel.apps.rebuild_objects.sources.base import (
    Detections,
    from_frame,
    objects_slice,
)


def sample_path() -> Path:
    """Path of the bundled candidates.csv (real ZTF detections, see data/PROVENANCE.md)."""
    return Path(str(resources.files("lasair_parallel.apps.rebuild_objects") / "data" / "candidates.csv"))


class CsvSource:
    """A CSV file of detections, read whole (the sample is 3,630 rows)."""

    ranges = True

    def __init__(self, path: str | Path | None = None):
        import pandas as pd

        self.path = Path(path) if path else sample_path()
        df = pd.read_csv(self.path, dtype={"objectId": str, "ssnamenr": str, "isdiffpos": str},
                         keep_default_na=False, na_values=[""])
        self.det = from_frame(df)
        self._ends = np.cumsum(self.det.counts)

    def list_objects(self) -> tuple[np.ndarray, np.ndarray]:
        return self.det.ids, self.det.counts

    def _block(self, lo: int, hi: int) -> Detections:
        return objects_slice(self.det, lo, hi, self._ends)

    def read_range(self, first: str, last: str) -> Detections:
        ids = self.det.ids.astype(str)
        return self._block(int(np.searchsorted(ids, first, "left")),
                           int(np.searchsorted(ids, last, "right")))

    def read_ids(self, ids: list[str]) -> Detections:
        from lasair_parallel.apps.rebuild_objects.sources.base import concat

        all_ids = self.det.ids.astype(str)
        blocks = []
        for oid in ids:
            i = int(np.searchsorted(all_ids, oid))
            if i < all_ids.size and all_ids[i] == oid:
                blocks.append(self._block(i, i + 1))
        return concat(blocks)

    def close(self) -> None:
        pass
