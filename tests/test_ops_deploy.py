"""Deploy, version checks and host checks over the sshd bed."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import journal, parallel
from lasair_parallel.head.version import head_version


def fake_version_python(tmp_path: Path, version: str) -> Path:
    """A `python:` for a worker whose installed lasair-parallel reports ``version``."""
    site = tmp_path / "fake-site"
    info = site / f"lasair_parallel-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: lasair-parallel\n"
                                   f"Version: {version}\n")
    wrapper = tmp_path / "python-old"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={site} exec python3 "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def test_version_mismatch_is_refused_for_apps(sshbed, tmp_path):
    py = fake_version_python(tmp_path, "9.9.9")
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=1, hosts=sshbed.hosts[:1],
                                    python=py, shared_fs=True)
    p = parallel("run", "apps/busy", "--workers", hosts, "--ssh-config", sshbed.ssh_config,
                 "-q", "--", "--count", "2", "--seconds", "0", cwd=tmp_path)
    assert p.returncode == 1
    assert "9.9.9" in p.stderr and head_version() in p.stderr
    assert "parallel deploy" in p.stderr and "Traceback" not in p.stderr
    assert journal(tmp_path / "runs" / "busy").execute(
        "SELECT COUNT(*) FROM attempts").fetchone()[0] == 0
    # A task list is plain shell commands: any version may run it.
    tl = tmp_path / "t.txt"
    tl.write_text("true\n")
    p = parallel("run", "--tasks", tl, "--workers", hosts, "--ssh-config", sshbed.ssh_config,
                 "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr


def test_deploy_installs_versioned_venv_used_by_the_agent(sshbed, tmp_path):
    """--system-site-packages --deps none: fast, offline, enough on one machine."""
    bases = [tmp_path / f"w{i}" for i in range(2)]
    lines = ["workers:"]
    for h, base in zip(sshbed.hosts[:2], bases):
        lines += [f"  - host: {h.addr}", f"    port: {h.port}", f"    user: {sshbed.user}",
                  f"    identity: {sshbed.identity}", "    procs: 1", f"    workdir: {base}",
                  "    shared_fs: true"]
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text("\n".join(lines) + "\n")
    p = parallel("deploy", "--workers", hosts, "--ssh-config", sshbed.ssh_config, "--deps",
                 "none", "--system-site-packages", cwd=tmp_path, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    version = head_version()
    assert f"deployed lasair-parallel {version} to 2 of 2" in p.stdout
    for base in bases:
        py = base / ".lasair-parallel" / version / "bin" / "python"
        assert py.exists()
        dist = list((base / ".lasair-parallel" / version).glob(
            "lib/python*/site-packages/lasair_parallel-*.dist-info"))
        assert len(dist) == 1  # the wheel went into the venv, not the system
    # The agents now start on the deployed venv, and tasks run on its interpreter.
    tl = tmp_path / "which.txt"
    tl.write_text('echo "$PARALLEL_PYTHON"\n' * 4)
    p = parallel("run", "--tasks", tl, "--workers", hosts, "--ssh-config", sshbed.ssh_config,
                 "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    outs = {f.read_text().strip() for f in (tmp_path / "runs" / "which" / "logs").glob("*.out")}
    assert outs and all("/.lasair-parallel/" + version + "/bin/python" in o for o in outs), outs
    p = parallel("run", "apps/busy", "--workers", hosts, "--ssh-config", sshbed.ssh_config,
                 "-q", "--", "--count", "2", "--seconds", "0", cwd=tmp_path)
    assert p.returncode == 0, p.stderr


def test_hosts_check_names_unreachable_host_and_reason(sshbed, tmp_path):
    good = sshbed.hosts[0]
    hosts = tmp_path / "hosts.yaml"
    sshbed.write_hosts_yaml(hosts, procs=1, hosts=[good])
    # A port nothing listens on (the bed's port on an address without an sshd).
    hosts.write_text(hosts.read_text() + f"  - host: 127.0.0.99\n    port: {good.port}\n"
                     f"    identity: {sshbed.identity}\n")
    p = parallel("hosts", "check", "--workers", hosts, "--ssh-config", sshbed.ssh_config,
                 cwd=tmp_path)
    assert p.returncode == 1
    lines = p.stdout.splitlines()
    bad = next(x for x in lines if x.startswith("127.0.0.99"))
    assert "unreachable" in bad and ("refused" in bad.lower() or "connect" in bad.lower())
    ok = next(x for x in lines if x.startswith(good.label))
    assert ok.rstrip().endswith("ok") and "yes" in ok
    assert "1 of 2 worker(s) ready" in p.stdout
    rows = json.loads(parallel("hosts", "check", "--workers", hosts, "--json", "--ssh-config",
                               sshbed.ssh_config, cwd=tmp_path).stdout)
    by = {r["host"]: r for r in rows}
    assert by[good.label]["ok"] and by[good.label]["cores"] >= 1
    assert by[good.label]["memfree"] > 0 and by[good.label]["disk_free"] > 0
    assert by[good.label]["version"] == head_version()
    assert by[f"127.0.0.99:{good.port}"]["reachable"] is False


def test_hosts_check_unknown_host_key(sshbed, tmp_path):
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=1, hosts=sshbed.hosts[:1])
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host *\n  UserKnownHostsFile {tmp_path / 'none'}\n")
    p = parallel("hosts", "check", "--workers", hosts, "--ssh-config", cfg, cwd=tmp_path)
    assert p.returncode == 1
    assert "host key" in p.stdout and "NO" in p.stdout


def test_deploy_ships_installed_plugins(sshbed, tmp_path):
    """A plugin the head has installed (from a local folder) is built and installed on the
    worker too; its app then runs there, though the worker never saw the folder."""
    import os
    import subprocess
    import sys
    import textwrap

    src = tmp_path / "src"
    pkg = src / "sqplugin"
    pkg.mkdir(parents=True)
    (src / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "sqplugin"
        version = "1.0"
        [project.entry-points."lasair_parallel.apps"]
        sq = "sqplugin"
        [tool.setuptools]
        packages = ["sqplugin"]
    """))
    (pkg / "__init__.py").write_text("")
    (pkg / "app.py").write_text(textwrap.dedent('''
        """Squares, from a plugin."""
        import argparse
        def build_parser():
            return argparse.ArgumentParser()
        def plan(args, ctx):
            return [ctx.task(f"sq-{i}", ["--i", i]) for i in range(2)]
    '''))
    (pkg / "task.py").write_text("import sys\nprint('plugin square', int(sys.argv[2]) ** 2)\n")
    site = tmp_path / "site"  # the head's view: installed from src (pip's direct_url.json)
    info = site / "sqplugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sqplugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[lasair_parallel.apps]\nsq = sqplugin\n")
    (info / "direct_url.json").write_text(json.dumps({"url": src.as_uri(), "dir_info": {}}))
    base = tmp_path / "w"
    h = sshbed.hosts[0]
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text(f"workers:\n  - host: {h.addr}\n    port: {h.port}\n    user: {sshbed.user}\n"
                     f"    identity: {sshbed.identity}\n    procs: 1\n    workdir: {base}\n"
                     "    shared_fs: false\n")
    env = dict(os.environ, PYTHONPATH=f"{site}:{src}")
    cli = [sys.executable, "-m", "lasair_parallel.head.cli.main"]
    p = subprocess.run(cli + ["deploy", "--workers", hosts, "--ssh-config", sshbed.ssh_config,
                              "--deps", "none", "--system-site-packages"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stdout + p.stderr
    venv = base / ".lasair-parallel" / head_version()
    assert list(venv.glob("lib/python*/site-packages/sqplugin-1.0.dist-info"))
    r = subprocess.run(cli + ["run", "sq", "--workers", hosts, "--ssh-config", sshbed.ssh_config,
                              "-q"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    outs = sorted(f.read_text().strip() for f in (tmp_path / "runs" / "sq" / "logs").glob("*.out"))
    assert outs == ["plugin square 0", "plugin square 1"]
