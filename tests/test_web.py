"""The live web view in a real headless Chromium, while a run goes on; numbers match the journal."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import urllib.request
from pathlib import Path

import pytest
from helpers import PARALLEL, journal, start_parallel, wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
# Flags that keep Chromium off the network (this machine has none) and quiet.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1280,900"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is installed by scripts/test.sh")
def test_live_page_matches_journal(tmp_path):
    tl = tmp_path / "mixed.txt"
    tl.write_text("true\ntrue\ntrue\necho broken >&2; exit 3\n" + "sleep 60\n" * 4)
    run = tmp_path / "runs" / "mixed"
    proc = start_parallel("run", "--tasks", tl, "--procs", "4", cwd=tmp_path)
    server = None
    try:
        def settled():
            try:  # the journal may not exist yet, or be mid-creation
                states = dict(journal(run).execute(
                    "SELECT state, COUNT(*) FROM tasks GROUP BY state"))
            except sqlite3.Error:
                return False
            return states.get("done") == 3 and states.get("failed") == 1 and \
                states.get("running") == 4
        wait_for(settled)
        port = free_port()
        server = subprocess.Popen(PARALLEL + ["serve", str(run), "--port", str(port)],
                                  cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}/"
        wait_for(lambda: _up(url))
        # Read-only: anything but GET is refused.
        req = urllib.request.Request(url + "api/run", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=5)
        assert e.value.code in (405, 501)

        dom = chromium("--virtual-time-budget=4000", "--dump-dom", url,
                       profile=tmp_path / "chrome1").stdout
        shown = {k: _text(dom, k) for k in ("done", "total", "failed", "running", "pending")}
        db = journal(run)
        states = dict(db.execute("SELECT state, COUNT(*) FROM tasks GROUP BY state"))
        assert shown == {"done": "3", "total": "8", "failed": "1", "running": "4",
                         "pending": str(states.get("pending", 0))}
        assert states.get("done") == 3 and states.get("running") == 4
        assert "exit status 3" in dom and "broken" in dom  # the failure with its stderr tail
        assert 'data-host="localhost"' in dom
        bars = re.findall(r'<rect [^>]*data-task="([^"]+)"', dom)
        n_attempts = db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
        assert len(bars) == n_attempts == 8  # one bar per attempt in the timeline
        api = json.loads(urllib.request.urlopen(url + "api/run", timeout=5).read())
        assert api["hosts"][0]["memfree"] > 0  # the memory the host reports

        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "web-view.png"
        chromium("--virtual-time-budget=4000", f"--screenshot={shot}", url,
                 profile=tmp_path / "chrome2")
        assert shot.stat().st_size > 10_000
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(10)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def _up(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).read()
        return True
    except OSError:
        return False


def _text(dom: str, element_id: str) -> str:
    m = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', dom)
    assert m, element_id
    return m.group(1)
