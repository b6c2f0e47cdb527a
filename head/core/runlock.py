"""One head per run directory: an advisory lock held for the head's lifetime.

Two heads on one run directory would both run every task (seen: 32 runs for 16 tasks).  The
lock is ``flock`` on ``<run dir>/head.lock``: the kernel releases it when the holding process
exits in any way (SIGKILL, a crash, a power cut of the head), so a stale lock never blocks a
resume, and no pid file has to be guessed at.  The file also says who holds it (pid and host),
for the message the second head prints.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from lasair_parallel.tasks.errors import UsageError

LOCK_NAME = "head.lock"


class RunLocked(UsageError):
    """Another head is running this run directory."""


class RunLock:
    """Hold ``run_dir``'s lock until :meth:`release` (or this process's exit)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self.fd = -1

    def acquire(self) -> RunLock:
        """Take the lock at once or raise :class:`RunLocked` naming the holder."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunLocked(
                f"{self.path.parent}: another head is running this run ({holder}); wait for "
                "it or stop it, or give this run its own --run-dir or --name") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the last descriptor drops the flock
            self.fd = -1
