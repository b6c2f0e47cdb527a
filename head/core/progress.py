"""Progress on the head's terminal: a tqdm bar with ETA and per-host counts, or plain lines.

A terminal gets a bar redrawn on each task event; a log file or CI gets one line every
``interval`` seconds (and at the end), which stays readable when piped.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

import gevent


def counts_text(ok: int, failed: int, total: int) -> str:
    """``10 ok, 2 failed of 12``: how every progress line and summary counts tasks."""
    return f"{ok} ok, {failed} failed of {total}"


class Progress:
    def __init__(self, total: int, already: int, stream: TextIO | None = None,
                 interval: float = 10.0, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.total = total
        self.already = already
        self.enabled = enabled
        self.t0 = time.monotonic()
        self.bar = None
        self._last = ""
        self._ticker = None
        self._sched = None
        if not enabled:
            return
        if self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=already, file=self.stream, unit="task",
                            dynamic_ncols=True, smoothing=0.1)
        else:
            self._ticker = gevent.spawn(self._tick, interval)

    def hosts_text(self, sched) -> str:
        parts = []
        for h in sched.hosts:
            mark = "" if h.state == "up" else f"({h.state})"
            parts.append(f"{h.label}{mark} {len(h.running)}run/{h.done}ok/{h.failed}fail")
        return "  ".join(parts)

    def update(self, sched) -> None:
        self._sched = sched
        if self.bar is not None:
            done = self.already + sched.done + sched.failed
            self.bar.n = done
            self.bar.set_postfix_str(f"failed {sched.failed} | " + self.hosts_text(sched),
                                     refresh=False)
            self.bar.refresh()

    def line(self) -> str:
        """``10 ok, 2 failed of 12, 0 running; 14s elapsed, ETA 0s; <per-host counts>``."""
        s = self._sched
        if s is None:
            return f"{self.already} ok, 0 failed of {self.total}"
        el = time.monotonic() - self.t0
        new = s.done + s.failed
        left = self.total - self.already - new
        eta = (el / new) * left if new else float("nan")
        eta_s = f"ETA {eta:.0f}s" if eta == eta else "ETA ?"
        running = sum(len(h.running) for h in s.hosts)
        return (f"{counts_text(self.already + s.done, s.failed, self.total)}, {running} running; "
                f"{el:.0f}s elapsed, {eta_s}; " + self.hosts_text(s))

    def _tick(self, interval: float) -> None:
        while True:
            gevent.sleep(interval)  # a report cadence, not a completion poll
            text = self.line()
            if text != self._last:
                print(text, file=self.stream, flush=True)
                self._last = text

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self._ticker is not None:
            self._ticker.kill()
            if self.enabled:
                print(self.line(), file=self.stream, flush=True)
