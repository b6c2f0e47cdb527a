"""numpy, imported when first used: ``from lasair_parallel.apps.rebuild_objects.lazynp import np``.

The head imports this app's planner and, for a SQLite source, the source modules that decide
how a block is read and cut the blocks from the table's index; none of that calls numpy, whose
import took 0.066-0.099 s of each head's start (2026-12-03, `python -c "import numpy"` in the
project's venv, 3 runs).  A task uses numpy at once: for it, the first use imports numpy and
later uses are plain attribute lookups.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any


class _Numpy:
    """Stands for the numpy module; imports it at the first attribute asked for."""

    def __getattr__(self, name: str) -> Any:
        import numpy

        # numpy's names become this object's own: no __getattr__ call for them from now on
        # (names numpy itself loads lazily, e.g. its submodules, still come through here).
        self.__dict__.update(vars(numpy))
        return getattr(numpy, name)


if TYPE_CHECKING:
    import numpy as np
else:
    np = _Numpy()
