"""Run a job that returns pieces of bytes in a forked child process, beside the parent's own
work.

The shard text of a block is made by orjson and bytes methods, which hold the GIL: two threads
over the two halves of a block took as long as one thread over all of it (0.56-0.65 s against
0.64-0.74 s for 128,000 objects; one half alone 0.28-0.39 s, on 2 cores).  A forked child sees
the parent's detections without a copy (copy-on-write) and has its own GIL.

Only where ``os.fork`` is safe to use this way (Linux); elsewhere ``start`` runs the job at
once, in this process.  The child never returns into the caller's code: it sends its result
(or its exception) through an in-memory file and leaves with ``os._exit``, so no atexit
handler, buffered output or test harness of the parent runs twice.  The child is in the
task's process group: the runner's kill of a task (timeout, fencing, stop) kills both.
"""

from __future__ import annotations

import mmap
import os
import pickle
import sys
import traceback
from collections.abc import Callable, Sequence


def can_fork() -> bool:
    """Whether ``start`` forks (Linux: os.fork and os.memfd_create), else it runs the job in
    this process."""
    return sys.platform.startswith("linux") and hasattr(os, "fork") and hasattr(
        os, "memfd_create")


def start(job: Callable[[], Sequence[bytes]]) -> Callable[[], Sequence[bytes | memoryview]]:
    """Start ``job`` in a forked child; returns ``wait()``, which gives the job's pieces (where
    forked, one read-only memoryview of them all, written one after the other) or raises its
    exception once the child is done (exit status 0: the in-memory file holds the result; 1:
    the pickled exception).  Call ``wait`` exactly once."""
    if not can_fork():
        result = job()
        return lambda: result
    # The result goes through an in-memory file, not a pipe: 34 MB through a pipe took
    # 0.13-0.21 s after the child was done (its 64 KiB buffer, one wake-up per fill).
    fd = os.memfd_create("lasair-parallel-forked", os.MFD_CLOEXEC)
    try:
        pid = os.fork()
    except BaseException:
        os.close(fd)
        raise
    if pid == 0:  # the child: never returns
        code = 2  # left at 2 when even the result could not be written
        try:
            try:
                pieces, done = job(), 0
            except BaseException as e:  # noqa: BLE001 - every failure goes to the parent
                try:
                    pieces, done = [pickle.dumps(e)], 1
                except Exception:  # noqa: BLE001 - an exception that cannot be pickled
                    pieces, done = [pickle.dumps(RuntimeError(traceback.format_exc()))], 1
            for piece in pieces:  # written as they are: never joined into one more copy
                view = memoryview(piece)
                while view:
                    view = view[os.write(fd, view):]
            code = done
        finally:
            os._exit(code)

    def wait() -> Sequence[bytes | memoryview]:
        try:
            _, status = os.waitpid(pid, 0)
            size = os.fstat(fd).st_size
            # mapped, not read: the parent writes it out with no copy of its own (34 MB read
            # into new memory cost up to 0.1 s of page faults on this VM)
            data = memoryview(mmap.mmap(fd, size, prot=mmap.PROT_READ)) if size else b""
        finally:
            os.close(fd)
        code = os.waitstatus_to_exitcode(status)
        if code == 0:
            return [data]
        if code == 1 and size:
            raise pickle.loads(data)
        raise RuntimeError(f"the forked half of the work ended without a result "
                           f"(exit status {code})")

    return wait
