"""Connections to worker agents: a local subprocess, or one SSH channel per host.

Both speak the agent's JSON-lines protocol (see :mod:`lasair_parallel.head.worker.agent`) through one greenlet per
connection, the *pump*, which alone touches the connection: it writes queued commands, reads
events, and then blocks in ``poll`` on the socket (or pipe) and a wake-up pipe with a deadline
equal to the heartbeat timeout.  No sleep-polling: an idle host costs the head nothing until a
byte arrives, which is what Lasair's ``time.sleep`` loop and parallel-ssh's 1 ms poll got wrong
(../shared/notes/anchors.md sections 1 and 3).
"""

from __future__ import annotations

import base64
import errno
import functools
import json
import logging
import os
import shlex
import socket
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from gevent import select as gselect
from gevent import subprocess as gsubprocess
from lasair_parallel.head.connect.hosts import HostSpec, SSHTarget
from lasair_parallel.tasks.protocol import PROTOCOL_VERSION

log = logging.getLogger(__name__)

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


class HostDown(Exception):
    """The connection to a worker failed or went silent; the message says why."""


class ProtocolMismatch(HostDown):
    """The worker's agent speaks another protocol version: retrying cannot help."""


def agent_source() -> str:
    """The agent as one program: its source with the protocol module's names pasted in."""
    from importlib.util import find_spec

    # The files, found without importing (running) them: ~3 ms at every run's start.
    agent = Path(find_spec("lasair_parallel.head.worker.agent").origin).read_text()
    protocol = Path(find_spec("lasair_parallel.tasks.protocol").origin).read_text()
    protocol = protocol[:protocol.index("# <messages>")]  # the names, not the typed dicts
    lines = agent.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if "# <protocol>" in line)
    end = next(i for i in range(start, len(lines)) if lines[i].rstrip().endswith(")"))
    return "".join(lines[:start]) + protocol + "".join(lines[end + 1:])


@functools.cache
def _agent_blob() -> str:
    """The agent's source, compressed and base64'd, made once per head: reading, pasting and
    compressing it took ~6 ms per connection (measured), paid at every host's start.  zlib's
    level 6: 0.6 ms against level 9's 1.4 ms, for 40 bytes more of a ~10 kB blob."""
    return base64.b64encode(zlib.compress(agent_source().encode(), 6)).decode()


def warm_ssh() -> None:
    """Import the SSH client's modules (parallel-ssh, ssh2-python: ~25 ms) and make the
    agent's blob, ahead of the first connection: a run does it while its ``ssh -G`` run."""
    from lasair_parallel.head.connect.pssh_import import client_module

    client_module()

    _agent_blob()


def agent_command(python: str | None, config: dict, workdir: str | None = None) -> str:
    """Shell command that runs the agent from compressed source carried in the command line.

    ``python`` None: the venv ``parallel deploy`` made for the head's version, if the worker
    has one (relative to the workdir or home, see :mod:`lasair_parallel.head.version`), else ``python3``.
    """
    blob = _agent_blob()
    code = f"import base64,zlib;exec(zlib.decompress(base64.b64decode('{blob}')))"
    # -S: no site module (its .pth files cost 2-16 ms before the hello; the agent needs only
    # the standard library and finds its version without it: agent.search_path).
    args = f"-S -u -c {shlex.quote(code)} {shlex.quote(json.dumps(config))}"
    if python is None:
        from lasair_parallel.head.version import head_version, venv_dir

        venv = venv_dir(head_version() or "none")
        cmd = (f'P={shlex.quote(venv + "/bin/python")}; [ -x "$P" ] || P=python3; '
               f'exec "$P" {args}')
    else:
        cmd = f"exec {shlex.quote(python)} {args}"
    if workdir:
        where = shell_dir(workdir)
        cmd = f"mkdir -p {where} && cd {where} && {cmd}"
    return cmd


def shell_dir(workdir: str) -> str:
    """``workdir`` as one shell word: ``~`` and ``~/x`` from the worker's $HOME (quoting alone
    would make a folder named ``~``); a relative path stays relative to the directory the
    shell starts in, the login directory on an SSH worker."""
    if workdir == "~" or workdir.startswith("~/"):
        rest = workdir[2:]
        return '"$HOME"' + (f"/{shlex.quote(rest)}" if rest else "")
    return shlex.quote(workdir)


def quickack(sock) -> None:
    """ACK now what has been read on ``sock`` (TCP_QUICKACK; not sticky, so re-armed after
    each read by the caller).  A no-op off Linux, on a socket pair (jump hosts) or a closed
    socket."""
    if _QUICKACK is None or sock is None or sock.family == socket.AF_UNIX:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
    except OSError:
        pass


def wait_fds(read: list, write: list, timeout: float) -> set[int]:
    """Block this greenlet until one of ``read`` is readable or ``write`` writable, or
    ``timeout`` seconds pass; return the readable descriptors.

    gevent's ``poll`` (libev watchers), not ``select``: select() refuses descriptors above
    FD_SETSIZE (1024), which a head with ~600 hosts reaches ("filedescriptor out of range
    in select()").
    """
    poller = gselect.poll()
    fds: dict[int, int] = {}
    for obj in read:
        fds[gselect.get_fileno(obj)] = gselect.POLLIN
    for obj in write:
        fd = gselect.get_fileno(obj)
        fds[fd] = fds.get(fd, 0) | gselect.POLLOUT
    for fd, mask in fds.items():
        poller.register(fd, mask)
    ready = poller.poll(max(0.0, timeout) * 1000.0)  # milliseconds
    return {fd for fd, ev in ready if ev & (gselect.POLLIN | gselect.POLLHUP | gselect.POLLERR)}


def fence_after(heartbeat: float, heartbeat_timeout: float) -> float | None:
    """Seconds of agent silence after which the worker's guardian kills the agent's tasks.

    Halfway between one heartbeat period and the head's heartbeat timeout (when the head
    gives the host up and runs its tasks elsewhere), so a frozen agent's tasks are dead
    before they can run a second time.  A healthy agent tells its guardian it lives four
    times per fence (``Agent.alive_every``), so it is never silent that long.
    """
    if heartbeat_timeout <= heartbeat:
        return None
    return heartbeat + (heartbeat_timeout - heartbeat) / 2


class Connection:
    """A live agent on one worker.  ``on_event`` is called in the pump greenlet per event."""

    def __init__(self, spec: HostSpec, on_event: Callable[[dict], None],
                 heartbeat: float, heartbeat_timeout: float):
        self.spec = spec
        self.on_event = on_event
        self.heartbeat = heartbeat
        self.heartbeat_timeout = heartbeat_timeout
        self.hello: dict = {}
        self._out = bytearray()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._stderr_tail = b""
        self._closed = False
        self._pumping = False
        self._inbuf = b""  # bytes read after the hello line, before the pump starts
        self.last_seen = time.monotonic()

    # -- implemented by transports
    def _open(self) -> None:
        raise NotImplementedError

    def _read(self) -> tuple[bytes | None, bytes | None]:
        """(stdout bytes or None if none ready, stderr bytes or None); b"" on EOF."""
        raise NotImplementedError

    def _write(self, data: bytes) -> int:
        raise NotImplementedError

    def _wait_fds(self) -> tuple[list, list]:
        raise NotImplementedError

    def _shutdown(self) -> None:
        raise NotImplementedError

    # -- common
    slot: str | None = None  # names this run and host for the next agent (see agent.py)

    def config(self) -> dict:
        return {"procs": self.spec.procs, "heartbeat": self.heartbeat,
                "fence": fence_after(self.heartbeat, self.heartbeat_timeout), "slot": self.slot}

    _started = False

    def start(self) -> None:
        """Connect and start the agent without waiting for it (``open`` then reads its
        hello): a local agent so started comes up while the head plans."""
        if not self._started:
            self._started = True
            self._open()

    def claim(self, on_event: Callable[[dict], None], slot: str) -> None:
        """Take over an agent started with no slot (``start`` before the run's lock was held):
        its events go to ``on_event`` from now, and its first op names the run's ``slot``,
        so it kills what a previous agent of the run left before any task starts."""
        self.on_event = on_event
        self.slot = slot
        self.send({"op": "slot", "slot": slot})

    def open(self) -> dict:
        """Connect and start the agent (unless ``start`` did); return its hello message."""
        t0 = time.monotonic()
        self.start()
        t1 = time.monotonic()
        msg = self._next_event_during_open()
        log.debug("%s: session and agent command sent in %.3f s, hello %.3f s later",
                  self.spec.label, t1 - t0, time.monotonic() - t1)
        if msg.get("ev") != "hello":
            raise HostDown(f"agent did not greet: {msg!r}")
        if msg.get("protocol") != PROTOCOL_VERSION:
            raise ProtocolMismatch(
                f"its agent speaks protocol {msg.get('protocol')}, this head "
                f"{PROTOCOL_VERSION}; run the same lasair-parallel version on both (parallel deploy)")
        self.hello = msg
        return msg

    def _next_event_during_open(self) -> dict:
        buf = b""
        deadline = time.monotonic() + max(30.0, self.heartbeat_timeout)
        while b"\n" not in buf:
            data, err = self._read()
            if err:
                self._stderr_tail = (self._stderr_tail + err)[-4096:]
            if data == b"":
                raise HostDown("agent exited at start: " + self.stderr_tail())
            if data:
                buf += data
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise HostDown("agent did not start within 30 s")
            r, w = self._wait_fds()
            wait_fds(r, w, left)
        line, _, rest = buf.partition(b"\n")
        self._inbuf = rest
        return json.loads(line)

    def stderr_tail(self) -> str:
        return self._stderr_tail.decode("utf-8", "replace").strip()[-500:] or "(no stderr)"

    def send(self, msg: dict) -> None:
        self._out += (json.dumps(msg, separators=(",", ":")) + "\n").encode()
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass  # a wake-up is already pending

    def pump(self) -> None:
        """Run until the connection ends; raises HostDown with the reason."""
        self._pumping = True
        try:
            self._pump()
        finally:
            self._pumping = False
            if self._closed:
                self._close_wake()

    def _pump(self) -> None:
        buf, self._inbuf = self._inbuf, b""
        self.last_seen = time.monotonic()
        if buf:
            buf = self._dispatch(buf)
        while not self._closed:
            self._flush()
            got = False
            while True:
                data, err = self._read()
                if err:
                    self._stderr_tail = (self._stderr_tail + err)[-4096:]
                if data is None:
                    if not err:
                        break
                    continue
                if data == b"":
                    raise HostDown("agent connection closed: " + self.stderr_tail())
                got = True
                buf = self._dispatch(buf + data)
                # Send what those events dispatched (a freed slot's next task) now, not after
                # the rest of a burst of events has been read and handled.
                self._flush()
            now = time.monotonic()
            if got:
                self.last_seen = now
            left = self.last_seen + self.heartbeat_timeout - now
            if left <= 0:
                raise HostDown(f"no heartbeat for {self.heartbeat_timeout:g} s (host hung?)")
            r, w = self._wait_fds()
            readable = wait_fds(r + [self._wake_r], w, left)
            if self._wake_r in readable:
                try:
                    os.read(self._wake_r, 4096)
                except BlockingIOError:
                    pass

    def _flush(self) -> None:
        while self._out:
            n = self._write(bytes(self._out))
            if n <= 0:
                break
            del self._out[:n]

    def _dispatch(self, buf: bytes) -> bytes:
        *lines, rest = buf.split(b"\n")
        for line in lines:
            if line:
                self.on_event(json.loads(line))
        return rest

    def close(self) -> None:
        """Close the channel: the agent sees EOF and kills its tasks."""
        if self._closed:
            return
        self._closed = True
        try:
            self._shutdown()
        finally:
            if self._pumping:
                # The pump is (or will be) parked in poll on the wake-up pipe: wake it and
                # let it close the pipe itself; closing an fd under a live watcher aborts libev.
                try:
                    os.write(self._wake_w, b"x")
                except OSError:
                    pass
            else:
                self._close_wake()

    def _close_wake(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._wake_r = self._wake_w = -1


class LocalConnection(Connection):
    """The agent as a child process of the head (``transport: local``)."""

    proc: gsubprocess.Popen

    def _open(self) -> None:
        python = self.spec.python or sys.executable
        cmd = agent_command(python, self.config(), self.spec.workdir)
        # A session of its own: Ctrl-C on the head's terminal reaches the head only, which
        # then stops the tasks in order (and records that it did).
        self.proc = gsubprocess.Popen(["/bin/sh", "-c", cmd], stdin=gsubprocess.PIPE,
                                      stdout=gsubprocess.PIPE, stderr=gsubprocess.PIPE,
                                      start_new_session=True)
        self._fds = [self.proc.stdout.fileno(), self.proc.stderr.fileno()]
        for fd in self._fds + [self.proc.stdin.fileno()]:
            os.set_blocking(fd, False)

    def _read(self):
        out = err = None
        try:
            out = os.read(self._fds[0], 65536)
        except BlockingIOError:
            pass
        if len(self._fds) > 1:
            try:
                err = os.read(self._fds[1], 65536)
            except BlockingIOError:
                pass
            if err == b"":
                # stderr closed before stdout: stop watching it, or poll would spin on it.
                self._fds = self._fds[:1]
                err = None
        return out, err

    def _write(self, data: bytes) -> int:
        try:
            return os.write(self.proc.stdin.fileno(), data)
        except BlockingIOError:
            return 0
        except BrokenPipeError:
            raise HostDown("agent's stdin closed") from None

    def _wait_fds(self):
        w = [self.proc.stdin.fileno()] if self._out else []
        return list(self._fds), w

    def _shutdown(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except gsubprocess.TimeoutExpired:
            self.proc.kill()

    @property
    def pid(self) -> int:
        return self.proc.pid


class SSHConnection(Connection):
    """The agent on one long-lived channel of one parallel-ssh connection."""

    def __init__(self, spec: HostSpec, target: SSHTarget, on_event, heartbeat, heartbeat_timeout,
                 verify_host_key: bool = True, connect_timeout: float = 15.0):
        super().__init__(spec, on_event, heartbeat, heartbeat_timeout)
        self.target = target
        self.verify_host_key = verify_host_key
        self.connect_timeout = connect_timeout
        self.client = None
        self.chan = None

    def _open(self) -> None:
        from lasair_parallel.head.connect.pssh_import import client_module

        connect = client_module().connect

        t0 = time.monotonic()
        self.client = connect(self.target, self.verify_host_key, self.connect_timeout)
        log.debug("%s: connected and authenticated in %.3f s", self.spec.label,
                  time.monotonic() - t0)
        python = self.spec.python  # None: the deployed venv, else python3
        workdir = self.spec.workdir
        cmd = agent_command(python, self.config(), workdir)
        self.chan = self.client.open_session()
        self.client.eagain(self.chan.execute, cmd)

    def _read(self):
        from ssh2.error_codes import LIBSSH2_ERROR_EAGAIN

        out = err = None
        size, data = self.chan.read(65536)
        if size == LIBSSH2_ERROR_EAGAIN:
            out = None
        elif size > 0:
            out = data
        elif size == 0:
            out = b"" if self.chan.eof() else None
        else:
            raise HostDown(f"SSH read error {size}")
        if out:
            self._quickack()
        esize, edata = self.chan.read_stderr(65536)
        if esize > 0:
            err = edata
        return out, err

    def _quickack(self) -> None:
        # sshd leaves Nagle on for sessions without a pty, so the agent's next small event
        # waits until the previous one is ACKed; Linux delays that ACK by up to 40 ms.
        quickack(self.client.sock)

    def _write(self, data: bytes) -> int:
        from ssh2.error_codes import LIBSSH2_ERROR_EAGAIN

        rc, n = self.chan.write(data)
        if rc == LIBSSH2_ERROR_EAGAIN:
            return n
        if rc < 0:
            raise HostDown(f"SSH write error {rc}")
        return n

    def _wait_fds(self):
        from ssh2.session import LIBSSH2_SESSION_BLOCK_OUTBOUND

        sock = self.client.sock
        w = [sock] if self.client.session.block_directions() & LIBSSH2_SESSION_BLOCK_OUTBOUND else []
        return [sock], w

    def _shutdown(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            # Closing the socket is enough: sshd sees the TCP close, closes the agent's stdin,
            # and the agent kills its tasks.  A polite channel close could block on a hung peer.
            sock = client.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError as e:
                    if e.errno not in (errno.ENOTCONN, errno.EBADF):
                        raise
        finally:
            client.session = None
            client.sock = None


def open_connection(spec: HostSpec, target: SSHTarget | None, on_event, heartbeat: float,
                    heartbeat_timeout: float, verify_host_key: bool = True,
                    slot: str | None = None) -> Connection:
    """A connection object for ``spec`` (not yet opened); ``target`` for SSH workers;
    ``slot`` names the run and host, so a new agent kills what a previous one left."""
    conn: Connection
    if spec.transport == "local":
        conn = LocalConnection(spec, on_event, heartbeat, heartbeat_timeout)
    else:
        assert target is not None
        conn = SSHConnection(spec, target, on_event, heartbeat, heartbeat_timeout,
                             verify_host_key)
    conn.slot = slot
    return conn

