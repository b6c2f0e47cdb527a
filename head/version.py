"""The head's own version, and where ``parallel deploy`` puts a version on a worker.

A deploy installs the project into ``<base>/.lasair-parallel/<version>/`` on each worker, where
``<base>`` is the worker's ``workdir`` (or the SSH user's home).  A worker without an explicit
``python:`` runs its agent (and so its tasks) on that venv's interpreter when it exists, else
on ``python3``; so heads of different versions can share workers, each using its own venv.
"""

from __future__ import annotations

DIST = "lasair-parallel"
VENV_ROOT = ".lasair-parallel"  # relative to the worker's workdir or home


def head_version() -> str | None:
    """The installed version of this project for the head's interpreter (None if not installed)."""
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - Python < 3.8
        return None
    try:
        return version(DIST)
    except PackageNotFoundError:
        return None


def venv_dir(version: str) -> str:
    """The deployed venv for ``version``, relative to the worker's workdir or home."""
    return f"{VENV_ROOT}/{version}"
