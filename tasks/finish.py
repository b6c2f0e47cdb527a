"""End a task's process once its work is done, without the interpreter's teardown.

A task's outputs are written atomically (``outputs.atomic_write``) before its main returns, so
what is left of a normal exit is only the teardown of its modules and objects, which writes
nothing.  That teardown is not free: with numpy, pyarrow and connectorx loaded and ~450 MB of
arrays freed, rebuild_objects' task took 47-66 ms from the end of its main to its exit, against
23-25 ms with this exit (3 runs each, the 1.28M-row benchmark table, 2026-12-03;
benchmarks/README.md).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn


def exit_task(status: int | None = 0) -> NoReturn:
    """Exit with ``status`` (None is 0, as ``sys.exit``) the way CPython's own exit begins,
    then stop: run the atexit handlers, flush stdout and stderr, ``os._exit``.

    While a thread other than the main one and not a daemon still runs, Python would wait for
    it (and run the callbacks that tell executors' workers to stop): then this is a plain
    ``sys.exit``, so such a task keeps exactly the usual behaviour.
    """
    code = 0 if status is None else status
    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)  # CPython's; else the usual exit
    others = [t for t in threading.enumerate()
              if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if others or run_exitfuncs is None or not isinstance(code, int):
        sys.exit(code)
    run_exitfuncs()  # prints a failing handler's traceback and goes on, as Python does
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # closed or replaced: as Python, go on
            pass
    os._exit(code)
