"""ProxyCommand from ssh config: the worker's SSH session runs over the command's stdio.

The proxy here is a small TCP relay on loopback that also records that it was used; the
worker's host key is still checked end to end by the head's own client.
"""

from __future__ import annotations

import sys
import textwrap

from helpers import journal, parallel

RELAY = textwrap.dedent('''
    import os, selectors, socket, sys
    host, port, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    open(marker, "a").write(f"{host}:{port}\\n")
    s = socket.create_connection((host, port))
    sel = selectors.DefaultSelector()
    sel.register(0, selectors.EVENT_READ, "in")
    sel.register(s, selectors.EVENT_READ, "sock")
    while True:
        for key, _ in sel.select():
            if key.data == "in":
                data = os.read(0, 65536)
                if not data:
                    sys.exit(0)
                s.sendall(data)
            else:
                data = s.recv(65536)
                if not data:
                    sys.exit(0)
                os.write(1, data)
''')


def _config(sshbed, tmp_path, known_hosts):
    relay = tmp_path / "relay.py"
    relay.write_text(RELAY)
    marker = tmp_path / "proxied"
    h = sshbed.hosts[0]
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host viaproxy\n  HostName {h.addr}\n  Port {h.port}\n  User {sshbed.user}\n"
                   f"  IdentityFile {sshbed.identity}\n  UserKnownHostsFile {known_hosts}\n"
                   f"  ProxyCommand {sys.executable} {relay} %h %p {marker}\n")
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text("workers:\n  - host: viaproxy\n    procs: 2\n    shared_fs: true\n")
    return cfg, hosts, marker, h


def test_proxy_command_carries_the_worker(sshbed, tmp_path):
    cfg, hosts, marker, h = _config(sshbed, tmp_path, sshbed.known_hosts)
    (tmp_path / "t.txt").write_text("".join(f"echo $SSH_CONNECTION {i}\n" for i in range(4)))
    p = parallel("run", "--tasks", "t.txt", "--workers", hosts, "--ssh-config", cfg, "-q",
                 cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert f"{h.addr}:{h.port}" in marker.read_text()  # %h %p expanded, the relay was used
    outs = [f.read_text() for f in (tmp_path / "runs" / "t" / "logs").glob("*.out")]
    assert len(outs) == 4 and all(f" {h.port} " in o for o in outs)
    assert journal(tmp_path / "runs" / "t").execute(
        "SELECT COUNT(*) FROM tasks WHERE state = 'done'").fetchone()[0] == 4


def test_proxy_command_still_checks_the_worker_host_key(sshbed, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    cfg, hosts, marker, _ = _config(sshbed, tmp_path, empty)
    (tmp_path / "t.txt").write_text("echo hi\n")
    p = parallel("run", "--tasks", "t.txt", "--workers", hosts, "--ssh-config", cfg, "-q",
                 cwd=tmp_path, timeout=60)
    assert p.returncode == 1 and "host key" in p.stderr.lower(), p.stderr
    assert marker.exists()  # it did go through the proxy, and was refused at the worker's key
