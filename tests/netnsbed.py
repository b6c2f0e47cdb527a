"""A jump host and a worker that only the jump host can reach, in network namespaces.

Two namespaces of the test's own, linked in a line:

    this machine --veth-- [J: jump host sshd] --veth-- [W: worker sshds]

J does not forward packets (a new namespace starts with ip_forward=0) and this machine has no
route to W's link, so the only way into W is an SSH connection to J that opens a channel to W.
The addresses are on links that exist only between these namespaces; everything is removed
(sshd stopped by PID, namespaces deleted, which deletes their veths) when the bed stops.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def have_netns() -> str:
    """'' when this process can create network namespaces, else why not (a skip reason)."""
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    if not shutil.which("ip"):
        return "ip (iproute2) is not installed; scripts/test.sh installs it"
    return ""


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + ["ip", *args]
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)


@dataclass
class Sshd:
    addr: str
    port: int
    ns: str
    proc: subprocess.Popen
    host_key_pub: Path
    log: Path

    def known_line(self) -> str:
        return f"[{self.addr}]:{self.port} " + " ".join(self.host_key_pub.read_text().split()[:2])

    def accepted(self) -> int:
        """How many logins this sshd accepted (its log says so, one line each)."""
        return self.log.read_text().count("Accepted publickey")


@dataclass
class NetnsBed:
    root: Path
    tag: str
    net: int
    jump: Sshd | None = None
    workers: list[Sshd] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)

    @property
    def jump_addr(self) -> str:
        return f"10.253.{self.net}.2"

    @property
    def worker_addr(self) -> str:
        return f"10.253.{self.net + 1}.2"

    def start_sshd(self, ns: str, addr: str, port: int, name: str, authorized: Path) -> Sshd:
        d = self.root / name
        d.mkdir()
        key = d / "host_key"
        subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", str(key)],
                       check=True)
        cfg = d / "sshd_config"
        cfg.write_text("\n".join([
            f"ListenAddress {addr}:{port}", f"HostKey {key}", f"AuthorizedKeysFile {authorized}",
            f"PidFile {d / 'pid'}", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
            "PermitRootLogin prohibit-password", "AllowTcpForwarding yes", "MaxSessions 64",
            "LogLevel INFO", "Subsystem sftp internal-sftp"]) + "\n")
        log = d / "sshd.log"
        os.makedirs("/run/sshd", exist_ok=True)
        proc = subprocess.Popen(["ip", "netns", "exec", ns, SSHD, "-D", "-e", "-f", str(cfg)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # sshd says "Server listening on ADDR port N." once its socket is bound: an event.
        while True:
            line = proc.stderr.readline().decode("utf-8", "replace")
            if not line:
                raise RuntimeError(f"sshd in {ns} exited: {proc.wait()}")
            if "Server listening" in line:
                break
        # From now on its log goes to a file (a thread-free copy: sshd writes to our pipe).
        logf = open(log, "ab")  # noqa: SIM115 - lives as long as the sshd
        subprocess.Popen(["cat"], stdin=proc.stderr, stdout=logf)
        return Sshd(addr, port, ns, proc, Path(f"{key}.pub"), log)

    def stop(self) -> None:
        for s in [*self.workers, *([self.jump] if self.jump else [])]:
            if s.proc.poll() is None:
                s.proc.terminate()
                try:
                    s.proc.wait(5)
                except subprocess.TimeoutExpired:
                    s.proc.kill()
                    s.proc.wait()
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        self.namespaces.clear()


def start_netns_bed(root: Path, authorized: Path, port: int, workers: int = 2) -> NetnsBed:
    """Namespaces J and W, a jump sshd in J and ``workers`` sshds in W (ports port+1...)."""
    root.mkdir(parents=True, exist_ok=True)
    tag = f"lp{os.getpid() % 100000}"
    net = 2 * (os.getpid() % 120) + 10  # two /24s of the 10.253 block per test process
    bed = NetnsBed(root, tag, net)
    j, w = f"{tag}j", f"{tag}w"
    try:
        for ns in (j, w):
            subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
            bed.namespaces.append(ns)
            _ip("link", "set", "lo", "up", ns=ns)
        # this machine <-> J
        _ip("link", "add", f"{tag}a", "type", "veth", "peer", "name", f"{tag}b")
        _ip("link", "set", f"{tag}b", "netns", j)
        _ip("addr", "add", f"10.253.{net}.1/24", "dev", f"{tag}a")
        _ip("link", "set", f"{tag}a", "up")
        _ip("addr", "add", f"10.253.{net}.2/24", "dev", f"{tag}b", ns=j)
        _ip("link", "set", f"{tag}b", "up", ns=j)
        # J <-> W (this machine has no route to it)
        _ip("link", "add", f"{tag}c", "type", "veth", "peer", "name", f"{tag}d", ns=j)
        _ip("link", "set", f"{tag}d", "netns", w, ns=j)
        _ip("addr", "add", f"10.253.{net + 1}.1/24", "dev", f"{tag}c", ns=j)
        _ip("link", "set", f"{tag}c", "up", ns=j)
        _ip("addr", "add", f"10.253.{net + 1}.2/24", "dev", f"{tag}d", ns=w)
        _ip("link", "set", f"{tag}d", "up", ns=w)
        bed.jump = bed.start_sshd(j, bed.jump_addr, port, "jump", authorized)
        for i in range(workers):
            bed.workers.append(bed.start_sshd(w, bed.worker_addr, port + 1 + i, f"worker{i}",
                                              authorized))
    except BaseException:
        bed.stop()
        raise
    return bed
