"""Elastic hosts: add or drain workers of a running run, without restarting it.

Two ways in, both watched by one greenlet of the running head:

* editing the run's hosts file (``--workers``, or ./hosts.yaml): workers that appear are
  connected and get tasks at once; workers that disappear are *drained*;
* ``parallel hosts add|remove RUN HOST``, which appends one JSON line to
  ``RUN/control/commands.jsonl`` (a directory of its own, so the journal's constant writes
  do not wake the watcher).

Draining a worker starts nothing new there; its running tasks finish normally, then its
connection closes.  Changes are seen through inotify (Linux) the moment a file is written;
elsewhere the files' mtimes are compared every ``POLL_FALLBACK`` seconds.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import struct
import time
from dataclasses import asdict, replace
from pathlib import Path

import gevent
from lasair_parallel.head.connect.hosts import HostsError, HostSpec, read_hosts, resolve_ssh
from lasair_parallel.head.connect.transport import wait_fds
from lasair_parallel.head.core.scheduler import HostState, Scheduler

log = logging.getLogger(__name__)

CONTROL_DIR = "control"
CONTROL_FILE = "commands.jsonl"
# Without inotify, a file check every 2 s: "new hosts get tasks within seconds", at the cost of
# one stat() per file per check; only used where the kernel cannot tell us.
POLL_FALLBACK = 2.0
# Editors save in steps (truncate, write, rename): read the file once it has been quiet this long.
SETTLE = 0.2

_IN_MODIFY, _IN_CLOSE_WRITE, _IN_MOVED_TO, _IN_CREATE = 0x2, 0x8, 0x80, 0x100
_EVENT = struct.Struct("iIII")


class DirWatch:
    """Wait for files in some directories to change: inotify, or an mtime check as fallback."""

    def __init__(self, files: list[Path]):
        self.files = [Path(f).resolve() for f in files]
        self.fd = -1
        self._mtimes = self._stat()
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd < 0:
                return
            mask = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE
            for d in {f.parent for f in self.files}:
                d.mkdir(parents=True, exist_ok=True)
                if libc.inotify_add_watch(fd, str(d).encode(), mask) < 0:
                    os.close(fd)
                    return
            self.fd = fd
        except (OSError, AttributeError):  # not Linux: fall back to the mtime check
            self.fd = -1

    def _stat(self) -> dict[Path, float | None]:
        out: dict[Path, float | None] = {}
        for f in self.files:
            try:
                out[f] = f.stat().st_mtime_ns
            except OSError:
                out[f] = None
        return out

    def wait(self, timeout: float | None = None) -> set[Path]:
        """Block (cooperatively) until a watched file changes; return the changed files."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if self.fd >= 0:
                r = wait_fds([self.fd], [], 3600.0 if left is None else left)
                changed = self._read_events() if r else set()
            else:
                gevent.sleep(POLL_FALLBACK if left is None else min(left, POLL_FALLBACK))
                now = self._stat()
                changed = {f for f in self.files if now[f] != self._mtimes[f]}
                self._mtimes = now
            if changed or (deadline is not None and time.monotonic() >= deadline):
                return changed

    def _read_events(self) -> set[Path]:
        names = set()
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return set()
        i = 0
        while i + _EVENT.size <= len(data):
            _, _, _, n = _EVENT.unpack_from(data, i)
            names.add(data[i + _EVENT.size:i + _EVENT.size + n].rstrip(b"\0").decode())
            i += _EVENT.size + n
        return {f for f in self.files if f.name in names}

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# ---------------------------------------------------------------------- changing the host set
def add_host(sched: Scheduler, spec: HostSpec) -> HostState:
    """Add a worker to a running scheduler, take back one being drained, or resize one."""
    for h in sched.hosts:
        if h.label != spec.label or h.state == "drained":
            continue
        if h.draining:
            h.draining = False
            sched.journal.host_event(h.label, "undrain", "added back while draining")
        if spec.procs != h.spec.procs:
            busy = {r.slot for r in h.running.values()}
            h.spec = replace(h.spec, procs=spec.procs)
            if h.state == "up":
                h.free = [s for s in range(spec.procs) if s not in busy]
            sched.journal.host_event(h.label, "resized", f"{spec.procs} slot(s)")
            sched.journal.host_state(h.label, spec.procs, h.state)
        sched.dispatch()
        return h
    # ``ssh -G`` runs a child process whose SIGCHLD may interrupt a handshake in progress
    # (see Scheduler.__init__); mid-run that only happens on a reconnect, which retries anyway.
    h = HostState(spec, target=None if spec.transport == "local"
                  else resolve_ssh(spec, sched.opts.ssh_config))
    sched.journal.host_event(h.label, "added", f"{spec.procs} slot(s)")
    sched.journal.host_state(h.label, spec.procs, "connecting")
    sched.add_host_state(h)  # a drained one of the same label comes back as this one
    return h


def drain_host(sched: Scheduler, label: str) -> bool:
    """Start no more tasks on ``label``; let its running ones finish, then disconnect."""
    h = sched.find_host(label)
    if h is None or h.draining:
        return False
    h.draining = True
    sched.journal.host_event(h.label, "draining", f"{len(h.running)} task(s) still running")
    sched.journal.host_state(h.label, h.spec.procs, "draining")
    if not h.running and h.conn is not None:
        h.conn.close()  # the host loop sees its pump end and records the host as drained
    sched.changed()
    return True


# ---------------------------------------------------------------------- the watcher
def control_path(run_dir: Path) -> Path:
    return Path(run_dir) / CONTROL_DIR / CONTROL_FILE


def send_command(run_dir: Path, command: dict) -> None:
    """Append one command for the run's head (a single O_APPEND write: lines never interleave)."""
    path = control_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(command) + "\n").encode())
    finally:
        os.close(fd)


def spec_to_json(spec: HostSpec) -> dict:
    return {k: v for k, v in asdict(spec).items() if v is not None and k != "line"}


class HostWatcher:
    """Follow the hosts file and the control file of one run; apply changes to ``sched``."""

    def __init__(self, sched: Scheduler, run_dir: Path, hosts_file: str | None,
                 procs: int | None = None):
        self.sched = sched
        self.hosts_file = Path(hosts_file).resolve() if hosts_file else None
        self.procs = procs
        self.control = control_path(run_dir).resolve()
        self.control.parent.mkdir(parents=True, exist_ok=True)
        # Commands written before this head started belong to an earlier head: skip them.
        self.offset = self.control.stat().st_size if self.control.exists() else 0
        self.from_file = {h.label for h in sched.hosts}
        files = [self.control] + ([self.hosts_file] if self.hosts_file else [])
        self.watch = DirWatch(files)
        self.greenlet: gevent.Greenlet | None = None

    def start(self) -> HostWatcher:
        self.greenlet = gevent.spawn(self._loop)
        return self

    def stop(self) -> None:
        if self.greenlet is not None:
            self.greenlet.kill()
        self.watch.close()

    def _loop(self) -> None:
        while True:
            changed = self.watch.wait()
            gevent.sleep(SETTLE)  # debounce a multi-step save (not a completion poll)
            while self.watch.fd >= 0:
                more = self.watch.wait(0)  # events the save produced meanwhile
                if not more:
                    break
                changed |= more
            if self.control in changed or self.watch.fd < 0:
                self.read_commands()
            if self.hosts_file is not None and (self.hosts_file in changed
                                                or self.watch.fd < 0):
                self.reload_hosts_file()

    def reload_hosts_file(self) -> None:
        try:
            specs = read_hosts(self.hosts_file, self.procs)
        except HostsError as e:
            log.warning("hosts file changed but cannot be used (%s); keeping the current hosts", e)
            return
        labels = {s.label for s in specs}
        for spec in specs:
            add_host(self.sched, spec)
        for label in self.from_file - labels:
            drain_host(self.sched, label)
        self.from_file = labels

    def read_commands(self) -> None:
        try:
            with open(self.control, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1  # a line still being written waits for its newline
        self.offset += end
        for line in data[:end].splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self.apply(json.loads(line))

    def apply(self, cmd: dict) -> None:
        if cmd["op"] == "add":
            add_host(self.sched, HostSpec(**cmd["spec"]))
        elif cmd["op"] == "remove":
            if not drain_host(self.sched, cmd["host"]):
                log.warning("hosts remove: no active worker %s in this run", cmd["host"])
