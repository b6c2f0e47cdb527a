"""Run reports, bench sweeps, the memory guard and peak memory, over the sshd bed."""

from __future__ import annotations

import csv
import json
import signal
import sqlite3
import time

from helpers import journal, parallel, start_parallel

PNG = b"\x89PNG\r\n\x1a\n"


def one_line_error(p) -> str:
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr, p.stderr
    return p.stderr.strip()


def test_report_bars_match_the_journal(sshbed, tmp_path):
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=2, hosts=sshbed.hosts[:2],
                                    shared_fs=True)
    p = parallel("run", "apps/busy", "--workers", hosts, "--ssh-config", sshbed.ssh_config,
                 "--retries", "1", "--retry-delay", "0", "-q", "--", "--count", "9",
                 "--seconds", "0.1", "--mode", "sleep", "--fail-every", "4", "--vary", "0.5",
                 cwd=tmp_path)
    assert p.returncode == 1  # tasks 4 and 8 fail twice
    p = parallel("report", "runs/busy", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = tmp_path / "runs" / "busy" / "report"
    assert (out / "timeline.png").read_bytes()[:8] == PNG
    assert "utilisation" in (out / "summary.md").read_text()
    r = json.loads((out / "report.json").read_text())
    rows = journal(tmp_path / "runs" / "busy").execute(
        "SELECT task_id, attempt, host, slot, start, end, outcome FROM attempts").fetchall()
    assert len(r["bars"]) == len(rows) == 9 + 2
    t0 = min(x["start"] for x in rows)
    by_key = {(b["task"], b["attempt"]): b for b in r["bars"]}
    for x in rows:
        b = by_key[(x["task_id"], x["attempt"])]
        assert (b["host"], b["slot"], b["outcome"]) == (x["host"], x["slot"], x["outcome"])
        assert abs(b["start"] - (x["start"] - t0)) < 1e-6 and abs(b["end"] - (x["end"] - t0)) < 1e-6
    assert sorted(b["colour"] for b in r["bars"]).count("failed") == 4
    assert r["retried_tasks"] == 2 and {t["task"] for t in r["retries"]} == {"busy-00003",
                                                                            "busy-00007"}
    # One row per host slot, bars on a row never overlap.
    for lane in {(b["host"], b["slot"]) for b in r["bars"]}:
        bs = sorted((b for b in r["bars"] if (b["host"], b["slot"]) == lane),
                    key=lambda b: b["start"])
        assert all(a["end"] <= b["start"] + 1e-6 for a, b in zip(bs, bs[1:]))
    assert set(r["hosts"]) == {h.label for h in sshbed.hosts[:2]}
    assert all(0 < u["utilisation"] <= 1 for u in r["hosts"].values())
    cp = r["critical_path"]
    assert abs(cp["busy"] + cp["idle"] - r["makespan"]) < 1e-6
    assert len(r["weight"]["points"]) == 7 and r["weight"]["seconds_per_weight"] > 0
    # status --json gives the same numbers to scripts.
    s = json.loads(parallel("status", "runs/busy", "--json", cwd=tmp_path, check=True).stdout)
    assert s["report"]["makespan"] == r["makespan"]
    assert s["report"]["critical_path"] == r["critical_path"]
    assert "bars" not in s["report"]
    # --watch on a finished run draws once and exits.
    w = parallel("status", "runs/busy", "--watch", cwd=tmp_path, timeout=30)
    assert w.returncode == 0 and "utilisation" in w.stdout


def test_bench_sweep_writes_csv_md_png(sshbed, tmp_path):
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=1, shared_fs=True)
    p = parallel("bench", "apps/busy", "--workers", hosts, "--ssh-config", sshbed.ssh_config,
                 "--sweep-workers", "1,2", "--sweep-procs", "1,2", "--out", "b", "--",
                 "--mode", "sleep", "--count", "4", "--seconds", "0.2", cwd=tmp_path,
                 timeout=180)
    assert p.returncode == 0, p.stderr
    b = tmp_path / "b"
    with open(b / "bench.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["workers"]), int(r["procs"])) for r in rows] == [(1, 1), (2, 1), (1, 2),
                                                                     (2, 2)]
    assert all(int(r["done"]) == 4 and int(r["failed"]) == 0 for r in rows)
    base = next(r for r in rows if r["workers"] == r["procs"] == "1")
    assert float(base["speedup"]) == 1.0 and float(base["efficiency"]) == 1.0
    for r in rows:
        assert abs(float(r["speedup"]) - float(base["seconds"]) / float(r["seconds"])) < 0.01
    md = (b / "bench.md").read_text()
    assert "| procs \\ workers | 1 | 2 |" in md and "## efficiency" in md
    assert md.count("\n| 1 | ") == 3 and md.count("\n| 2 | ") == 3  # a row per procs, 3 tables
    assert (b / "bench.png").read_bytes()[:8] == PNG
    # Each cell really used its first N workers with P slots each.
    for w, procs in ((1, 1), (2, 1), (1, 2), (2, 2)):
        db = journal(b / f"w{w}-p{procs}")
        got = db.execute("SELECT COUNT(DISTINCT host), MAX(slot) FROM attempts").fetchone()
        assert got[0] <= w and got[1] < procs
        assert {r[0] for r in db.execute("SELECT host FROM attempts")} <= {
            h.label for h in sshbed.hosts[:w]}


def test_bench_bad_input(tmp_path):
    assert "--sweep-workers" in one_line_error(
        parallel("bench", "apps/busy", "--sweep-workers", "1,x", cwd=tmp_path))
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text("workers:\n  - host: localhost\n    transport: local\n")
    assert "asks for 4 workers" in one_line_error(
        parallel("bench", "apps/busy", "--workers", hosts, "--sweep-workers", "4",
                 cwd=tmp_path))
    assert "--count" in one_line_error(
        parallel("bench", "apps/busy", "--workers", hosts, "--", "--count", "x", cwd=tmp_path))
    assert "no run" in one_line_error(parallel("report", "nowhere", cwd=tmp_path))
    assert "--memfree" in one_line_error(
        parallel("run", "apps/busy", "--memfree", "lots", cwd=tmp_path))


def test_peak_memory_of_each_attempt_is_journaled(sshbed, tmp_path):
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=1, hosts=sshbed.hosts[:1])
    p = parallel("run", "apps/busy", "--workers", hosts, "--ssh-config", sshbed.ssh_config,
                 "-q", "--", "--count", "2", "--seconds", "0", "--mem-mb", "200", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    rss = [r[0] for r in journal(tmp_path / "runs" / "busy").execute(
        "SELECT maxrss_kb FROM attempts")]
    assert len(rss) == 2 and all(200 * 1024 <= k < 400 * 1024 for k in rss), rss


def test_memfree_guard_starts_nothing_below_threshold(sshbed, tmp_path):
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=2, hosts=sshbed.hosts[:2],
                                    shared_fs=True)
    run = tmp_path / "runs" / "busy"
    proc = start_parallel("run", "apps/busy", "--workers", hosts, "--ssh-config",
                          sshbed.ssh_config, "--memfree", "100000G", "-q", "--", "--count", "4",
                          "--seconds", "0", cwd=tmp_path)

    def low_on_both() -> bool:
        try:
            db = sqlite3.connect(run / "journal.sqlite")
            return db.execute("SELECT COUNT(DISTINCT host) FROM host_events "
                              "WHERE event = 'memory low'").fetchone()[0] == 2
        except sqlite3.Error:
            return False

    deadline = time.monotonic() + 30
    while not low_on_both():
        assert time.monotonic() < deadline, "hosts never reported low memory"
        time.sleep(0.05)  # test-side wait for the run under test to reach a state
    time.sleep(1.5)  # a heartbeat or two: memory is re-checked on each, and still too low
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    db = journal(run)
    assert db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 0
    detail = db.execute("SELECT detail FROM host_events WHERE event = 'memory low'").fetchone()
    assert "--memfree 102400000 MiB" in detail[0]
    # Below the available memory, the same run goes through.
    p = parallel("run", "apps/busy", "--workers", hosts, "--ssh-config", sshbed.ssh_config,
                 "--memfree", "1M", "-q", "--", "--count", "4", "--seconds", "0", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
