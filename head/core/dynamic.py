"""Dynamic work in the scheduler: dependencies, spawned tasks, measured sizing, backups.

The scheduler calls these hooks at a few points (launch, a spawn event, an attempt's end, a
success, a final failure, idle slots); the logic lives here and in :mod:`deps`,
:mod:`spawns`, :mod:`sizing` and :mod:`backups`, so ``scheduler.py`` stays about dispatch.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

from gevent.lock import Semaphore
from lasair_parallel.head.core import dynjournal
from lasair_parallel.head.core.backups import Backups
from lasair_parallel.head.core.deps import DepGraph
from lasair_parallel.head.core.failures import exited_well
from lasair_parallel.head.core.sizing import Rates
from lasair_parallel.head.core.spawns import Spawns
from lasair_parallel.tasks import Task
from lasair_parallel.tasks.protocol import ENV_DEPTH

log = logging.getLogger(__name__)


class Dynamic:
    """The scheduler's dynamic-work state (one per :class:`Scheduler`)."""

    def __init__(self, sched, tasks: list[Task], depths: dict[str, int] | None = None):
        self.s = sched
        opts = sched.opts
        ids = {t.id for t in tasks}
        # Tasks of the run not handed to this scheduler were done by an earlier run.
        self.graph = DepGraph(tasks, done={a for t in tasks for a in t.after if a not in ids})
        for t in tasks:  # resumed: "after X" also waits for what X spawned, still to run
            if t.after:
                self.graph.extend_one(t.id, [c for c, _ in dynjournal.descendants(
                    sched.journal.db, t.after) if c in ids])
        self.depth: dict[str, int] = dict(depths or {})
        self.spawns = Spawns(opts.spawn_depth, opts.spawn_max, self._known)
        self.rates = Rates(sum(t.weight for t in tasks),
                           sum(h.spec.procs for h in sched.hosts), opts.task_seconds)
        # A resumed run sizes its first tasks from what the earlier run measured.
        self.rates.seed(dynjournal.earlier_successes(sched.journal.db))
        self.backups = Backups(sched, self, enabled=opts.backups)
        self.skipped = 0  # tasks skipped because a task they run after failed for good
        self.spawned = 0  # spawned tasks committed in this run
        self.won: set[str] = set()  # tasks that have succeeded in this run
        # Tasks that failed for good or were skipped in this run -> the task that failed.
        self.lost: dict[str, str] = {}
        self.keys: dict[str, set[str]] = {}  # task id -> keys of its running attempts
        self.began: dict[str, float] = {}  # attempt key -> monotonic launch time
        self._committed: dict[str, list[Task]] = {}
        self._copy_locks: dict[str, Semaphore] = {}  # task id -> its copy-back turn
        self._order = itertools.count(len(tasks))  # heap tie-break after the planned tasks

    def _known(self, task_id: str) -> bool:
        if task_id in self.s.tasks:
            return True
        return self.s.journal.db.execute("SELECT 1 FROM tasks WHERE id = ?",
                                         (task_id,)).fetchone() is not None

    # -- dispatch
    def blocked(self, task_id: str) -> bool:
        """Does ``task_id`` still wait for tasks it runs after?"""
        return self.graph.blocked(task_id)

    def push(self, task: Task) -> None:
        heapq.heappush(self.s.heap, (-task.weight, next(self._order), task.id))

    def with_spawned_inputs(self, task: Task) -> Task:
        """A task that runs after others also reads what their spawned tasks wrote: their
        outputs become its inputs, staged like any other (a gather over split work)."""
        if not task.after:
            return task
        extra = [o for _, outs in dynjournal.descendants(self.s.journal.db, task.after)
                 for o in outs if o not in task.inputs]
        if extra:
            task = replace(task, inputs=task.inputs + tuple(dict.fromkeys(extra)))
            self.s.tasks[task.id] = task
        return task

    def launched(self, h, task: Task, key: str, msg: dict) -> None:
        """An attempt is being started: sizing hints and the spawn channel go with it."""
        self.keys.setdefault(task.id, set()).add(key)
        self.began[key] = time.monotonic()
        msg["env"].update(self.rates.env(task, h.label))
        msg["env"][ENV_DEPTH] = str(self.depth.get(task.id, 0))
        msg["spawn"] = True

    def idle(self) -> None:
        """Dispatch found nothing more to start: perhaps a backup copy."""
        self.backups.consider()

    # -- events
    def on_spawn(self, h, ev: dict) -> None:
        r = h.running.get(ev["key"])
        if r is None:
            return  # an attempt already given up: its spawns are discarded
        why = self.spawns.receive(r.key, r.task.id, self.depth.get(r.task.id, 0), ev["data"])
        if why and h.conn is not None:
            log.warning("%s: %s", r.key, why)
            h.conn.send({"op": "kill", "key": r.key})  # it fails with that reason at exit

    @contextlib.contextmanager
    def copy_back(self, task_id: str) -> Iterator[None]:
        """Held while one attempt of ``task_id`` copies its outputs back and is recorded:
        when a backup and its original both finish, the later one waits, then finds the
        task won (:meth:`superseded`) and copies nothing over the winner's files (two copies
        at once would also share the head's temporary file)."""
        lock = self._copy_locks.setdefault(task_id, Semaphore())
        try:
            with lock:
                yield
        finally:
            if not lock.locked() and self._copy_locks.get(task_id) is lock:
                del self._copy_locks[task_id]  # no other attempt waits for it

    def superseded(self, task_id: str) -> bool:
        """Has another attempt of this task already succeeded (a backup race)?"""
        return task_id in self.won

    def twin_running(self, r) -> bool:
        """Does another attempt of ``r``'s task still run (a backup, or the original)?"""
        return bool(self.keys.get(r.task.id, set()) - {r.key})

    def forget(self, r) -> None:
        keys = self.keys.get(r.task.id)
        if keys is not None:
            keys.discard(r.key)
            if not keys:
                del self.keys[r.task.id]
        self.began.pop(r.key, None)

    def settle(self, h, r, ok: bool, reason: str | None) -> tuple[bool, bool, str | None]:
        """Before the scheduler records an attempt's end: ``(handled, ok, reason)``.

        A spawn error makes a success a failure.  An attempt whose twin already won is
        recorded as killed (its outputs, rows and spawns are not kept); a failed attempt
        whose twin still runs is recorded without retrying: the twin carries the task.
        """
        why = self.spawns.error(r.key)
        if why:
            ok, reason = False, why
        self.forget(r)
        if r.task.id in self.won:
            self.s._end(h, r, "killed", None, None,
                        f"a copy of this task succeeded first ({self.backups.winner(r)})")
            return True, ok, reason
        if not ok and self.twin_running(r):
            self.s._end(h, r, "failed", None, None,
                        (reason or "failed") + "; its copy still runs")
            return True, ok, reason
        return False, ok, reason

    def ending(self, r, outcome: str) -> Callable | None:
        """In the scheduler's ``_end``: the transaction hook committing a success's spawns."""
        if outcome != "ok":
            self.spawns.drop(r.key)
            return None
        children = self.spawns.take(r.key)
        if not children:
            return None
        self._committed[r.key] = children
        depth = self.depth.get(r.task.id, 0) + 1
        journal = self.s.journal
        return lambda db: dynjournal.insert_children(db, journal, r.task.id, r.attempt, depth,
                                                     children)

    def exited(self, h, r, ev: dict) -> None:
        """A task on a host with copy-back (``h.stager``) exited and its outputs are about to
        be copied back: learn its run time now if it exited well.  Its slot is free already,
        and the next task on it should start with the rate (copying back can take longer
        than the task itself).  Such a host's successes are not learnt again (``succeeded``):
        each one exited well and was not superseded then."""
        if exited_well(ev) and not self.superseded(r.task.id):
            self._learn(h, r, ev)

    def _learn(self, h, r, ev: dict) -> None:
        began = ev.get("t"), self._start_time(r)
        if began[0] and began[1]:
            self.rates.learn(h.label, r.task.weight, max(0.0, began[0] - began[1]))

    def succeeded(self, h, r, ev: dict) -> None:
        """After a success is recorded: learn the rate (unless learnt at its exit), add its
        spawns, release dependents, stop its twin."""
        self.won.add(r.task.id)
        if h.stager is None:  # else learnt at its exit (``exited``)
            self._learn(h, r, ev)
        children = self._committed.pop(r.key, [])
        if children:
            self._add_children(r.task.id, children)
        for tid in self.graph.succeeded(r.task.id):
            self.push(self.s.tasks[tid])
        self.backups.won(r)

    def _start_time(self, r) -> float | None:
        row = self.s.journal.db.execute(
            "SELECT start FROM attempts WHERE task_id = ? AND attempt = ?",
            (r.task.id, r.attempt)).fetchone()
        return row[0] if row else None

    def _add_children(self, parent: str, children: list[Task]) -> None:
        depth = self.depth.get(parent, 0) + 1
        for c in children:
            self.s.tasks[c.id] = c
            self.depth[c.id] = depth
            self.rates.total_weight += c.weight
        # Not a task of this scheduler: done by an earlier run (spawns checked it exists).
        done = {a for c in children for a in c.after if a in self.won or a not in self.s.tasks}
        # Whatever waits for the parent waits for its spawns too; the children's own
        # ``after`` are tracked like planned ones.
        self.graph.extend(parent, [c.id for c in children])
        for c in children:
            if not self.graph.add(c, done):
                self.push(c)
        self.s.total += len(children)
        self.spawned += len(children)
        # A spawn running after a task that already failed for good (or was skipped) would
        # wait for ever: skipped now, with what waits for it, as planned dependents are.
        for c in children:
            gone = next((a for a in c.after if a in self.lost), None)
            if gone is not None and c.id not in self.lost:
                self._skip([c.id, *self.graph.drop(c.id)], self.lost[gone])

    def failed_for_good(self, r) -> None:
        """``r``'s task failed for good: skip everything downstream of it."""
        self.lost[r.task.id] = r.task.id
        self._skip(self.graph.failed(r.task.id), r.task.id)

    def _skip(self, ids: list[str], failed: str) -> None:
        for tid in ids:
            self.lost[tid] = failed
            dynjournal.skip(self.s.journal, self.s.tasks[tid],
                            f"skipped: {failed}, which it runs after, failed")
            self.skipped += 1
            if self.s.on_task is not None:
                self.s.on_task(tid)
