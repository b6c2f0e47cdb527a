"""lasair-parallel: run big scientific batch jobs on worker machines over SSH.

The folders ``head/``, ``tasks/``, ``apps/`` and ``csv_to_database/`` of the source tree are
installed as ``lasair_parallel.head``, ``lasair_parallel.tasks``, ``lasair_parallel.apps`` and
``lasair_parallel.csv_to_database`` (setup.cfg's ``package_dir``), so nothing this project
installs can collide with a user's ``tasks.py`` or ``apps/``.

The public API is importable from here; it is loaded lazily, so a worker task that imports
``lasair_parallel.tasks`` does not pay for the head's SSH and event-loop libraries.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

# A library never configures logging, and without a handler Python prints WARNING records to
# stderr by itself (logging.lastResort); the documented remedy is a NullHandler on the
# library's top logger.  An application that configures logging still sees every record.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "App", "AppError", "Attempt", "ParallelError", "PlanContext", "RunFailed", "RunResult",
    "Task", "TaskResult", "UsageError", "Worker", "__version__", "emit", "python_command",
    "read_hosts", "run", "sample_light_curves",
]

# name -> module that defines it; resolved on first use (PEP 562)
_LAZY = {
    "Task": "lasair_parallel.tasks.model",
    "python_command": "lasair_parallel.tasks.model",
    "App": "lasair_parallel.tasks.app",
    "PlanContext": "lasair_parallel.tasks.app",
    "AppError": "lasair_parallel.tasks.app",
    "emit": "lasair_parallel.tasks.emit",
    "ParallelError": "lasair_parallel.tasks.errors",
    "UsageError": "lasair_parallel.tasks.errors",
    "RunFailed": "lasair_parallel.tasks.errors",
    "run": "lasair_parallel.head.api",
    "read_hosts": "lasair_parallel.head.api",
    "Worker": "lasair_parallel.head.api",
    "RunResult": "lasair_parallel.head.api",
    "TaskResult": "lasair_parallel.head.api",
    "Attempt": "lasair_parallel.head.api",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from lasair_parallel.head.version import head_version

        return head_version() or "0+unknown"
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'lasair_parallel' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), name)


def sample_light_curves():
    """The bundled real ZTF light curves (a CSV of detections; fink-science, Apache-2.0)."""
    from importlib import resources
    from pathlib import Path

    return Path(str(resources.files("lasair_parallel.apps.rebuild_objects") / "data"
                    / "candidates.csv"))


def __dir__() -> list[str]:
    return sorted(__all__)
