"""Atomic output files: a task's outputs appear whole or not at all.

A retried, duplicated or killed attempt writes under a temporary name in the same directory
and renames at the end; rename within one filesystem is atomic on POSIX, so a reader (or the
loader) never sees a torn shard, and two attempts racing to the same name leave one whole file.
The file gets the mode a plain ``open()`` would give it (0666 less the umask), not mkstemp's
private 0600: outputs are meant to be read by others, as logs and reports are.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def current_umask() -> int:
    """The process's umask, without changing it where the kernel tells (Linux >= 4.7).

    ``os.umask`` can only be read by setting it, which for a moment affects files other
    threads create; /proc avoids that window, the set-and-restore is the portable fallback.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync and rename it into place.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
