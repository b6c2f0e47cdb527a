"""Workers behind a jump host: ``jump:`` in hosts.yaml, or ProxyJump from ssh config.

One OpenSSH connection to each jump host (a ControlMaster that this module starts and stops
by PID) carries every worker behind it: per worker, ``ssh -S <control> -W host:port`` opens
one more channel on that connection (a mux client: no new TCP connection, no new handshake)
and bridges it to one end of a socket pair, and parallel-ssh runs its SSH session to the
worker over the other end.  Host keys are checked at every hop: OpenSSH checks the jump
host's (``StrictHostKeyChecking yes`` against the same known_hosts files), and our own
client checks the worker's, end to end, exactly as for a direct worker.

parallel-ssh's own ``proxy_host`` is not used: it checks no host key at the proxy and opens
one proxy connection per worker.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import subprocess
import tempfile

import gevent
import gevent.lock
from gevent import socket as gsocket
from gevent import subprocess as gsubprocess
from lasair_parallel.head.connect.transport import HostDown

log = logging.getLogger(__name__)

_lock = gevent.lock.RLock()  # greenlets of one thread: a gevent lock, not a thread lock
_masters: dict[tuple, JumpMaster] = {}


class JumpMaster:
    """The shared connection to one jump host (an OpenSSH ControlMaster we started)."""

    def __init__(self, jump: str, ssh_config: str | None, identities: tuple[str, ...],
                 verify: bool):
        self.jump = jump
        self.dir = tempfile.mkdtemp(prefix="lasair-jump-")
        self.control = os.path.join(self.dir, "ctl")
        self.base = [shutil.which("ssh") or "ssh"]
        if ssh_config:
            self.base += ["-F", ssh_config]
        self.base += ["-o", "BatchMode=yes", "-o", f"ControlPath={self.control}"]
        for key in identities:
            self.base += ["-i", key]
        if verify:  # the jump host's key: from the ssh config's known_hosts, as ssh would
            self.base += ["-o", "StrictHostKeyChecking=yes"]
        else:
            self.base += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
        hops = jump.split(",")
        self.dest = hops[-1]
        self.hop_args = ["-J", ",".join(hops[:-1])] if len(hops) > 1 else []
        self.proc: gsubprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Connect to the jump host; returns once it is authenticated and ready."""
        # LocalCommand runs after authentication: its line on stdout is the ready signal,
        # read as an event (no polling of the control socket).
        cmd = self.base + ["-N", "-M", "-o", "ControlPersist=no", "-o", "PermitLocalCommand=yes",
                           "-o", "LocalCommand=echo lasair-jump-ready", "-o",
                           "ServerAliveInterval=15", *self.hop_args, _dest(self.dest)]
        self.proc = gsubprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, start_new_session=True)
        line = b""
        with gevent.Timeout(timeout, False):  # blocks this greenlet only
            line = self.proc.stdout.readline()
        if b"lasair-jump-ready" not in line:
            self._kill()
            err = self.proc.stderr.read().decode("utf-8", "replace").strip()
            self.close()
            raise HostDown(f"jump host {self.jump}: {err.splitlines()[-1] if err else 'failed'}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def open_socket(self, host: str, port: int) -> tuple[gsocket.socket, gsubprocess.Popen]:
        """A socket whose bytes reach ``host:port`` as seen from the jump host."""
        ours, theirs = gsocket.socketpair()
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        cmd = self.base + ["-o", "ControlMaster=no", "-W", target, _dest(self.dest)]
        proc = gsubprocess.Popen(cmd, stdin=theirs.fileno(), stdout=theirs.fileno(),
                                 stderr=subprocess.DEVNULL, start_new_session=True)
        theirs.close()
        return ours, proc

    def close(self) -> None:
        self._kill()
        if self.proc is not None:
            try:
                self.proc.wait(5)
            except gsubprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            for f in (self.proc.stdout, self.proc.stderr):
                if f:
                    f.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _dest(jump: str) -> str:
    """``user@host:port`` (or an ssh config Host) as an ssh destination."""
    user, _, hostport = jump.rpartition("@")
    if hostport.startswith("[") or hostport.count(":") == 1:
        return f"ssh://{jump}"  # OpenSSH's URI form carries the port (and [v6]:port)
    if hostport.count(":") > 1:  # a bare IPv6 address
        return f"{user}@[{hostport}]" if user else hostport
    return jump


def master_for(jump: str, ssh_config: str | None, identities: tuple[str, ...],
               verify: bool) -> JumpMaster:
    """The one connection to ``jump`` (started on first use, again if it died)."""
    key = (jump, ssh_config, identities, verify)
    with _lock:
        m = _masters.get(key)
        if m is not None and m.alive():
            return m
        if m is not None:
            m.close()
        m = JumpMaster(jump, ssh_config, identities, verify)
        m.start()
        _masters[key] = m
        return m


def expand_proxy_command(command: str, host: str, port: int, user: str) -> str:
    """OpenSSH's ProxyCommand tokens: %h host, %p port, %r user, %n the host as given, %%."""
    out, i = [], 0
    while i < len(command):
        c = command[i]
        if c == "%" and i + 1 < len(command):
            t = command[i + 1]
            out.append({"h": host, "p": str(port), "r": user, "n": host, "%": "%"}.get(t, c + t))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def proxy_socket(command: str, host: str, port: int,
                 user: str) -> tuple[gsocket.socket, gsubprocess.Popen]:
    """A socket to the worker through ssh config's ``ProxyCommand``: the command runs under
    /bin/sh (as ssh runs it) with its stdin and stdout on one end of a socket pair, and our
    SSH session, host-key check included, runs over the other end."""
    ours, theirs = gsocket.socketpair()
    proc = gsubprocess.Popen(["/bin/sh", "-c", "exec " + expand_proxy_command(
        command, host, port, user)], stdin=theirs.fileno(), stdout=theirs.fileno(),
        stderr=subprocess.DEVNULL, start_new_session=True)
    theirs.close()
    return ours, proc


def close_all() -> None:
    """Stop every jump connection this process started (at exit, and in tests)."""
    with _lock:
        masters = list(_masters.values())
        _masters.clear()
    for m in masters:
        m.close()


atexit.register(close_all)
