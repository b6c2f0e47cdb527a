"""The scheduler's public face for changing its set of hosts while it runs.

:mod:`lasair_parallel.head.core.elastic` (a hosts file edited mid-run, ``parallel hosts
add|remove``) changes the host set through these methods only, never the scheduler's private
state; they live here to keep the scheduler module to dispatch and events.  Everything runs in
the scheduler's gevent loop (one thread), so no method needs a lock.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import gevent

if TYPE_CHECKING:
    from lasair_parallel.head.core.scheduler import HostState


log = logging.getLogger(__name__)


class HostSet:
    """Mixed into :class:`~lasair_parallel.head.core.scheduler.Scheduler`."""

    hosts: list[HostState]
    _loops: list[tuple[gevent.Greenlet, HostState]]

    @property
    def running(self) -> bool:
        """True while the run goes on (not finished, not stopping)."""
        return not self.finished.is_set() and not self.stopping  # type: ignore[attr-defined]

    def find_host(self, label: str, active_only: bool = True) -> HostState | None:
        """The host named ``label`` (not drained, when ``active_only``), or None."""
        for h in self.hosts:
            if h.label == label and (not active_only or h.state != "drained"):
                return h
        return None

    def start_host(self, h: HostState) -> None:
        """Run ``h``'s host loop (connect, pump, reconnect) until the run ends."""
        g = gevent.spawn(self._host_loop, h)  # type: ignore[attr-defined]
        self._loops.append((g, h))

    def add_host_state(self, h: HostState) -> None:
        """Make ``h`` part of the run (replacing a drained host of its label) and start it."""
        self.hosts = [x for x in self.hosts if x.label != h.label]
        self.hosts.append(h)
        if self.running:
            self.start_host(h)
        self.changed()

    def dispatch(self) -> None:
        """Fill free slots now (after slots were added or a host was taken back)."""
        self._dispatch()  # type: ignore[attr-defined]

    def changed(self) -> None:
        """Tell the progress display that hosts or counts changed."""
        self.on_change(self)  # type: ignore[attr-defined]

    def clean_worker_folders(self) -> None:
        """``--clean-workers``: remove this run's folder on each worker that had one (a
        copy of the run directory), in parallel; a host that fails is logged, not fatal."""
        stagers = [h.stager for h in self.hosts if h.stager is not None]
        jobs = [gevent.spawn(s.remove_remote) for s in stagers]
        gevent.joinall(jobs, timeout=30)  # an rm -rf of a run folder: seconds at most
        for s, g in zip(stagers, jobs, strict=True):
            if not g.successful():
                log.warning("%s: could not remove %s (%s); `parallel clean` retries",
                            s.spec.label, s.remote_run, g.exception or "timed out")

    def stop_loops(self) -> None:
        """At the end of a run: stop host loops that have nothing to finish.

        A host still connecting (a handshake with a host that never answers, up to the 15 s
        connect timeout) or sleeping before a reconnect would otherwise hold the end of the
        run (seen: up to 10 s per run for one unreachable host).  Hosts that are up finish
        closing their channel, bounded by ``timeout``.
        """
        idle = [g for g, h in self._loops if h.state != "up" and not g.dead]
        gevent.killall(idle, block=True, timeout=1.0)
        gevent.joinall([g for g, _ in self._loops], timeout=10)
