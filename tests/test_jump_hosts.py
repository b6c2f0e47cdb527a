"""Workers reachable only through a jump host (network namespaces this test creates).

See netnsbed.py: a jump sshd in namespace J, worker sshds in namespace W, and no route from
this machine to W.  The runs go through ``jump:`` in hosts.yaml and through ProxyJump in an
ssh config; every hop's host key is checked.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest
from helpers import PARALLEL
from netnsbed import NetnsBed, have_netns, start_netns_bed
from sshbed import free_port


@pytest.fixture(scope="module")
def netbed(tmp_path_factory, sshbed):
    why = have_netns()
    if why:
        pytest.skip(why)
    root = tmp_path_factory.mktemp("netns")
    bed = start_netns_bed(root, sshbed.root / "authorized_keys", free_port(["127.0.0.1"]) + 0,
                          workers=2)
    yield bed
    bed.stop()


def write_known(path: Path, bed: NetnsBed, jump: bool = True, workers: bool = True) -> Path:
    lines = ([bed.jump.known_line()] if jump else []) + (
        [w.known_line() for w in bed.workers] if workers else [])
    path.write_text("\n".join(lines) + "\n")
    return path


def run(args, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("SSH_AUTH_SOCK", None)
    return subprocess.run(PARALLEL + [str(a) for a in args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def hosts_yaml(path: Path, bed: NetnsBed, sshbed, jump: str | None = None) -> Path:
    lines = ["workers:"]
    for w in bed.workers:
        lines += [f"  - host: {w.addr}", f"    port: {w.port}", f"    user: {sshbed.user}",
                  f"    identity: {sshbed.identity}", "    procs: 2"]
        if jump:
            lines.append(f"    jump: {jump}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_worker_network_is_unreachable_directly(netbed):
    """The premise: this machine cannot reach the workers except through the jump host."""
    with pytest.raises(OSError):
        socket.create_connection((netbed.worker_addr, netbed.workers[0].port), timeout=3)
    with socket.create_connection((netbed.jump_addr, netbed.jump.port), timeout=3):
        pass


def test_jump_field_one_shared_connection(netbed, sshbed, tmp_path):
    cfg = tmp_path / "ssh_config"
    known = write_known(tmp_path / "known_hosts", netbed)
    cfg.write_text(f"Host *\n  UserKnownHostsFile {known}\n  IdentityFile {sshbed.identity}\n")
    hosts = hosts_yaml(tmp_path / "hosts.yaml", netbed, sshbed,
                       jump=f"{sshbed.user}@{netbed.jump_addr}:{netbed.jump.port}")
    up = tmp_path / "up"
    up.mkdir()
    (tmp_path / "tasks.txt").write_text(
        # Dispatch starts on the first worker up, which alone could run all 8 before the
        # other has connected through the jump host: each task marks its worker (by sshd's
        # port) and waits, up to 60 s, until both workers have marked.
        "\n".join(f'touch {up}/$(echo "$SSH_CONNECTION" | cut -d" " -f4); t=0; '
                   f'while [ "$(ls {up} | wc -l)" -lt 2 ] && [ $t -lt 3000 ]; do sleep 0.02; '
                   f't=$((t+1)); done; echo "$SSH_CONNECTION" {i}' for i in range(8)) + "\n")
    before = netbed.jump.accepted()
    p = run(["run", "--tasks", "tasks.txt", "--workers", hosts, "--ssh-config", cfg,
             "--name", "j"], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    outs = [f.read_text() for f in (tmp_path / "runs" / "j" / "logs").glob("*.out")]
    assert len(outs) == 8
    # Every task ran on a worker in W (the server end of its SSH connection is W's address),
    # and the connection came from the jump host's side of W's link, not from this machine.
    assert all(f"{netbed.worker_addr} " in o for o in outs), outs
    assert all(o.startswith(f"10.253.{netbed.net + 1}.1 ") for o in outs), outs
    ports = {int(o.split()[3]) for o in outs}
    assert ports == {w.port for w in netbed.workers}  # both workers were used
    # Two workers, one login on the jump host: the connection was shared.
    assert netbed.jump.accepted() - before == 1


def test_proxyjump_from_ssh_config(netbed, sshbed, tmp_path):
    known = write_known(tmp_path / "known_hosts", netbed)
    w = netbed.workers[0]
    cfg = tmp_path / "ssh_config"
    cfg.write_text("\n".join([
        "Host gateway", f"  HostName {netbed.jump_addr}", f"  Port {netbed.jump.port}",
        f"  User {sshbed.user}", "",
        "Host inner", f"  HostName {w.addr}", f"  Port {w.port}", "  ProxyJump gateway", "",
        "Host *", f"  UserKnownHostsFile {known}", f"  IdentityFile {sshbed.identity}", ""]))
    (tmp_path / "hosts.yaml").write_text("workers:\n  - host: inner\n    procs: 2\n")
    (tmp_path / "tasks.txt").write_text('echo "$SSH_CONNECTION"\n')
    p = run(["run", "--tasks", "tasks.txt", "--workers", "hosts.yaml", "--ssh-config", cfg,
             "--name", "pj"], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    out = next((tmp_path / "runs" / "pj" / "logs").glob("*.out")).read_text()
    assert f"{w.addr} {w.port}" in out


@pytest.mark.parametrize("missing", ["jump", "worker"])
def test_host_keys_checked_at_every_hop(netbed, sshbed, tmp_path, missing):
    known = write_known(tmp_path / "known_hosts", netbed, jump=missing != "jump",
                        workers=missing != "worker")
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host *\n  UserKnownHostsFile {known}\n  IdentityFile {sshbed.identity}\n")
    hosts = hosts_yaml(tmp_path / "hosts.yaml", netbed, sshbed,
                       jump=f"{sshbed.user}@{netbed.jump_addr}:{netbed.jump.port}")
    (tmp_path / "tasks.txt").write_text("echo must-not-run\n")
    p = run(["run", "--tasks", "tasks.txt", "--workers", hosts, "--ssh-config", cfg,
             "--name", "k"], tmp_path)
    assert p.returncode != 0
    text = p.stdout + p.stderr
    if missing == "jump":
        assert "jump host" in text and "Host key verification failed" in text, text
    else:
        assert "host key" in text and netbed.worker_addr in text, text
    assert not list((tmp_path / "runs" / "k" / "logs").glob("*.out"))
