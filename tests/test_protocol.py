"""The head <-> agent wire format: one module, a version both sides check."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import parallel
from lasair_parallel.head.connect.transport import agent_source
from lasair_parallel.tasks import protocol


def test_agent_carries_the_protocol_and_greets_with_its_version():
    src = agent_source()
    assert "from lasair_parallel" not in src  # stdlib only: nothing to install on a worker
    p = subprocess.run([sys.executable, "-c", src, json.dumps({"procs": 1, "heartbeat": 5})],
                       input=b"", capture_output=True, timeout=30)
    hello = json.loads(p.stdout.splitlines()[0])
    assert hello["ev"] == "hello" and hello["protocol"] == protocol.PROTOCOL_VERSION
    assert set(protocol.HelloEv.__annotations__) <= set(hello) | {"version"}


def test_attempt_keys_round_trip_ids_with_hashes():
    for tid in ("busy-00001", "a#b", "x#1#2"):
        assert protocol.split_key(protocol.attempt_key(tid, 7)) == (tid, 7)


def test_an_agent_of_another_version_is_refused_in_one_line(tmp_path):
    fake = tmp_path / "oldpython"
    hello = {"ev": "hello", "protocol": 999, "pid": 1, "hostname": "x", "cores": 1,
             "python": "3.0", "executable": "/x", "cwd": "/", "memfree": None, "load": None,
             "disk_free": None, "version": None}
    fake.write_text(f"#!/bin/sh\necho '{json.dumps(hello)}'\ncat >/dev/null\n")
    fake.chmod(0o755)
    (tmp_path / "hosts.yaml").write_text(
        f"workers:\n  - host: localhost\n    transport: local\n    python: {fake}\n")
    (tmp_path / "t.txt").write_text("echo hi\n")
    p = parallel("run", "--tasks", "t.txt", "-q", cwd=tmp_path, timeout=60)
    assert p.returncode == 1
    assert "speaks protocol 999, this head " + str(protocol.PROTOCOL_VERSION) in p.stderr
    assert "Traceback" not in p.stderr


def imports_of(cmd: str) -> set[str]:
    """Modules a shell command's python imports (its ``-X importtime`` lines on stderr)."""
    import re

    p = subprocess.run(["/bin/sh", "-c", cmd], input=b"", capture_output=True, timeout=30)
    return set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", p.stderr.decode(),
                          re.MULTILINE))


def test_the_agent_starts_without_pth_files_typing_or_socket():
    """What the agent imports as the head starts it (``-S``, agent_command): the standard
    library it needs; not what site's .pth files import (this venv's editable install: its
    finder, 2-16 ms), typing (the protocol's typed dicts stay behind, ~2.6 ms) or socket."""
    from lasair_parallel.head.connect.transport import agent_command

    plain = imports_of(f"{sys.executable} -X importtime -c pass")
    from_pth = {m for m in plain if m.startswith(("__editable__", "_distutils_hack"))}
    assert from_pth  # the premise: this venv's site runs .pth files that import modules
    cmd = agent_command(sys.executable, {"procs": 1, "heartbeat": 5})
    imported = imports_of(cmd.replace(" -S ", " -S -X importtime ", 1))
    assert {"json", "subprocess"} <= imported  # the parse found the agent's imports
    unwanted = from_pth | {"typing", "socket"}
    assert not imported & unwanted, imported & unwanted
