"""Rows streamed by running tasks, spooled on the head and kept only for successful attempts.

Each attempt that streams gets a spool file ``<run>/.spool/<task>.<attempt>``; rows are
appended as they arrive (in the pump greenlet, so a slow disk slows the reading of that host's
channel, and back-pressure reaches the task through the agent's pipe).  When the attempt
succeeds, the spool is renamed to the task's ``stream`` path in the run directory: the output
appears whole, once.  Any other end (failure, timeout, lost host, interrupt) deletes it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import BinaryIO


class Spools:
    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self._open: dict[str, tuple[BinaryIO, Path, Path]] = {}
        self.bytes_in = 0

    def start(self, key: str, stream: str) -> None:
        """Prepare the spool of attempt ``key`` whose rows go to ``<run>/<stream>``."""
        spool_dir = self.run_dir / ".spool"
        spool_dir.mkdir(parents=True, exist_ok=True)
        tmp = spool_dir / key.replace("/", "_").replace("#", ".")
        final = self.run_dir / stream
        self._open[key] = (open(tmp, "wb"), tmp, final)  # noqa: SIM115 - closed in end()

    def write(self, key: str, data: str) -> None:
        entry = self._open.get(key)
        if entry is None:
            return  # rows of an attempt already given up: discarded
        raw = data.encode()
        entry[0].write(raw)
        self.bytes_in += len(raw)

    def end(self, key: str, keep: bool) -> None:
        """Commit (``keep``) or discard the attempt's rows."""
        entry = self._open.pop(key, None)
        if entry is None:
            return
        f, tmp, final = entry
        if keep:
            f.flush()
            os.fsync(f.fileno())
            f.close()
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        else:
            f.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def close(self) -> None:
        for key in list(self._open):
            self.end(key, keep=False)
