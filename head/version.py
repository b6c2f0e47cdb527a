"""The head's own version, and where ``parallel deploy`` puts a version on a worker.

A deploy installs the project into ``<base>/.lasair-parallel/<version>/`` on each worker, where
``<base>`` is the worker's ``workdir`` (or the SSH user's home).  A worker without an explicit
``python:`` runs its agent (and so its tasks) on that venv's interpreter when it exists, else
on ``python3``; so heads of different versions can share workers, each using its own venv.
"""

from __future__ import annotations

import functools

DIST = "lasair-parallel"
VENV_ROOT = ".lasair-parallel"  # relative to the worker's workdir or home


@functools.cache
def head_version() -> str | None:
    """The installed version of this project for the head's interpreter (None if not installed).

    Read as the agent reads the worker's (``project_version``: the first dist-info on
    sys.path), not through importlib.metadata, whose import cost ~8 ms of every command's
    start (``python -X importtime``); tests/test_agent_version.py checks they agree."""
    from lasair_parallel.head.worker.agent import project_version

    return project_version()


def venv_dir(version: str) -> str:
    """The deployed venv for ``version``, relative to the worker's workdir or home."""
    return f"{VENV_ROOT}/{version}"
