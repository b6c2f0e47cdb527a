"""Local agents started while the app plans, taken over by the run's scheduler.

A run's head spends its first ~0.1-0.2 s importing the app and planning, on one core; a local
agent takes ~0.06 s from its spawn to its hello (benchmarks/README.md, "Session of 2026-12-03
(13:52").  Spawned before the plan, the agent is up by the time the first task is sent.

Such an agent starts with no slot (see :mod:`lasair_parallel.head.worker.agent`): the head
does not hold the run's lock yet, and an agent given the slot kills the run's previous agent
there, which could be a live head's.  The scheduler names the slot once it holds the lock
(``Connection.claim``), before any task.  An agent nobody takes over (a usage error, nothing
left to run) sees its stdin close and exits; it has written nothing.
"""

from __future__ import annotations

import logging

from lasair_parallel.head.connect.hosts import HostSpec
from lasair_parallel.head.connect.transport import Connection, open_connection

log = logging.getLogger(__name__)


def _unclaimed(ev: dict) -> None:  # pragma: no cover - the hello is read by open(), not here
    log.debug("event before the scheduler took the agent over: %r", ev)


class EarlyAgents:
    """The agents of ``hosts``' local workers, started now (not waited for)."""

    def __init__(self, hosts: list[HostSpec], heartbeat: float, heartbeat_timeout: float):
        self._conns: dict[int, Connection] = {}
        try:
            for spec in hosts:
                if spec.transport != "local":
                    continue
                conn = open_connection(spec, None, _unclaimed, heartbeat, heartbeat_timeout)
                conn.start()
                self._conns[id(spec)] = conn
        except BaseException:
            self.close()
            raise

    def take(self, spec: HostSpec) -> Connection | None:
        """The started connection for this very host spec, once; None when there is none."""
        return self._conns.pop(id(spec), None)

    def close(self) -> None:
        """Close the agents not taken over: each exits at the end of its stdin."""
        conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            try:
                conn.close()
            except Exception as e:  # noqa: BLE001 - an agent that already died changes nothing
                log.debug("closing an early agent: %s", e)
