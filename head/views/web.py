"""A live, read-only web view of a run: a small page over one JSON endpoint.

``parallel serve RUN`` serves ``/`` (a static page, ``web_page.html``) and ``/api/run`` (the
numbers, read from the run's journal opened read-only).  The page fetches the endpoint once a
second and redraws: progress and ETA, each host's slots as a timeline (the last two minutes of a
live run, the whole of an ended one), throughput over time, failures with their stderr tails
and links to ``/log/TASK/ATTEMPT/out|err`` (an attempt's output, found through the journal),
and the memory each host reports.  Only GET is served; nothing on it can start or stop work.
It listens on 127.0.0.1 unless another address is asked for explicitly.
"""

from __future__ import annotations

import json
import sqlite3
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import unquote

from lasair_parallel.head.views.logs import LogError, attempt_log
from lasair_parallel.head.views.results import JournalReader
from lasair_parallel.head.views.status import state_line, summary

TIMELINE_SECONDS = 120.0  # a live run's timeline shows the last two minutes
THROUGHPUT_BUCKETS = 60  # points on the throughput curve, whatever the run's length
LOG_MAX = 1 << 20  # bytes of a log the page shows (the tail); `parallel logs` prints it all


def run_data(run_dir: Path, now: float | None = None) -> dict:
    """Everything the page shows, as plain data (also useful to scripts and tests)."""
    now = time.time() if now is None else now
    s = summary(run_dir, failures=10, now=now)
    with JournalReader(run_dir) as j:
        t0, t1 = j.span()
        # A live run: the last two minutes move along; an ended one: the whole run at once.
        if s["live"]:
            w1 = now
            w0 = max(now - TIMELINE_SECONDS, min(t0 or now, s["started"] or now))
        else:
            w0 = min(x for x in (t0, s["started"]) if x) if (t0 or s["started"]) else now
            w1 = max(t1 or w0, w0 + 1e-3)
        bars = [{k: b[k] for k in ("task", "attempt", "host", "slot", "start", "end",
                                   "outcome")} for b in j.attempts(since=w0 if s["live"] else None)]
        series = []
        if t0 is not None and s["live"]:
            t1 = max(t1, now)  # the curve runs up to now: a stall shows as zeros
        if t0 is not None:
            # Buckets of at least a second (rates over less are noise), but ten points at
            # least for a run of a few seconds.
            length = max(t1, t0 + 1e-3) - t0
            width = max(length / THROUGHPUT_BUCKETS, min(1.0, length / 10))
            counts = j.ok_per_bucket(t0, width)
            n_buckets = int((t1 - t0) / width) + 1
            series = [{"t": t0 + (i + 1) * width, "per_s": counts.get(i, 0) / width}
                      for i in range(n_buckets)]
        slots = [{"host": h, "slots": n} for h, n in j.slots().items()]
    settled = s["done"] + s["failed"]
    eta = None
    if s["live"] and s["elapsed"] > 0 and settled:
        eta = s["elapsed"] / settled * (s["total"] - settled)
    return {**s, "state_text": state_line(s), "eta": eta, "timeline": bars,
            "window": w1 - w0, "window_start": w0, "window_end": w1, "live_window": s["live"],
            "throughput": series, "t0": t0, "slots": slots}


def make_server(run_dir: Path, host: str = "127.0.0.1", port: int = 8765) -> ThreadingHTTPServer:
    """An HTTP server for ``run_dir``; call ``serve_forever()`` on it."""
    page = resources.files("lasair_parallel.head.views").joinpath("web_page.html").read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            if self.path in ("/", "/index.html"):
                self._send(200, "text/html; charset=utf-8", page)
            elif self.path.startswith("/log/"):
                self._log(self.path[len("/log/"):])
            elif self.path == "/api/run":
                try:
                    body = json.dumps(run_data(run_dir), default=str).encode()
                except sqlite3.Error as e:  # journal being created, or mid-checkpoint
                    self._send(503, "application/json", json.dumps({"error": str(e)}).encode())
                    return
                self._send(200, "application/json", body)
            else:
                self._send(404, "text/plain", b"not found")

        def _log(self, rest: str) -> None:
            """``/log/TASK/ATTEMPT/out|err``: an attempt's output, found through the journal
            (never a path from the request), its last LOG_MAX bytes."""
            parts = [unquote(p) for p in rest.split("/")]
            try:
                if len(parts) != 3 or not parts[1].isdigit() or parts[2] not in ("out", "err"):
                    raise LogError("give /log/TASK/ATTEMPT/out or /log/TASK/ATTEMPT/err")
                text = attempt_log(run_dir, parts[0], int(parts[1]), parts[2])
            except LogError as e:
                self._send(404, "text/plain; charset=utf-8", f"{e}\n".encode())
                return
            except sqlite3.Error as e:
                self._send(503, "text/plain; charset=utf-8", f"{e}\n".encode())
                return
            body = text.encode("utf-8", "replace")[-LOG_MAX:]
            self._send(200, "text/plain; charset=utf-8", body)

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
