"""One exception hierarchy for the whole library (the CLI turns these into one-line errors).

``ParallelError``
    ``UsageError``: bad input (a hosts file, a task list, an app option, a run directory); the
    message names the file, the line and the fix.  The CLI exits 2.
    ``RunFailed``: a run ended with failed tasks (raised by ``RunResult.check()``); its
    ``result`` holds every attempt.
"""

from __future__ import annotations


class ParallelError(Exception):
    """Base of every error this library raises on purpose."""


class UsageError(ParallelError, ValueError):
    """Input that cannot be used; the message says where and how to fix it."""


class RunFailed(ParallelError):
    """A run finished with failed (or unfinished) tasks."""

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result
