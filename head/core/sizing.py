"""Measured task sizing: seconds per unit of weight, learned from finished attempts.

A planner's weight is not a duration (OpenQuake's lesson: it measures the rate and splits
work below a ``task_duration``).  The head keeps, per host and overall, the ratio of summed
run time to summed weight over successful attempts (counted when they exit with status 0,
before their outputs are copied back: ``Dynamic.exited``), and hands it to each task it
starts (``$PARALLEL_RATE``, ``$PARALLEL_WEIGHT``), with the longest wanted task
(``$PARALLEL_TASK_SECONDS``): a splittable task spawns the rest of its work as subtasks.
Backup tasks use the same rate to see a task running far beyond its prediction.
"""

from __future__ import annotations

from lasair_parallel.tasks import Task
from lasair_parallel.tasks.protocol import ENV_RATE, ENV_TASK_SECONDS, ENV_WEIGHT

# A host's own rate is used once it has this many successes; before, the run's overall rate.
# Three: one sample is noise (a cold cache), three already show a slow host.
MIN_SAMPLES = 3
# Automatic --task-seconds: the predicted work of the whole run per slot, over this many
# pieces.  Then the last task to finish overruns the ideal makespan by at most ~1/10 of it,
# the 1.10x target of the heavy-tail benchmark (benchmarks/README.md).
AUTO_PIECES = 10
AUTO_FLOOR = 1.0  # seconds: below this, starting a task (~10 ms) stops being negligible


class Rates:
    """Seconds per unit of weight, per host and overall."""

    def __init__(self, total_weight: float = 0.0, slots: int = 1,
                 task_seconds: float | None = None):
        self._host: dict[str, tuple[float, float, int]] = {}
        self._all = (0.0, 0.0, 0)
        self.total_weight = total_weight  # planned plus spawned, for automatic sizing
        self.slots = max(1, slots)
        self.fixed = task_seconds  # --task-seconds, else automatic

    def learn(self, host: str, weight: float, seconds: float) -> None:
        """One successful attempt of ``weight`` took ``seconds`` on ``host``."""
        if weight <= 0 or seconds < 0:
            return
        self._add(host, seconds, weight, 1)

    def _add(self, host: str, seconds: float, weight: float, n: int) -> None:
        s, w, k = self._host.get(host, (0.0, 0.0, 0))
        self._host[host] = (s + seconds, w + weight, k + n)
        s, w, k = self._all
        self._all = (s + seconds, w + weight, k + n)

    def seed(self, rows) -> None:
        """Start from what an earlier run in this run directory measured:
        ``(host, seconds, weight, attempts)`` rows (dynjournal.earlier_successes)."""
        for host, seconds, weight, n in rows:
            if weight and weight > 0 and seconds is not None and seconds >= 0 and n:
                self._add(host, seconds, weight, n)

    def rate(self, host: str | None = None) -> float | None:
        """Seconds per unit of weight on ``host`` (the overall rate until it has its own)."""
        s, w, n = self._host.get(host, (0.0, 0.0, 0)) if host else (0.0, 0.0, 0)
        if n >= MIN_SAMPLES and w > 0:
            return s / w
        s, w, n = self._all
        return s / w if n and w > 0 else None

    def predict(self, task: Task, host: str | None = None) -> float | None:
        """Expected seconds of ``task`` on ``host``, or None before any measurement."""
        r = self.rate(host)
        # Weight 0 (a gather, a marker task) says nothing about its duration.
        return None if r is None or task.weight <= 0 else r * task.weight

    def task_seconds(self) -> float | None:
        """The longest wanted task: --task-seconds, else from the measured rate."""
        if self.fixed:
            return self.fixed
        r = self.rate()
        if r is None:
            return None
        return max(AUTO_FLOOR, r * self.total_weight / self.slots / AUTO_PIECES)

    def env(self, task: Task, host: str) -> dict[str, str]:
        """The sizing hints for one attempt of ``task`` on ``host``."""
        out = {ENV_WEIGHT: repr(float(task.weight))}
        r = self.rate(host)
        if r is not None:
            out[ENV_RATE] = f"{r:.6g}"
        s = self.task_seconds()
        if s is not None:
            out[ENV_TASK_SECONDS] = f"{s:.6g}"
        return out
