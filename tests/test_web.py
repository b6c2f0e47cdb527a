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
        assert "$ echo broken &gt;&amp;2; exit 3" in dom  # named by its command, not its hash
        assert 'data-host="localhost"' in dom
        _check_page(dom, url, failed=1)
        assert "running (head pid" in _text(dom, "state")
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


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is installed by scripts/test.sh")
def test_finished_run_page_shows_the_whole_run(tmp_path):
    """An old, finished run: its timeline spans all of it (not the last 120 s of the clock),
    and a failed attempt's log opens from the page."""
    tl = tmp_path / "done.txt"
    tl.write_text("sleep 0.3\nsleep 0.3\necho out-text; echo err-text >&2; exit 5\ntrue\n")
    p = subprocess.run(PARALLEL + ["run", "--tasks", tl, "--procs", "2", "-q"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p.stderr
    run = tmp_path / "runs" / "done"
    # Make it a run of an hour ago, as a user opening yesterday's run sees it.
    db = sqlite3.connect(run / "journal.sqlite")
    with db:
        db.execute("UPDATE attempts SET start = start - 3600, end = end - 3600, "
                   "queued = queued - 3600")
        for key in ("started", "finished"):
            db.execute("UPDATE meta SET value = CAST(CAST(value AS REAL) - 3600 AS TEXT) "
                       "WHERE key = ?", (key,))
    db.close()
    port = free_port()
    server = subprocess.Popen(PARALLEL + ["serve", str(run), "--port", str(port)],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for(lambda: _up(url))
        dom = chromium("--virtual-time-budget=3000", "--dump-dom", url,
                       profile=tmp_path / "chrome").stdout
        assert _text(dom, "window").startswith("the whole run")
        assert len(re.findall(r"<rect [^>]*data-task=", dom)) == 4  # every attempt
        assert "finished with failures" in _text(dom, "state")
        _check_page(dom, url, failed=1)
        # The x axis runs from 0 to about the run's length (~0.6 s), not over 120 s.
        ticks = [float(t) for t in re.findall(r'class="xtick"[^>]*>([0-9.]+)<', dom)]
        assert ticks and max(ticks) < 5
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "web-view-finished.png"
        chromium("--virtual-time-budget=3000", f"--screenshot={shot}", url,
                 profile=tmp_path / "chrome2")
        assert shot.stat().st_size > 10_000
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)


def _check_page(dom: str, url: str, failed: int) -> None:
    """What every page must show: failures in red on the bar, labelled axes, host counts
    that add up to the header's, and a failed attempt's log one link away."""
    width = re.search(r'id="progress-failed" style="width: ?([0-9.]+)%', dom)
    assert width and float(width.group(1)) > 0, "no red part in the progress bar"
    assert 'class="bar failing"' in dom
    for label in ("timeline-xlabel", "throughput-xlabel", "throughput-ylabel"):
        assert re.search(rf'id="{label}"[^>]*>[^<]*second', dom), label
    rows = re.findall(r"<tr data-host=[^>]*>(.*?)</tr>", dom)
    cells = [re.findall(r"<td>([^<]*)</td>", r) for r in rows]
    assert sum(int(c[4]) for c in cells) == int(_text(dom, "failed")) == failed
    assert sum(int(c[3]) for c in cells) == int(_text(dom, "done"))
    links = re.findall(r'<a class="log"[^>]*href="([^"]+/err)"', dom)
    assert links, "no log link for the failed attempt"
    body = urllib.request.urlopen(url.rstrip("/") + links[-1].replace("&amp;", "&"),
                                  timeout=5).read().decode()
    assert "broken" in body or "err-text" in body
    with pytest.raises(urllib.error.HTTPError) as e:  # only the journal's own log paths
        urllib.request.urlopen(url + "log/..%2F..%2Fetc%2Fpasswd/1/err", timeout=5)
    assert e.value.code == 404


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
