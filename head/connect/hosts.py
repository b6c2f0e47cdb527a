"""Worker lists: ``hosts.yaml`` or a GNU parallel sshloginfile, checked line by line."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from lasair_parallel.head.connect.slurmopts import SlurmOptions, parse_slurm_options
from lasair_parallel.tasks.errors import UsageError

FIELDS = {"host", "port", "user", "identity", "procs", "workdir", "python", "transport",
          "shared_fs", "name", "slurm", "jump"}


class HostsError(UsageError):
    """A worker list that cannot be used; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class HostSpec:
    """One worker as the user described it (before ~/.ssh/config is applied)."""

    host: str
    procs: int = 1
    port: int | None = None
    user: str | None = None
    identity: str | None = None
    workdir: str | None = None
    python: str | None = None
    transport: str = "ssh"  # "ssh", "local" or "slurm"
    shared_fs: bool | None = None  # None: local -> True, ssh -> False (copy outputs back)
    name: str | None = None  # a display name; default host[:port]
    line: int = 0  # where it was defined, for error messages
    slurm: SlurmOptions | None = None  # transport: slurm only (head/connect/slurm.py)
    jump: str | None = None  # a jump host ([user@]host[:port], or a Host of ssh config)

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        host = f"[{self.host}]" if ":" in self.host else self.host  # IPv6
        return self.host if self.port in (None, 22) else f"{host}:{self.port}"

    @property
    def shares_fs(self) -> bool:
        if self.shared_fs is None:  # a Slurm node shares the head's files (a cluster's FS)
            return self.transport in ("local", "slurm")
        return self.shared_fs


# Slots per worker above this are a typo, not a machine: each slot holds a task's process and
# its pipes (3 descriptors on the agent, more on the head), and the head builds a list of
# slots per host, so 10^9 slots took 22 GB before being killed and 2^63 hung.  4096 is more
# than the cores of any single machine sold today (the largest have ~1000 hardware threads).
MAX_PROCS = 4096
WHY_MAX_PROCS = "give the slots (processes at once) this machine can run"


def read_hosts(path: str | Path, procs: int | None = None) -> list[HostSpec]:
    """Read a worker list; ``procs`` (the CLI's ``--procs``) overrides every worker's slots."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise HostsError(
            f"{path}: no such workers file; give a hosts.yaml or an sshloginfile") from None
    except (OSError, UnicodeDecodeError) as e:
        raise HostsError(f"{path}: cannot read workers file ({e})") from None
    if path.suffix in (".yaml", ".yml") or _looks_like_yaml(text):
        hosts = _parse_yaml(path, text)
    else:
        hosts = _parse_sshlogin(path, text)
    if not hosts:
        raise HostsError(f"{path}: no workers listed; add at least one (e.g. `- host: localhost`)")
    seen: dict[str, int] = {}
    for h in hosts:
        if h.label in seen:
            raise HostsError(
                f"{path}:{h.line}: worker {h.label} is listed twice (first at line "
                f"{seen[h.label]}); raise its procs instead, or give each a distinct name"
            )
        seen[h.label] = h.line
    if procs is not None:
        if procs < 1:
            raise HostsError("--procs must be at least 1")
        hosts = [replace(h, procs=procs) for h in hosts]
    return hosts


def _looks_like_yaml(text: str) -> bool:
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        return s.startswith(("workers:", "- ", "-\t")) or s == "-"
    return False


@functools.cache
def _line_loader() -> type:
    """A SafeLoader that records the line of every mapping, for error messages.  yaml is
    imported here: a run on the default workers (no hosts.yaml) never reads YAML (~9 ms of
    every head's start, ``python -X importtime``)."""
    import yaml

    class LineLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
        d = loader.construct_mapping(node, deep=True)
        d["__line__"] = node.start_mark.line + 1
        return d

    LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return LineLoader


def _parse_yaml(path: Path, text: str) -> list[HostSpec]:
    import yaml

    try:
        doc = yaml.load(text, Loader=_line_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise HostsError(f"{path}{where}: not valid YAML ({problem}); fix the syntax") from None
    if isinstance(doc, dict):
        workers = doc.get("workers")
        if workers is None:
            raise HostsError(f"{path}:1: no `workers:` list; put the hosts under `workers:`")
    else:
        workers = doc
    if not isinstance(workers, list):
        raise HostsError(f"{path}: `workers` must be a list of hosts (lines starting with `- `)")
    return [_host_from_yaml(path, w) for w in workers]


def _host_from_yaml(path: Path, w: object) -> HostSpec:
    if isinstance(w, str):
        return _parse_login(path, 0, w)
    if not isinstance(w, dict):
        raise HostsError(f"{path}: each worker must be a mapping like `- host: node1`")
    line = w.pop("__line__", 0)
    where = f"{path}:{line}"
    unknown = set(w) - FIELDS
    if unknown:
        raise HostsError(
            f"{where}: unknown field {sorted(unknown)[0]!r}; use one of {', '.join(sorted(FIELDS))}"
        )
    if not w.get("host") or not isinstance(w["host"], str):
        raise HostsError(f"{where}: worker has no `host:`; add e.g. `host: node1`")
    transport = w.get("transport", "ssh")
    if transport not in ("ssh", "local", "slurm"):
        raise HostsError(
            f"{where}: transport must be `ssh`, `local` or `slurm`, not {transport!r}")
    if w.get("slurm") is not None and transport != "slurm":
        raise HostsError(f"{where}: `slurm:` options need `transport: slurm`")
    slurm = parse_slurm_options(where, w.get("slurm")) if transport == "slurm" else None
    ints = {}
    for key, lo in (("procs", 1), ("port", 1)):
        if key in w:
            v = w[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < lo or (
                    key == "port" and v > 65535):
                raise HostsError(f"{where}: {key} must be a whole number >= {lo}, not {v!r}")
            if key == "procs" and v > MAX_PROCS:
                raise HostsError(f"{where}: procs {v} is more than {MAX_PROCS}; {WHY_MAX_PROCS}")
            ints[key] = v
    shared = w.get("shared_fs")
    if shared is not None and not isinstance(shared, bool):
        raise HostsError(f"{where}: shared_fs must be true or false, not {shared!r}")
    for key in ("user", "identity", "workdir", "python", "name"):
        if isinstance(w.get(key), (list, dict, bool)):  # str() would make "[1, 2]" a path
            raise HostsError(f"{where}: {key} must be text, not {w[key]!r}")
    strs = {}
    for key in ("user", "identity", "workdir", "python", "name", "jump"):
        if w.get(key) is not None:
            strs[key] = str(w[key])
    if strs.get("jump") and transport != "ssh":
        raise HostsError(f"{where}: `jump:` is for SSH workers (transport: ssh)")
    return HostSpec(host=w["host"].strip("[]"), transport=transport, shared_fs=shared, line=line,
                    slurm=slurm,
                    procs=ints.get("procs", 1), port=ints.get("port"), **strs)


# GNU parallel's sshlogin: [ncpus/][user@]host[:port], or ":" for the local machine.
_LOGIN = re.compile(r"^(?:(?P<procs>\d+)/)?(?:(?P<user>[^@\s/]+)@)?(?P<host>[^@\s:/]+|\[[^\]]+\])"
                    r"(?::(?P<port>\d+))?$")


def _parse_sshlogin(path: Path, text: str) -> list[HostSpec]:
    hosts = []
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        hosts.append(_parse_login(path, lineno, s))
    return hosts


def _parse_login(path: Path, lineno: int, s: str) -> HostSpec:
    if s == ":" or re.fullmatch(r"\d+/:", s):
        procs = int(s.split("/")[0]) if "/" in s else os.cpu_count() or 1
        return HostSpec(host="localhost", transport="local", procs=procs, line=lineno)
    m = _LOGIN.match(s) or _LOGIN.match(_bracket_ipv6(s))
    if not m:
        hint = ("ssh options in an sshlogin are not supported; put them in ~/.ssh/config"
                if s.startswith("ssh ") or " " in s else "write it as [procs/][user@]host[:port]")
        raise HostsError(f"{path}:{lineno}: cannot read worker {s!r}; {hint}")
    procs = int(m["procs"]) if m["procs"] else 1
    if procs < 1:
        raise HostsError(f"{path}:{lineno}: {s!r} asks for 0 slots; use at least 1")
    if procs > MAX_PROCS:
        raise HostsError(f"{path}:{lineno}: {procs} slots is more than {MAX_PROCS}; "
                         f"{WHY_MAX_PROCS}")
    port = int(m["port"]) if m["port"] else None
    if port is not None and not 1 <= port <= 65535:
        raise HostsError(f"{path}:{lineno}: port {port} out of range 1-65535")
    return HostSpec(host=m["host"].strip("[]"), user=m["user"], port=port, procs=procs,
                    line=lineno)


def _bracket_ipv6(s: str) -> str:
    """``[procs/][user@]::1`` (a bare IPv6 address, so no port) -> the bracketed form."""
    head, _, host = s.rpartition("@") if "@" in s else ("", "", s)
    pre, _, host = host.rpartition("/") if not head and "/" in host else ("", "", host)
    if host.count(":") >= 2 and not host.startswith("["):
        host = f"[{host}]"
    return (f"{pre}/" if pre else "") + (f"{head}@" if head else "") + host


@dataclass(frozen=True)
class SSHTarget:
    """Where and how to connect, after ~/.ssh/config has been applied."""

    hostname: str
    port: int
    user: str
    identities: tuple[str, ...]
    known_hosts: tuple[str, ...]
    jump: str | None = None  # reached through this jump host (head/connect/jump.py)
    ssh_config: str | None = None  # the ssh_config used, for the jump connection
    proxy_command: str | None = None  # ssh config's ProxyCommand (tokens not yet expanded)


def resolve_ssh(spec: HostSpec, ssh_config: str | None = None) -> SSHTarget:
    """Apply OpenSSH's own configuration (``ssh -G``) to a worker; explicit fields win.

    ``ssh -G`` prints the options OpenSSH would use for a host after reading ~/.ssh/config and
    /etc/ssh/ssh_config (Host and Match blocks, HostName, Port, User, IdentityFile,
    UserKnownHostsFile), so we honour the user's config exactly as ssh does.
    """
    return resolve_all([spec], ssh_config)[0]


def resolve_all(specs: list[HostSpec], ssh_config: str | None = None) -> list[SSHTarget]:
    """:func:`resolve_ssh` for many workers, their ``ssh -G`` processes running side by side
    (one after another they cost 5-12 ms per host at the start of every run, measured on
    4 loopback hosts)."""
    return Resolving(specs, ssh_config).result()


class Resolving:
    """``ssh -G`` for each of ``specs``, started now and read by :meth:`result`; a run starts
    them before it opens its journal, so they run meanwhile (4 loopback hosts: ~30 ms)."""

    def __init__(self, specs: list[HostSpec], ssh_config: str | None = None):
        self.specs, self.ssh_config = list(specs), ssh_config
        ssh = shutil.which("ssh")
        self._procs: list[subprocess.Popen | None] = []
        for spec in self.specs:
            try:
                self._procs.append(subprocess.Popen(
                    _ssh_g(ssh, spec, ssh_config), stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL, text=True) if ssh else None)
            except OSError:
                self._procs.append(None)

    def result(self, meanwhile: Callable[[], object] | None = None) -> list[SSHTarget]:
        """The targets, in ``specs``' order (``ssh``'s defaults where ``ssh -G`` failed);
        ``meanwhile()`` runs first, while the processes may still be running."""
        if meanwhile is not None and self.specs:
            meanwhile()
        out = []
        for spec, p in zip(self.specs, self._procs, strict=True):
            opts: dict[str, list[str]] = {}
            if p is not None:
                try:
                    text, _ = p.communicate(timeout=10)
                    if p.returncode == 0:
                        for line in text.splitlines():
                            k, _, v = line.partition(" ")
                            opts.setdefault(k.lower(), []).append(v)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            out.append(_target(spec, self.ssh_config, opts))
        self._procs = [None] * len(self.specs)
        return out

    def abandon(self) -> None:
        """Stop and reap what still runs (the run failed before it needed the targets)."""
        for p in self._procs:
            if p is not None and p.poll() is None:
                p.kill()
            if p is not None:
                p.communicate()
        self._procs = [None] * len(self.specs)


def _ssh_g(ssh: str, spec: HostSpec, ssh_config: str | None) -> list[str]:
    cmd = [ssh, "-G"]
    if ssh_config:
        cmd += ["-F", ssh_config]
    if spec.port:
        cmd += ["-p", str(spec.port)]
    if spec.user:
        cmd += ["-l", spec.user]
    return [*cmd, spec.host]


def _target(spec: HostSpec, ssh_config: str | None, opts: dict[str, list[str]]) -> SSHTarget:
    """``spec`` with ``ssh -G``'s options ``opts`` (empty: ssh's defaults) applied."""
    home = Path.home()

    def first(key: str, default: str) -> str:
        return opts.get(key, [default])[0]

    identities = [spec.identity] if spec.identity else [
        i for i in opts.get("identityfile", []) if Path(os.path.expanduser(i)).exists()]
    if not identities:
        identities = [str(p) for p in (home / ".ssh/id_ed25519", home / ".ssh/id_ecdsa",
                                       home / ".ssh/id_rsa") if p.exists()]
    known = [k for v in opts.get("userknownhostsfile", ["~/.ssh/known_hosts"]) for k in v.split()]
    return SSHTarget(
        hostname=first("hostname", spec.host),
        port=spec.port or int(first("port", "22")),
        user=spec.user or first("user", os.environ.get("USER", "root")),
        identities=tuple(os.path.expanduser(i) for i in identities),
        known_hosts=tuple(os.path.expanduser(k) for k in known),
        # ProxyJump from ssh config ("none" = explicitly none); hosts.yaml's jump: wins.
        jump=spec.jump or next((j for j in opts.get("proxyjump", []) if j != "none"), None),
        ssh_config=ssh_config,
        # ProxyJump (or jump:) wins, as in OpenSSH, where the two are exclusive
        proxy_command=next((c for c in opts.get("proxycommand", []) if c != "none"), None),
    )
