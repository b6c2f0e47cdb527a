"""Run options: what the command line sets for one run, and GNU parallel's --halt policy."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lasair_parallel.tasks.errors import UsageError


class HaltError(UsageError):
    pass


@dataclass(frozen=True)
class HaltPolicy:
    """GNU parallel's --halt: ``never``, or ``now|soon,fail=N`` / ``now|soon,fail=P%``."""

    when: str = "never"  # never | soon | now
    fails: int | None = None
    percent: float | None = None

    @classmethod
    def parse(cls, text: str | None) -> HaltPolicy:
        if not text or text == "never":
            return cls()
        m = re.fullmatch(r"(now|soon),fail=(\d+)(%?)", text.strip())
        if not m:
            raise HaltError(f"--halt {text!r}: use never, now,fail=N, soon,fail=N or now,fail=P%")
        if m[3]:
            return cls(m[1], percent=float(m[2]))
        return cls(m[1], fails=int(m[2]))

    def triggered(self, failed: int, finished: int) -> bool:
        if self.when == "never" or failed == 0:
            return False
        if self.fails is not None:
            return failed >= self.fails
        return finished > 0 and 100.0 * failed / finished >= (self.percent or 0)


@dataclass
class Options:
    retries: int = 0
    retry_delay: float = 1.0  # first retry backoff; doubles per failure of the same task
    timeout: float | None = None
    halt: HaltPolicy = field(default_factory=HaltPolicy)
    heartbeat: float = 1.0
    heartbeat_timeout: float = 10.0  # 10 missed beats: a GC pause or a busy worker is not "down"
    verify_host_keys: bool = True
    ssh_config: str | None = None
    clean_workers: bool = False  # remove worker-side run folders at the end (hostset.py)
    memfree: int | None = None  # bytes; do not start tasks on a host with less available
    # The lasair-parallel version workers must run (app runs: the head's own); a worker whose
    # agent reports another is refused, with a message saying to deploy.
    require_version: str | None = None
    # Dynamic work (head.core.dynamic): the longest wanted task in seconds (None: from the
    # measured rate), backup copies of stragglers, and the bounds on spawned tasks.
    task_seconds: float | None = None
    backups: bool = True
    spawn_depth: int = 8  # head.core.spawns.SPAWN_DEPTH
    spawn_max: int = 1_000_000  # head.core.spawns.SPAWN_MAX
