"""The agent's installed-version lookup agrees with importlib.metadata (which it avoids
importing at start, see head/worker/agent.py project_version), also when the agent runs as
the head starts it, under ``python -S`` (no site module: agent.search_path lists its folders)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

AGENT = Path(__file__).resolve().parents[1] / "head" / "worker" / "agent.py"

# Runs in a fresh interpreter with only ``path`` (and the stdlib) on sys.path: the agent's
# function against importlib.metadata's answer, one line each.
PROBE = """
import os, re, sys
src = open(sys.argv[1]).read()
exec(src[src.index("def project_version"):src.index("def main(argv)")])
sys.path[:] = [sys.argv[2]] + [p for p in sys.path if p and "-packages" not in p]
from importlib.metadata import PackageNotFoundError, version
try:
    want = version("lasair-parallel")
except PackageNotFoundError:
    want = None
print(project_version(sys.path)); print(want)
"""


def probe(path: Path) -> list[str]:
    out = subprocess.run([sys.executable, "-S", "-c", PROBE, str(AGENT), str(path)],
                         capture_output=True, text=True, check=True, cwd=path).stdout
    return out.split()


@pytest.mark.parametrize("folder,meta", [
    ("lasair_parallel-2.3.4.dist-info", "METADATA"),
    ("lasair_parallel.egg-info", "PKG-INFO"),
    ("Lasair_Parallel-2.3.4-py3.11.egg-info", "PKG-INFO"),
])
def test_version_found_like_importlib_metadata(tmp_path, folder, meta):
    (tmp_path / "other_pkg-1.0.dist-info").mkdir()
    (tmp_path / "other_pkg-1.0.dist-info" / "METADATA").write_text("Name: other\nVersion: 1.0\n")
    info = tmp_path / folder
    info.mkdir()
    (info / meta).write_text("Metadata-Version: 2.1\nName: lasair-parallel\nVersion: 2.3.4\n\n"
                             "Version: not a header\n")
    assert probe(tmp_path) == ["2.3.4", "2.3.4"]


def test_not_installed_is_none(tmp_path):
    (tmp_path / "lasair_parallel_extras-1.0.dist-info").mkdir()
    assert probe(tmp_path) == ["None", "None"]


def fake_install(site_packages: Path, version: str) -> None:
    info = site_packages / f"lasair_parallel-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: lasair-parallel\n"
                                   f"Version: {version}\n")


def agent_hello(python: Path, env: dict) -> dict:
    """The hello of an agent started by the head's own command (agent_command: -S)."""
    from lasair_parallel.head.connect.transport import agent_command

    cmd = agent_command(str(python), {"procs": 1, "heartbeat": 5})
    assert " -S " in cmd
    p = subprocess.run(["/bin/sh", "-c", cmd], input=b"", capture_output=True, env=env, cwd=python.parent,
                       timeout=30, check=True)
    return json.loads(p.stdout.splitlines()[0])


def site_answer(python: Path, env: dict) -> str:
    """importlib.metadata's answer in the same interpreter with its site module run."""
    code = ("from importlib.metadata import PackageNotFoundError, version\n"
            "try: print(version('lasair-parallel'))\n"
            "except PackageNotFoundError: print(None)")
    return subprocess.run([str(python), "-c", code], env=env, cwd=python.parent,
                          capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.parametrize("system_site,in_venv,want", [
    (False, "2.0", "2.0"),  # the venv's own install
    (False, None, "None"),  # the user's site is hidden from an isolated venv
    (True, None, "3.0"),  # ... and seen from one with system site packages
    (True, "2.0", "2.0"),  # the venv's own comes first
])
def test_agent_under_dash_s_finds_what_site_would(tmp_path, system_site, in_venv, want):
    """A real venv, and a user site (PYTHONUSERBASE) holding version 3.0."""
    root = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=system_site, with_pip=False, symlinks=True).create(root)
    python = root / "bin" / "python"
    own = root / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    if in_venv:
        fake_install(own, in_venv)
    user = tmp_path / "userbase"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONUSERBASE"] = str(user)
    code = "import site; print(site.getusersitepackages())"
    user_site = subprocess.run([str(python), "-c", code], env=env, capture_output=True,
                               text=True, check=True).stdout.strip()
    fake_install(Path(user_site), "3.0")
    assert site_answer(python, env) == want  # the premise: what site itself finds
    assert str(agent_hello(python, env).get("version")) == want
