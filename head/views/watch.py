"""``parallel status --watch``: redraw a run's status whenever its journal changes.

The head commits every event to ``journal.sqlite`` (WAL mode), so a change of the WAL file is
exactly "something happened"; the watcher waits on it through inotify (see
:class:`lasair_parallel.head.core.elastic.DirWatch`) instead of polling the database.  It also redraws every
``REFRESH`` seconds so "seen N s ago" stays true while nothing happens.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from lasair_parallel.head.core.elastic import DirWatch
from lasair_parallel.head.views.report import analyse
from lasair_parallel.head.views.status import render, summary

REFRESH = 5.0  # redraw at least this often: ages in the display move even when the run is idle
MIN_INTERVAL = 0.5  # at most two redraws a second: a busy run commits hundreds of events


def screen(run_dir: Path) -> tuple[str, bool]:
    """The status text plus the report's headline numbers; and whether the run has ended."""
    s = summary(run_dir)
    r = analyse(run_dir)
    g = r["dispatch_gap"]
    extra = (f"  utilisation {100 * r['utilisation']:.0f}% over {r['slots']} slot(s); "
             f"queue wait median {r['queue_wait']['median']:.2f}s; dispatch gap median "
             f"{1000 * g['median']:.0f} ms; {r['retried_tasks']} retried")
    return render(s) + "\n" + extra, not s["live"]


def watch_status(run_dir: Path, stream=None) -> int:
    """Redraw until the run ends (its head stops, or it finishes: exit 0) or Ctrl-C (exit 0)."""
    out = stream or sys.stdout
    tty = out.isatty()
    w = DirWatch([run_dir / "journal.sqlite-wal", run_dir / "journal.sqlite"])
    try:
        while True:
            text, ended = screen(run_dir)
            if tty:
                out.write("\x1b[H\x1b[2J")  # home + clear: redraw in place
            else:
                out.write(f"--- {time.strftime('%H:%M:%S')}\n")
            out.write(text + "\n")
            out.flush()
            if ended:
                return 0
            w.wait(REFRESH)
            time.sleep(MIN_INTERVAL)  # rate limit between redraws, not a completion poll
    except KeyboardInterrupt:
        return 0
    finally:
        w.close()
