"""A live, read-only web view of a run: a small page over one JSON endpoint.

``parallel serve RUN`` serves ``/`` (a static page, ``web_page.html``) and ``/api/run`` (the
numbers, read from the run's journal opened read-only).  The page fetches the endpoint once a
second and redraws: progress and ETA, each host's slots as a moving timeline, throughput over
time, failures with their stderr tails, and the memory each host reports.  Only GET is served;
nothing on it can start or stop work.  It listens on 127.0.0.1 unless another address is asked
for explicitly.
"""

from __future__ import annotations

import json
import sqlite3
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

from lasair_parallel.head.views.status import summary

TIMELINE_SECONDS = 120.0  # the moving timeline shows the last two minutes
THROUGHPUT_BUCKETS = 60  # points on the throughput curve, whatever the run's length


def run_data(run_dir: Path, now: float | None = None) -> dict:
    """Everything the page shows, as plain data (also useful to scripts and tests)."""
    now = time.time() if now is None else now
    s = summary(run_dir, failures=10)
    db = sqlite3.connect(f"file:{run_dir / 'journal.sqlite'}?mode=ro", uri=True)
    try:
        since = now - TIMELINE_SECONDS
        bars = [dict(zip(("task", "attempt", "host", "slot", "start", "end", "outcome"), r))
                for r in db.execute(
                    "SELECT task_id, attempt, host, slot, start, end, outcome FROM attempts "
                    "WHERE end IS NULL OR end >= ? ORDER BY start", (since,))]
        t0, t1 = db.execute("SELECT MIN(start), MAX(COALESCE(end, start)) FROM attempts"
                            ).fetchone()
        series = []
        if t0 is not None:
            width = max((max(t1, t0 + 1e-3) - t0) / THROUGHPUT_BUCKETS, 1.0)
            counts = dict(db.execute(
                "SELECT CAST((end - ?) / ? AS INTEGER) AS b, COUNT(*) FROM attempts "
                "WHERE outcome = 'ok' GROUP BY b", (t0, width)))
            n_buckets = int((t1 - t0) / width) + 1
            series = [{"t": t0 + (i + 1) * width, "per_s": counts.get(i, 0) / width}
                      for i in range(n_buckets)]
        slots = [{"host": h, "slots": n} for h, n in db.execute(
            "SELECT host, slots FROM hosts ORDER BY host")]
    finally:
        db.close()
    done = s["done"] + s["failed"]
    eta = None
    if s["elapsed"] > 0 and done and not s.get("finished"):
        eta = s["elapsed"] / done * (s["total"] - done)
    return {**s, "now": now, "eta": eta, "timeline": bars, "window": TIMELINE_SECONDS,
            "throughput": series, "slots": slots}


def make_server(run_dir: Path, host: str = "127.0.0.1", port: int = 8765) -> ThreadingHTTPServer:
    """An HTTP server for ``run_dir``; call ``serve_forever()`` on it."""
    page = resources.files("lasair_parallel.head.views").joinpath("web_page.html").read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            if self.path in ("/", "/index.html"):
                self._send(200, "text/html; charset=utf-8", page)
            elif self.path == "/api/run":
                try:
                    body = json.dumps(run_data(run_dir), default=str).encode()
                except sqlite3.Error as e:  # journal being created, or mid-checkpoint
                    self._send(503, "application/json", json.dumps({"error": str(e)}).encode())
                    return
                self._send(200, "application/json", body)
            else:
                self._send(404, "text/plain", b"not found")

        def _send(self, code: int, ctype: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args) -> None:
            pass  # one line per request every second would drown the terminal

    return ThreadingHTTPServer((host, port), Handler)
