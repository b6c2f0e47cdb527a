"""parallel-ssh is imported without running git (head/connect/pssh_import.py): its wheel's
versioneer file runs ``git`` at ``import pssh``, 20-25 ms of every SSH run's start."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path


def fresh(code: str, tmp_path: Path) -> tuple[str, list[str]]:
    """Run ``code`` in a fresh interpreter whose PATH finds a ``git`` that logs its calls
    (and fails, as git outside a repository does); (stdout, the logged calls)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "git.log"
    log.write_text("")
    git = bin_dir / "git"
    git.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexit 128\n')
    git.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout.strip()
    return out, log.read_text().splitlines()


def test_plain_import_runs_git(tmp_path):
    """The premise: without the replacement, parallel-ssh runs git when imported."""
    _, calls = fresh("import pssh", tmp_path)
    assert calls and calls[0].startswith("rev-parse")


def test_a_run_imports_the_ssh_client_without_git(tmp_path):
    code = ("from lasair_parallel.head.connect.transport import warm_ssh\n"
            "warm_ssh()\n"
            "import pssh; print(pssh.__version__)")
    out, calls = fresh(code, tmp_path)
    assert calls == []
    assert out == version("parallel-ssh")  # its own version, from its dist-info
