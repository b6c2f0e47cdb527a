"""Workers' ssh settings come from OpenSSH's own `ssh -G` (real ssh binary, no connection),
started early by a run (hosts.Resolving) and always reaped."""

from __future__ import annotations

from pathlib import Path

from lasair_parallel.head.connect.hosts import HostSpec, Resolving, resolve_all


def config(tmp_path: Path) -> str:
    key = tmp_path / "id_test"
    key.write_text("not a key: ssh -G never reads it\n")
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host alpha\n  HostName 127.0.0.9\n  Port 2222\n  User worker\n"
                   f"  IdentityFile {key}\n  UserKnownHostsFile {tmp_path / 'kh'}\n")
    return str(cfg)


def test_ssh_config_is_applied_and_explicit_fields_win(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    a, b = resolve_all([HostSpec(host="alpha"), HostSpec(host="alpha", port=2022, user="me")],
                       cfg)
    assert (a.hostname, a.port, a.user) == ("127.0.0.9", 2222, "worker")
    assert a.identities == (str(tmp_path / "id_test"),)
    assert a.known_hosts[0] == str(tmp_path / "kh")
    assert (b.hostname, b.port, b.user) == ("127.0.0.9", 2022, "me")


def test_started_early_read_later_or_abandoned_and_reaped(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    specs = [HostSpec(host="alpha"), HostSpec(host="beta")]
    early = Resolving(specs, cfg)
    ran = []
    targets = early.result(meanwhile=lambda: ran.append(1))
    assert ran == [1] and [t.hostname for t in targets] == ["127.0.0.9", "beta"]
    early.abandon()  # after result(): nothing left to stop
    dropped = Resolving(specs, cfg)
    procs = [p for p in dropped._procs if p is not None]
    assert len(procs) == 2
    dropped.abandon()
    assert all(p.returncode is not None for p in procs)  # killed or exited, and waited for
