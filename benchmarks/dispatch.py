"""Dispatch benchmark: `parallel run` vs GNU parallel over 4 loopback sshd hosts x 8 slots.

    python benchmarks/dispatch.py [--quick]

Starts the test bed's sshd hosts (127.0.0.2-5), then, in one run, side by side:
  1. 2,000 x `true`: per-task overhead (GNU parallel with ssh ControlMaster masters already up,
     its best case, ../shared/notes/anchors.md section 4);
  2. 320 x `sleep 0.5`: makespan / ideal (ideal = 320 x 0.5 / 32 slots = 5 s), and the same
     against the best end possible given when each host came up (dispatch starts on the
     first host up, so first start -> last end also holds the spread of the connections);
  3. head CPU (cores) while 32 `sleep` tasks run;
  4. 100,000 queued `true` tasks: head peak memory and dispatch rate, first vs last tenth.
Prints a table and ratios; results are recorded in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from sshbed import SSHBed, start_bed  # noqa: E402

SLOTS = 8
# Our console script is also called `parallel` and may come first on PATH: use Debian's.
GNU_PARALLEL = "/usr/bin/parallel"


def run_ours(bed: SSHBed, work: Path, name: str, commands: list[str],
             sample_cpu_after: float | None = None) -> dict:
    tl = work / f"{name}.txt"
    tl.write_text("\n".join(commands) + "\n")
    hosts = bed.write_hosts_yaml(work / "hosts.yaml", procs=SLOTS, shared_fs=True)
    cmd = [sys.executable, "-m", "lasair_parallel.head.cli.main", "run", "--tasks", str(tl), "--workers", str(hosts),
           "--ssh-config", str(bed.ssh_config), "-q", "--name", name]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=work, stderr=subprocess.PIPE, text=True)
    cpu = None
    if sample_cpu_after is not None:
        time.sleep(sample_cpu_after)  # let all 32 tasks start
        c0, w0 = proc_cpu(p.pid), time.perf_counter()
        time.sleep(5.0)
        cpu = (proc_cpu(p.pid) - c0) / (time.perf_counter() - w0)
    _, err = p.communicate()
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"parallel run failed: {err}")
    db = sqlite3.connect(work / "runs" / name / "journal.sqlite")
    t_first, t_last = db.execute("SELECT MIN(start), MAX(end) FROM attempts").fetchone()
    ends = [r[0] for r in db.execute("SELECT end FROM attempts ORDER BY end")]
    ups = [r[0] for r in db.execute("SELECT MIN(start) FROM attempts GROUP BY host")]
    return {"wall": wall, "span": t_last - t_first, "cpu": cpu, "ends": ends, "ups": ups,
            "last": t_last}


def ideal_end(ups: list[float], slots: int, n: int, seconds: float) -> float:
    """When ``n`` tasks of ``seconds`` each could end at best on hosts of ``slots`` slots that
    came up at ``ups`` (each host's first task start): the first time T by which the slots
    can have finished n tasks between them.  Hosts connect a few tenths of a second apart and
    dispatch starts on the first one up, so last end - first start alone would count that
    spread as dispatch overhead."""
    ups = sorted(ups)
    for k in range(n + 1):
        # Candidate ends: a whole number of tasks after some host came up.
        for t in sorted(u + k * seconds for u in ups):
            if sum(slots * int((t - u) / seconds + 1e-9) for u in ups if t >= u) >= n:
                return t
    raise ValueError("unreachable")


def proc_cpu(pid: int) -> float:
    """CPU seconds used so far by process ``pid`` (user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gnu_parallel(bed: SSHBed, work: Path, commands: list[str],
                 times: dict | None = None) -> float:
    """GNU parallel --sshloginfile with ControlMaster masters already up; its wall time.
    ``times`` (if given) receives the epoch times it started and exited (``t0``, ``t1``),
    to set against its joblog (``work``/gnu.joblog)."""
    cfg = work / "ssh_config_cm"
    cfg.write_text(bed.ssh_config.read_text() + "\nHost *\n  ControlMaster auto\n"
                   f"  ControlPath {work}/cm-%h-%p\n  ControlPersist 600\n")
    for i in range(len(bed.hosts)):
        subprocess.run(["ssh", "-F", str(cfg), "-fN", f"node{i}"], check=True)
    logins = work / "sshlogins"
    logins.write_text("".join(f"{SLOTS}/node{i}\n" for i in range(len(bed.hosts))))
    tl = work / "gnu.txt"
    tl.write_text("\n".join(commands) + "\n")
    t0, e0 = time.perf_counter(), time.time()
    subprocess.run([GNU_PARALLEL, "--will-cite", "--ssh", f"ssh -F {cfg}", "--sshloginfile",
                    str(logins), "--joblog", str(work / "gnu.joblog")], stdin=open(tl),
                   check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    if times is not None:
        times.update(t0=e0, t1=e0 + wall)
    for i in range(len(bed.hosts)):
        subprocess.run(["ssh", "-F", str(cfg), "-O", "exit", f"node{i}"],
                       capture_output=True)
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    ap.add_argument("--queued", type=int, default=100_000, help="tasks in the memory test")
    a = ap.parse_args()
    n_true = 400 if a.quick else 2000
    n_queued = 5000 if a.quick else a.queued
    work = Path(tempfile.mkdtemp(prefix="lasair-bench-"))
    bed = start_bed(work / "bed", n=4, first=2)
    rows = []
    try:
        ours = run_ours(bed, work, "true", ["true"] * n_true)
        gnu = gnu_parallel(bed, work, ["true"] * n_true)
        per_ours, per_gnu = 1000 * ours["span"] / n_true, 1000 * gnu / n_true
        rows.append((f"{n_true} x true: ms per task", f"{per_ours:.2f}", f"{per_gnu:.2f}",
                     f"{per_gnu / per_ours:.1f}x faster"))

        ideal = 320 * 0.5 / (4 * SLOTS)
        ours = run_ours(bed, work, "sleep", ["sleep 0.5"] * 320)
        gnu = gnu_parallel(bed, work, ["sleep 0.5"] * 320)
        rows.append(("320 x sleep 0.5: makespan / ideal", f"{ours['span'] / ideal:.3f}",
                     f"{gnu / ideal:.3f}", f"(ideal {ideal:.2f} s)"))
        best = ideal_end(ours["ups"], SLOTS, 320, 0.5) - min(ours["ups"])
        rows.append(("  same, ideal given when each host came up", f"{ours['span'] / best:.3f}",
                     "", f"(hosts up over {max(ours['ups']) - min(ours['ups']):.2f} s)"))

        ours = run_ours(bed, work, "idle", ["sleep 10"] * 32, sample_cpu_after=2.0)
        rows.append(("head CPU with 32 tasks running (cores)", f"{ours['cpu']:.4f}", "", ""))

        tl = work / "queued.txt"
        tl.write_text("true\n" * n_queued)
        hosts = bed.write_hosts_yaml(work / "hosts.yaml", procs=SLOTS, shared_fs=True)
        t0 = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "lasair_parallel.head.cli.main",
                            "run", "--tasks", str(tl), "--workers", str(hosts), "--ssh-config",
                            str(bed.ssh_config), "-q", "--name", "queued"],
                           cwd=work, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(p.stderr)
        peak_mb = int(p.stderr.strip().splitlines()[-1]) / 1024
        db = sqlite3.connect(work / "runs" / "queued" / "journal.sqlite")
        ends = [r[0] for r in db.execute("SELECT end FROM attempts ORDER BY end")]
        # Rate in the second tenth (after the hosts have connected) against the last tenth:
        # flat means the queue's size does not slow dispatch down.
        tenth = len(ends) // 10
        rate_first = tenth / (ends[2 * tenth] - ends[tenth])
        rate_last = tenth / (ends[-1] - ends[-tenth - 1])
        rows.append((f"{n_queued} queued true: head peak RSS (MB)", f"{peak_mb:.0f}", "", ""))
        rows.append((f"{n_queued} queued true: tasks/s 2nd vs last tenth",
                     f"{rate_first:.0f} / {rate_last:.0f}", "",
                     f"total {wall:.0f} s"))
    finally:
        bed.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'measure':<48} {'parallel run':>14} {'GNU parallel':>14}  ratio")
    for r in rows:
        print(f"{r[0]:<48} {r[1]:>14} {r[2]:>14}  {r[3]}")


if __name__ == "__main__":
    main()
