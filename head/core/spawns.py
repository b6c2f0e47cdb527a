"""Subtasks: tasks a running attempt hands to the head (:func:`lasair_parallel.tasks.emit.spawn`).

They arrive as ``spawn`` events (one Task JSON per line) before the attempt's ``exit``, and
wait here, in memory, per attempt.  Only when the attempt succeeds are they written to the
journal, in the same transaction as the parent's success (see
:func:`lasair_parallel.head.core.dynjournal.insert_children`): a failed, killed or duplicated
attempt's spawns are dropped, and a head killed mid-spawning loses nothing but the parent's
running attempt, whose rerun spawns them again: exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from lasair_parallel.tasks import Task

# Defaults for --spawn-depth and --spawn-max.  Depth 8: OpenQuake splits a heavy task once or
# twice; 8 levels already allow a 2^8 fan-out of one task, and a deeper chain is a runaway
# (a task that respawns itself).  1 000 000 spawned tasks per run: ten times the largest
# plans this project runs (~100 000 tasks), far below what the journal holds.
SPAWN_DEPTH = 8
SPAWN_MAX = 1_000_000


class Spawns:
    """Spawned tasks of running attempts, held until each attempt ends."""

    def __init__(self, max_depth: int, max_total: int, known: Callable[[str], bool]):
        self.max_depth = max_depth
        self.max_total = max_total
        self.known = known  # is this id already a task of the run?
        self.pending: dict[str, list[Task]] = {}
        self.errors: dict[str, str] = {}
        self.total = 0  # spawned and committed so far in this run (the bound counts these)

    def receive(self, key: str, parent: str, parent_depth: int, data: str) -> str | None:
        """Take the lines of a ``spawn`` event; return why the attempt must fail, if so."""
        if key in self.errors:
            return None  # already failing: the rest is discarded
        got = self.pending.setdefault(key, [])
        ids = {t.id for t in got}
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                if not d.get("id"):
                    d["id"] = f"{parent}.{len(got) + 1}"
                task = Task.from_json(d)
            except (ValueError, KeyError, TypeError) as e:
                return self._fail(key, f"spawn: not a task ({e}): {line[:80]!r}")
            if parent_depth + 1 > self.max_depth:
                return self._fail(key, f"spawn: depth {parent_depth + 1} exceeds the bound of "
                                       f"{self.max_depth} (--spawn-depth): a task spawning "
                                       "itself without end?")
            if self.total + len(got) + 1 > self.max_total:
                return self._fail(key, f"spawn: more than {self.max_total} spawned tasks in "
                                       "this run (--spawn-max)")
            if task.id in ids or self.known(task.id):
                return self._fail(key, f"spawn: task id {task.id!r} is already taken; give "
                                       "each spawned task an id of its own")
            bad = [a for a in task.after if a not in ids and not self.known(a)]
            if bad:
                return self._fail(key, f"spawn: task {task.id} runs after {bad[0]!r}, which "
                                       "is not a task of this run (nor spawned before it)")
            got.append(task)
            ids.add(task.id)
        return None

    def _fail(self, key: str, why: str) -> str:
        self.errors[key] = why
        self.pending.pop(key, None)
        return why

    def error(self, key: str) -> str | None:
        return self.errors.get(key)

    def take(self, key: str) -> list[Task]:
        """The attempt succeeded: its spawns, to commit."""
        self.errors.pop(key, None)
        got = self.pending.pop(key, [])
        self.total += len(got)
        return got

    def drop(self, key: str) -> None:
        """The attempt did not succeed: forget its spawns."""
        self.pending.pop(key, None)
        self.errors.pop(key, None)
