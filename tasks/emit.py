"""Stream result rows from a running task to the head, instead of writing files on the worker.

A task whose ``Task.stream`` names an output (e.g. ``shards/<id>.csv``) is started with a pipe
on file descriptor ``$PARALLEL_EMIT_FD``.  The line format, usable from any program:

    every line written to that descriptor is one CSV record, ending in "\\n"; a record may not
    contain a newline (quote-free CSV, or escape newlines yourself).

The agent forwards the lines over its channel as they come; the head appends them, in order, to a
spool file and, only when the attempt succeeds, renames the spool to the run directory's
``<stream>`` path.  Rows of a failed, timed-out, killed or duplicated attempt are discarded.
When the head writes slower than the task emits, the pipe fills and ``emit`` blocks: the head's
memory stays bounded by the channel window, whatever the task produces.
"""

from __future__ import annotations

import atexit
import csv
import io
import json
import os
import weakref
from collections.abc import Iterable, Sequence

from lasair_parallel.tasks.model import Task
from lasair_parallel.tasks.protocol import ENV_EMIT_FD as EMIT_FD_ENV
from lasair_parallel.tasks.protocol import ENV_PATH_MAP as PATH_MAP_ENV
from lasair_parallel.tasks.protocol import ENV_RATE as RATE_ENV
from lasair_parallel.tasks.protocol import ENV_SPAWN_FD as SPAWN_FD_ENV
from lasair_parallel.tasks.protocol import ENV_TASK_SECONDS as TASK_SECONDS_ENV
from lasair_parallel.tasks.protocol import ENV_WEIGHT as WEIGHT_ENV

# Emitters not yet garbage: their buffered records are sent when the process exits, also when
# it skips the interpreter's teardown (``finish.exit_task``), where the buffer's own clean-up
# would have sent them.
_LIVE: weakref.WeakSet[Emitter] = weakref.WeakSet()


def _flush_live() -> None:
    for e in list(_LIVE):
        try:
            e.close()
        except (OSError, ValueError):  # the head went away or the file is closed: nothing to do
            pass


class Emitter:
    """Writes CSV records to the head's stream; use :func:`emitter` to get one."""

    def __init__(self, fd: int):
        self._f = os.fdopen(fd, "w", buffering=1 << 16, newline="", closefd=False)
        self._buf = io.StringIO()
        self._w = csv.writer(self._buf, lineterminator="\n")
        atexit.unregister(_flush_live)  # registered once, however many emitters are made
        atexit.register(_flush_live)
        _LIVE.add(self)

    def rows(self, rows: Iterable[Sequence[object]]) -> None:
        """Send rows (sequences of values; None is written as an empty field)."""
        for row in rows:
            for v in row:
                if isinstance(v, str) and ("\n" in v or "\r" in v):
                    # One record per line on the wire: a line break would split it in two.
                    raise ValueError(f"emit: a value contains a line break: {v[:40]!r}")
            self._w.writerow(["" if v is None else v for v in row])
        text = self._buf.getvalue()
        self._buf.seek(0)
        self._buf.truncate()
        self.lines(text)

    def lines(self, text: str) -> None:
        """Send pre-formatted CSV text: whole records, each ending in a newline."""
        if text and not text.endswith("\n"):
            raise ValueError("emit: CSV text must end with a newline")
        self._f.write(text)

    def close(self) -> None:
        self._f.flush()


def emitter() -> Emitter | None:
    """The stream to the head, or None when the task was not started with one."""
    fd = os.environ.get(EMIT_FD_ENV)
    return Emitter(int(fd)) if fd else None


def emit(rows: Iterable[Sequence[object]]) -> None:
    """Send ``rows`` to the head (a shortcut for one-off calls; flushes each time)."""
    e = emitter()
    if e is None:
        raise RuntimeError(f"emit: no stream (${EMIT_FD_ENV} is not set); run the task through "
                           "`parallel run` with a streamed output")
    e.rows(rows)
    e.close()


def spawn(*tasks: Task) -> None:
    """Hand new tasks to the head (subtasks): they run after this attempt succeeds.

    Each task goes over ``$PARALLEL_SPAWN_FD`` as one JSON line (any program may write that
    format: one ``Task.to_json()`` object per line; from ``sh``, redirect to
    ``/dev/fd/$PARALLEL_SPAWN_FD``: dash takes only one-digit descriptors after ``>&``).  The head journals them with this task as
    their parent and keeps them only if this attempt succeeds: a failed, killed or duplicated
    attempt's spawns are discarded, and a retry that spawns the same ids spawns them once.
    An empty ``id`` gets ``<parent id>.<n>`` (n counts this attempt's spawns from 1): give
    ids of your own when the spawns of a retry may come in another order.  A spawned task
    may spawn in turn, within the head's bounds (``--spawn-depth``, ``--spawn-max``).
    """
    fd = os.environ.get(SPAWN_FD_ENV)
    if not fd:
        raise RuntimeError(f"spawn: no channel to the head (${SPAWN_FD_ENV} is not set); run "
                           "the task through `parallel run`")
    text = "".join(json.dumps(t.to_json(), separators=(",", ":")) + "\n" for t in tasks)
    _write_all(int(fd), text.encode())  # a pipe may take a long line in pieces


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def head_path(path: str) -> str:
    """The head's name for a path this worker sees (the inverse of the argv path map), for
    the ``outputs`` of a spawned task: the head copies declared outputs back by its own name.
    Where the head's files are shared, paths are the same."""
    pairs = sorted(json.loads(os.environ.get(PATH_MAP_ENV) or "{}").items(),
                   key=lambda kv: -len(kv[1]))
    for head, worker in pairs:
        if path == worker or path.startswith(worker.rstrip("/") + "/"):
            return head + path[len(worker):]
    return path


def sizing() -> tuple[float | None, float | None, float]:
    """The head's sizing hints for this task: ``(seconds per unit of weight, longest wanted
    task in seconds, this task's weight)``; None where the head has no measurement yet."""
    def num(name: str) -> float | None:
        v = os.environ.get(name)
        return float(v) if v else None
    return num(RATE_ENV), num(TASK_SECONDS_ENV), num(WEIGHT_ENV) or 1.0
