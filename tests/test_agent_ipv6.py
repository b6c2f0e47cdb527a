"""ssh-agent authentication and IPv6 workers, against real sshd and a real ssh-agent.

The agent test gives the client no key file at all (an empty HOME, a hosts.yaml without
``identity:``, the key's only copy deleted after ``ssh-add``), so the agent is the only way
in; the same run without SSH_AUTH_SOCK must fail, so the test can tell the difference.
The IPv6 test runs sshd on ``[::1]`` only and reads the worker's SSH_CONNECTION back.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import PARALLEL
from sshbed import SSHD, SSHHost, free_port


def run_parallel(args, cwd: Path, env: dict, timeout: float = 120):
    return subprocess.run(PARALLEL + [str(a) for a in args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def ssh_agent(tmp_path):
    """A real ssh-agent (openssh-client) on a socket of our own; stopped by its PID."""
    if not shutil.which("ssh-agent"):
        pytest.skip("ssh-agent is not installed (scripts/test.sh installs openssh-client)")
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not sock.exists():  # start-up wait for the socket
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("ssh-agent did not start")
        time.sleep(0.05)
    yield sock
    proc.send_signal(signal.SIGTERM)
    proc.wait(5)


def test_ssh_agent_auth_when_no_identity(sshbed, ssh_agent, tmp_path):
    key = tmp_path / "only_copy"
    shutil.copy(sshbed.identity, key)
    key.chmod(0o600)
    env_agent = dict(os.environ, SSH_AUTH_SOCK=str(ssh_agent))
    subprocess.run(["ssh-add", "-q", str(key)], env=env_agent, check=True, capture_output=True)
    key.unlink()  # from now on the key exists only inside the agent
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host *\n  UserKnownHostsFile {sshbed.known_hosts}\n")
    h = sshbed.hosts[0]
    (tmp_path / "hosts.yaml").write_text(
        f"workers:\n  - host: {h.addr}\n    port: {h.port}\n    user: {sshbed.user}\n"
        "    procs: 2\n")
    (tmp_path / "tasks.txt").write_text("echo via-agent\necho again\n")
    args = ["run", "--tasks", "tasks.txt", "--workers", "hosts.yaml", "--ssh-config", cfg,
            "--name", "agent"]
    env = dict(env_agent, HOME=str(home), PYTHONUNBUFFERED="1")
    p = run_parallel(args, tmp_path, env)
    assert p.returncode == 0, p.stdout + p.stderr
    outs = [f.read_text() for f in (tmp_path / "runs" / "agent" / "logs").glob("*.out")]
    assert sorted(o.strip() for o in outs) == ["again", "via-agent"]
    # The control: no agent, no key file -> authentication fails, the run cannot start.
    env_none = {k: v for k, v in env.items() if k != "SSH_AUTH_SOCK"}
    p = run_parallel(args[:-1] + ["noagent"], tmp_path, env_none, timeout=120)
    assert p.returncode != 0
    assert "authentication" in (p.stdout + p.stderr).lower()


@pytest.fixture
def ipv6_sshd(sshbed, tmp_path):
    """sshd listening on [::1] only, trusting the bed's user key."""
    try:
        import socket

        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError as e:
        pytest.skip(f"no IPv6 loopback here ({e})")
    d = tmp_path / "v6"
    d.mkdir()
    key = d / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", str(key)], check=True)
    port = free_port(["127.0.0.1"])
    cfg = d / "sshd_config"
    cfg.write_text("\n".join([
        f"ListenAddress [::1]:{port}", f"HostKey {key}",
        f"AuthorizedKeysFile {sshbed.root / 'authorized_keys'}", f"PidFile {d / 'pid'}",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
        "StrictModes no", "PermitRootLogin prohibit-password", "LogLevel ERROR",
        "Subsystem sftp internal-sftp"]) + "\n")
    host = SSHHost("::1", port, cfg, d / "sshd.log")
    assert Path(SSHD).exists()
    host.start()
    known = d / "known_hosts"
    known.write_text(f"[::1]:{port} " + " ".join((d / "host_key.pub").read_text().split()[:2])
                     + "\n")
    yield host, known
    host.stop()


def test_ipv6_worker_in_hosts_yaml_and_sshloginfile(sshbed, ipv6_sshd, tmp_path):
    host, known = ipv6_sshd
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host *\n  UserKnownHostsFile {known}\n  IdentityFile {sshbed.identity}\n")
    (tmp_path / "hosts.yaml").write_text(
        f'workers:\n  - host: "::1"\n    port: {host.port}\n    user: {sshbed.user}\n'
        "    procs: 2\n")
    (tmp_path / "sshlogin").write_text(f"2/{sshbed.user}@[::1]:{host.port}\n")
    (tmp_path / "tasks.txt").write_text('echo "$SSH_CONNECTION"\necho second\n')
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for workers in ("hosts.yaml", "sshlogin"):
        p = run_parallel(["run", "--tasks", "tasks.txt", "--workers", workers, "--ssh-config",
                          cfg, "--name", workers], tmp_path, env)
        assert p.returncode == 0, p.stdout + p.stderr
        outs = " ".join(f.read_text() for f in (tmp_path / "runs" / workers / "logs")
                        .glob("*.out"))
        # SSH_CONNECTION = "client-ip client-port server-ip server-port": both ends ::1.
        assert f"::1 {host.port}" in outs, outs
    st = run_parallel(["status", str(tmp_path / "runs" / "sshlogin")], tmp_path, env)
    assert f"[::1]:{host.port}" in st.stdout, st.stdout


@pytest.mark.parametrize("url,hosts", [
    ("mysql://u@[::1]:3307/db", (("::1", 3307),)),
    ("mysql://u@[::1]/db", (("::1", 3306),)),
    ("mysql://u@node1:3306,[::1]:3307/db", (("node1", 3306), ("::1", 3307))),
])
def test_ipv6_database_urls(url, hosts):
    from lasair_parallel.csv_to_database.targets import parse_db_url

    assert parse_db_url(url).hosts == hosts


def test_bare_ipv6_database_url_is_refused_with_the_fix():
    from lasair_parallel.csv_to_database.targets import UsageError, parse_db_url

    with pytest.raises(UsageError, match=r"\[::1\]"):
        parse_db_url("mysql://u@::1/db")
