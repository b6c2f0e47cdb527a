"""Backup tasks for stragglers (MapReduce, section 3.6): when slots go idle at the end of a
run and a task runs far beyond its prediction, start a copy on another host.

The first attempt to succeed wins; the scheduler then kills the other (its outputs, rows and
spawns are not kept: :meth:`Dynamic.settle`).  The journal marks the copy (``attempts.backup``)
and says why the loser was killed.  ``--no-backups`` turns this off.

No polling: when nothing is overdue yet, one timer is set for the moment the first running
attempt will be, and dispatch looks again then (or earlier, at the next event).
"""

from __future__ import annotations

import logging
import time

import gevent
from lasair_parallel.head.core import dynjournal

log = logging.getLogger(__name__)

# "Far beyond its prediction": more than BACKUP_FACTOR times the predicted time and at least
# BACKUP_MIN_EXTRA seconds over it.  MapReduce backs up the last in-progress tasks (44%
# shorter sort runs).  2x: the rate is measured under the run's own load, so a loaded machine
# stretches predictions too; only the spread counts.  3x was tried and loses the gain on a 4x
# slower host (a copy started at 3x of a 1.3 s piece ends after the original's 5.1 s;
# benchmarks/heavy_tail.py).  1.5 s: short tasks on a busy 2-core box vary by ~1 s, and a copy
# of those would only cost a slot and an attempt.
BACKUP_FACTOR = 2.0
BACKUP_MIN_EXTRA = 1.5


class Backups:
    """Decides on and starts backup copies; one copy per task at most."""

    def __init__(self, sched, dyn, enabled: bool = True):
        self.s = sched
        self.dyn = dyn
        self.enabled = enabled
        self.copies: dict[str, str] = {}  # task id -> key of its backup attempt
        self.winners: dict[str, str] = {}  # task id -> key of the attempt that won
        self._timer: gevent.Greenlet | None = None
        self._timer_at = float("inf")

    def winner(self, r) -> str:
        key = self.winners.get(r.task.id, "")
        return f"attempt {key.rpartition('#')[2]}" if key else "another attempt"

    def _idle_hosts(self) -> list:
        return [h for h in self.s.hosts
                if h.state == "up" and not h.draining and h.free and h.conn is not None]

    def consider(self) -> None:
        """Called when dispatch has nothing left to start."""
        s = self.s
        if not self.enabled or s.stopping or s.heap or s.retry_ready:
            return
        idle = self._idle_hosts()
        if not idle:
            return
        now = time.monotonic()
        best = None  # (overdue ratio, host, running)
        soonest = float("inf")
        for h in s.hosts:
            for r in list(h.running.values()):
                tid = r.task.id
                if tid in self.copies or self.dyn.twin_running(r) or r.key not in self.dyn.began:
                    continue
                # The shorter of its host's and the run's prediction: a host that is slow
                # every time is still a straggler's host, and a copy elsewhere gains.
                preds = [p for p in (self.dyn.rates.predict(r.task, h.label),
                                     self.dyn.rates.predict(r.task)) if p is not None]
                if not preds:
                    continue
                pred = min(preds)
                due = self.dyn.began[r.key] + max(pred * BACKUP_FACTOR, pred + BACKUP_MIN_EXTRA)
                if now < due:
                    soonest = min(soonest, due)
                    continue
                ratio = (now - self.dyn.began[r.key]) / max(pred, 1e-3)
                if best is None or ratio > best[0]:
                    best = (ratio, h, r)
        if best is not None:
            _, h, r = best
            others = [x for x in idle if x is not h and s._fits(x, r.task)]
            if others:
                self._start_copy(others[0], r)
                return self.consider()  # more idle slots, more stragglers
        if soonest < float("inf"):
            self._wake_at(soonest)

    def _start_copy(self, h, r) -> None:
        s = self.s
        log.info("%s runs beyond its prediction; starting a backup copy on %s", r.key, h.label)
        s._launch(h, r.task)
        key = f"{r.task.id}#{s.attempt_no[r.task.id]}"
        self.copies[r.task.id] = key
        dynjournal.mark_backup(s.journal, r.task.id, s.attempt_no[r.task.id])

    def _wake_at(self, when: float) -> None:
        if self._timer is not None and not self._timer.dead and self._timer_at <= when:
            return
        if self._timer is not None:
            self._timer.kill(block=False)
        self._timer_at = when
        self._timer = gevent.spawn_later(max(0.0, when - time.monotonic()) + 0.01, self._wake)

    def _wake(self) -> None:
        self._timer_at = float("inf")
        self.s._dispatch()

    def won(self, r) -> None:
        """``r`` succeeded: kill the other attempts of its task."""
        self.winners[r.task.id] = r.key
        for key in self.dyn.keys.get(r.task.id, set()) - {r.key}:
            for h in self.s.hosts:
                if key in h.running and h.conn is not None:
                    h.conn.send({"op": "kill", "key": key})
