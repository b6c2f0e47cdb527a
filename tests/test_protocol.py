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
