"""``parallel hosts check``: can each worker run tasks, and what does it have?

Each host gets exactly what a run does: ``~/.ssh/config`` applied, a connection with host-key
checking, the agent started with the host's Python; the agent's hello tells cores, free
memory, load, free disk in its working directory and the installed project version.  All
hosts are checked at once (one greenlet each), so a dead host costs its timeout once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gevent
from lasair_parallel.head.connect.hosts import HostSpec, resolve_ssh
from lasair_parallel.head.connect.transport import LocalConnection, SSHConnection
from lasair_parallel.head.version import head_version

CONNECT_TIMEOUT = 5.0  # a check should answer quickly; a run waits longer (15 s)


@dataclass
class Check:
    host: str
    reachable: bool | None = None
    auth: bool | None = None
    host_key: bool | None = None
    hello: dict = field(default_factory=dict)
    reason: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.hello) and not self.reason


def check_host(spec: HostSpec, ssh_config: str | None = None, verify: bool = True) -> Check:
    """Connect to one worker, start its agent, read its hello; never raises."""
    c = Check(spec.label)
    try:
        if spec.transport == "local":
            conn = LocalConnection(spec, lambda ev: None, 1.0, CONNECT_TIMEOUT)
            c.reachable = c.auth = c.host_key = True
        else:
            conn = SSHConnection(spec, resolve_ssh(spec, ssh_config), lambda ev: None, 1.0,
                                 CONNECT_TIMEOUT, verify_host_key=verify,
                                 connect_timeout=CONNECT_TIMEOUT)
        try:
            c.hello = conn.open()
        finally:
            conn.close()
        c.reachable = c.auth = c.host_key = True
    except Exception as e:  # every failure is this host's verdict, with its reason
        from lasair_parallel.head.core.failures import describe_error as _describe

        kind = type(e).__name__
        c.reason = _describe(e)
        if kind == "HostKeyError":
            c.reachable, c.host_key = True, False
        elif kind == "AuthenticationError":
            c.reachable, c.host_key, c.auth = True, True, False
        elif kind == "HostDown":
            c.reachable = c.auth = c.host_key = True
            c.reason = f"agent did not start ({c.reason}); check `python:` for this host"
        else:
            c.reachable = False
            c.reason = f"unreachable: {c.reason}"
    want = head_version()
    if c.hello and want and c.hello.get("version") != want:
        c.reason = (f"lasair-parallel {c.hello.get('version') or 'not installed'}, head has "
                    f"{want}: run `parallel deploy` (task-list runs still work)")
    return c


def check_hosts(hosts: list[HostSpec], ssh_config: str | None = None,
                verify: bool = True) -> list[Check]:
    jobs = [gevent.spawn(check_host, h, ssh_config, verify) for h in hosts]
    gevent.joinall(jobs)
    return [j.value for j in jobs]


def _mark(v: bool | None) -> str:
    return "-" if v is None else "yes" if v else "NO"


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "K", "M", "G", "T"):
        if n < 1024 or unit == "T":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return "-"


def as_rows(checks: list[Check]) -> list[dict]:
    """Plain data, one dict per host (for --json)."""
    return [{"host": c.host, "ok": c.ok, "reachable": c.reachable, "auth": c.auth,
             "host_key": c.host_key, "python": c.hello.get("python"),
             "executable": c.hello.get("executable"), "version": c.hello.get("version"),
             "cores": c.hello.get("cores"), "memfree": c.hello.get("memfree"),
             "load": c.hello.get("load"), "disk_free": c.hello.get("disk_free"),
             "reason": c.reason} for c in checks]


def render(checks: list[Check]) -> str:
    head = ["host", "reach", "auth", "hostkey", "python", "version", "cores", "memfree", "load",
            "disk", "status"]
    rows = []
    for c in checks:
        h = c.hello
        load = h.get("load")
        rows.append([c.host, _mark(c.reachable), _mark(c.auth), _mark(c.host_key),
                     h.get("python") or "-", h.get("version") or "-", str(h.get("cores") or "-"),
                     _size(h.get("memfree")), "-" if load is None else f"{load:.2f}",
                     _size(h.get("disk_free")), "ok" if c.ok else c.reason])
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head) - 1)]
    lines = []
    for r in [head] + rows:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths)) + "  " + r[-1])
    bad = [c for c in checks if not c.ok]
    lines.append(f"{len(checks) - len(bad)} of {len(checks)} worker(s) ready")
    return "\n".join(lines)
