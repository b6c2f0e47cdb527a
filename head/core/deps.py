"""Task dependencies: ``Task.after`` checked before a run, and tracked while it runs.

A task waits until every task it names in ``after`` has succeeded, and also every task those
spawned (see :mod:`lasair_parallel.head.core.spawns`): "after X" means after X's whole work.
When one fails for good, everything downstream of it is skipped, with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable

from lasair_parallel.tasks import Task
from lasair_parallel.tasks.errors import UsageError


class DependencyError(UsageError):
    """Unknown ids or a cycle in ``after``: one line, exit status 2."""


def validate(tasks: Iterable[Task]) -> None:
    """Refuse ``after`` naming unknown ids, a task itself, or a cycle (one line)."""
    by_id = {t.id: t for t in tasks}
    for t in by_id.values():
        for a in t.after:
            if a not in by_id:
                raise DependencyError(f"task {t.id}: runs after {a!r}, which is not a task of "
                                      "this run; fix its `after`")
    # Iterative depth-first search (plans have 100 000s of tasks: no recursion limit).
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for root in by_id:
        if state.get(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        state[root] = 1
        while stack:
            tid, i = stack[-1]
            after = by_id[tid].after
            if i == len(after):
                stack.pop()
                path.pop()
                state[tid] = 2
                continue
            stack[-1] = (tid, i + 1)
            nxt = after[i]
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                raise DependencyError("tasks depend on each other in a cycle: "
                                      + " -> ".join(cycle[::-1]) + "; remove one `after`")
            if not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, 0))
                path.append(nxt)


class DepGraph:
    """Which tasks still wait, for what; what a success releases and a failure skips."""

    def __init__(self, tasks: Iterable[Task], done: set[str]):
        self.waiting: dict[str, set[str]] = {}  # task -> ids it still waits for
        self.dependents: dict[str, set[str]] = {}  # id -> tasks waiting for it
        for t in tasks:
            self.add(t, done)

    def add(self, t: Task, done: set[str]) -> bool:
        """Track ``t``; True when it must wait (some of its ``after`` are not done)."""
        need = {a for a in t.after if a not in done}
        if not need:
            return False
        self.waiting[t.id] = need
        for a in need:
            self.dependents.setdefault(a, set()).add(t.id)
        return True

    def extend_one(self, task_id: str, more: Iterable[str]) -> None:
        """``task_id`` also waits for ``more`` (tasks spawned by those it runs after)."""
        more = list(more)
        if more:
            self.waiting.setdefault(task_id, set()).update(more)
            for m in more:
                self.dependents.setdefault(m, set()).add(task_id)

    def blocked(self, task_id: str) -> bool:
        return task_id in self.waiting

    def extend(self, parent: str, children: Iterable[str]) -> None:
        """``parent`` spawned ``children``: whatever waits for it waits for them too."""
        children = list(children)
        for d in self.dependents.get(parent, ()):
            self.waiting[d].update(children)
            for c in children:
                self.dependents.setdefault(c, set()).add(d)

    def succeeded(self, task_id: str) -> list[str]:
        """``task_id`` is done: the tasks that may start now."""
        ready = []
        for d in sorted(self.dependents.pop(task_id, ())):
            w = self.waiting.get(d)
            if w is None:
                continue
            w.discard(task_id)
            if not w:
                del self.waiting[d]
                ready.append(d)
        return ready

    def drop(self, task_id: str) -> list[str]:
        """``task_id`` will not run (it is skipped): stop tracking it; every task downstream
        of it, to be skipped too."""
        self.waiting.pop(task_id, None)
        return self.failed(task_id)

    def failed(self, task_id: str) -> list[str]:
        """``task_id`` failed for good: every task downstream of it, to be skipped."""
        out: list[str] = []
        todo = [task_id]
        while todo:
            for d in sorted(self.dependents.pop(todo.pop(), ())):
                if self.waiting.pop(d, None) is not None:
                    out.append(d)
                    todo.append(d)
        return out
