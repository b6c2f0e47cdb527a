"""The agent's installed-version lookup agrees with importlib.metadata (which it avoids
importing at start, see head/worker/agent.py project_version)."""

from __future__ import annotations

import subprocess
import sys
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
print(project_version()); print(want)
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
