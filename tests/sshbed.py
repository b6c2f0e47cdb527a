"""The SSH test bed: real sshd processes on 127.0.0.2, 127.0.0.3, ... with generated keys.

Each host is Debian's OpenSSH server started in the foreground (``sshd -D``) with its own
host key, listening on one loopback address at a high port, trusting one generated user key.
The bed writes its own known_hosts and an ssh_config naming the hosts, so tests use exactly
what a user would (host-key checking on) without touching ~/.ssh.  Processes are stopped by
the PIDs we started, nothing else.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from helpers import children

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port(addrs: list[str]) -> int:
    """A TCP port free on every one of ``addrs``."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((addrs[0], 0))
            port = s.getsockname()[1]
        ok = True
        for a in addrs[1:]:
            with socket.socket() as s:
                try:
                    s.bind((a, port))
                except OSError:
                    ok = False
                    break
        if ok:
            return port
    raise RuntimeError("no common free port")


@dataclass
class SSHHost:
    addr: str
    port: int
    config: Path
    log: Path
    proc: subprocess.Popen | None = None

    @property
    def label(self) -> str:
        return f"{self.addr}:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"))
        deadline = time.time() + 10
        while time.time() < deadline:  # wait for the listener: a start-up wait, in a fixture
            try:
                with socket.create_connection((self.addr, self.port), timeout=0.5):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"sshd on {self.label} exited: {self.log.read_text()}") from None
                time.sleep(0.05)
        raise RuntimeError(f"sshd on {self.label} did not listen")

    def session_pids(self) -> list[int]:
        """PIDs of this sshd's per-connection children (found through /proc, by parent)."""
        if self.proc is None:
            return []
        return children(self.proc.pid)

    def kill(self) -> None:
        """SIGKILL the listener and its connection processes (a crashed worker's sshd)."""
        if self.proc is None:
            return
        pids = [self.proc.pid] + _descendants(self.proc.pid, sshd_only=True)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


def _descendants(pid: int, sshd_only: bool = False) -> list[int]:
    out = []
    todo = [pid]
    while todo:
        p = todo.pop()
        for c in children(p):
            if sshd_only:
                try:
                    comm = Path(f"/proc/{c}/comm").read_text().strip()
                except OSError:
                    continue
                if comm != "sshd" and not comm.startswith("sshd"):
                    continue
            out.append(c)
            todo.append(c)
    return out


@dataclass
class SSHBed:
    root: Path
    hosts: list[SSHHost] = field(default_factory=list)
    user: str = field(default_factory=getpass.getuser)

    @property
    def identity(self) -> Path:
        return self.root / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def ssh_config(self) -> Path:
        return self.root / "ssh_config"

    def write_hosts_yaml(self, path: Path, procs: int = 2, hosts: list[SSHHost] | None = None,
                         **extra: object) -> Path:
        """A hosts.yaml for (some of) the bed's hosts.

        The workers run the head's own interpreter unless ``python`` says otherwise
        (``python=""``: none named, the worker picks its deployed venv or ``python3``): an
        app's tasks need this project installed there, as on a deployed worker, and a fresh
        machine's ``python3`` does not have it.
        """
        extra.setdefault("python", sys.executable)
        if not extra["python"]:
            del extra["python"]
        lines = ["workers:"]
        for h in hosts if hosts is not None else self.hosts:
            lines += [f"  - host: {h.addr}", f"    port: {h.port}", f"    user: {self.user}",
                      f"    identity: {self.identity}", f"    procs: {procs}"]
            for k, v in extra.items():
                v = str(v).lower() if isinstance(v, bool) else v
                lines.append(f"    {k}: {v}")
        path.write_text("\n".join(lines) + "\n")
        return path

    def stop(self) -> None:
        for h in self.hosts:
            h.stop()


def start_bed(root: Path, n: int = 4, first: int = 2, login_rc: bool = True) -> SSHBed:
    """Start ``n`` sshd hosts on 127.0.0.<first>...; keys and configs under ``root``.

    ``login_rc`` False: the workers' bash skips ~/.bashrc, as on a worker account with no rc
    file of its own.  bash runs it for a command from sshd only at shell level 1
    (bash(1), INVOCATION); sshd's ``SetEnv SHLVL=1`` makes that level 2.  For the start-up
    benchmark: this machine's root ~/.bashrc runs ``pyenv init`` (~60 ms a session)."""
    root.mkdir(parents=True, exist_ok=True)
    os.makedirs("/run/sshd", exist_ok=True)  # OpenSSH's privilege-separation directory
    bed = SSHBed(root)
    keygen = ["ssh-keygen", "-q", "-N", "", "-t", "ed25519"]
    subprocess.run(keygen + ["-f", str(bed.identity), "-C", "lasair-test-user"], check=True)
    bed.identity.chmod(0o600)
    authorized = root / "authorized_keys"
    shutil.copy(f"{bed.identity}.pub", authorized)
    addrs = [f"127.0.0.{first + i}" for i in range(n)]
    port = free_port(addrs)
    known = []
    for i, addr in enumerate(addrs):
        hdir = root / f"host{i}"
        hdir.mkdir()
        hostkey = hdir / "ssh_host_ed25519_key"
        subprocess.run(keygen + ["-f", str(hostkey), "-C", f"host{i}"], check=True)
        known.append(f"[{addr}]:{port} " + " ".join(
            (hdir / "ssh_host_ed25519_key.pub").read_text().split()[:2]))
        cfg = hdir / "sshd_config"
        cfg.write_text("\n".join([
            f"ListenAddress {addr}:{port}",
            f"HostKey {hostkey}",
            f"AuthorizedKeysFile {authorized}",
            f"PidFile {hdir / 'sshd.pid'}",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "PermitRootLogin prohibit-password",
            "UsePAM no",
            "StrictModes no",
            # Default MaxStartups 10:30:100 drops ~30% of concurrent handshakes under load
            # (../shared/notes/anchors.md section 4): raise it so the suite is not flaky.
            "MaxStartups 200:30:400",
            "MaxSessions 64",
            "LogLevel ERROR",
            "Subsystem sftp internal-sftp",
            "AcceptEnv LANG LC_*",
            *([] if login_rc else ["SetEnv SHLVL=1"]),
        ]) + "\n")
        bed.hosts.append(SSHHost(addr, port, cfg, hdir / "sshd.log"))
    bed.known_hosts.write_text("\n".join(known) + "\n")
    cfg_lines = []
    for i, h in enumerate(bed.hosts):
        cfg_lines += [f"Host node{i} {h.addr}", f"  HostName {h.addr}", f"  Port {h.port}",
                      f"  User {bed.user}", f"  IdentityFile {bed.identity}",
                      f"  UserKnownHostsFile {bed.known_hosts}", "  StrictHostKeyChecking yes",
                      "  BatchMode yes", ""]
    bed.ssh_config.write_text("\n".join(cfg_lines))
    for h in bed.hosts:
        h.start()
    return bed
