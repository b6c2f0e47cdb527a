"""Private scratch directories for the validated copies of shards, swept at the next start.

A loader that is SIGKILLed cannot remove its temporary files, and a copy of a shard may be
big and private. Every loader works in ``$TMPDIR/csv_to_database-<uid>/<pid>-XXXX/`` and holds
an exclusive ``flock`` on its ``.lock`` for its lifetime; the kernel drops the lock when the
process dies, however it dies. Each loader, on start, removes every directory in
``csv_to_database-<uid>`` whose lock it can take: its owner is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from lasair_parallel.csv_to_database.errors import UsageError, show_path

LOCK = ".lock"
_YOUNG = 60.0  # seconds: a directory without a lock file yet may be one being created


def scratch_root() -> Path:
    """``$TMPDIR/csv_to_database-<uid>``, created 0700; refused if another user owns it."""
    root = Path(tempfile.gettempdir()) / f"csv_to_database-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=0o700)
    st = os.lstat(root)
    # Someone else's directory (or a symlink) in a shared /tmp would let them read the copies.
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise UsageError(f"{show_path(root)} is not a private directory of this user "
                         "(remove it, or set TMPDIR to a directory of your own)")
    return root


def sweep(root: Path) -> int:
    """Remove the scratch directories of loaders that are gone; return how many."""
    removed = 0
    for d in root.iterdir():
        if not d.is_dir() or d.is_symlink():
            continue
        try:
            fd = os.open(d / LOCK, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            with contextlib.suppress(OSError):
                if time.time() - d.stat().st_mtime > _YOUNG:
                    shutil.rmtree(d, ignore_errors=True)
                    removed += 1
            continue
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live loader's
        else:
            shutil.rmtree(d, ignore_errors=True)
            removed += 1
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def scratch_dir() -> Iterator[str]:
    """A private directory for this loader's temporary files, removed at the end (or, after a
    crash, by the next loader's :func:`sweep`)."""
    root = scratch_root()
    sweep(root)
    d = tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root)  # mode 0700
    # Locked before it gets its name, so a sweep never sees an unlocked lock of a live loader.
    fd = os.open(os.path.join(d, LOCK + ".new"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(os.path.join(d, LOCK + ".new"), os.path.join(d, LOCK))
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
        os.close(fd)
