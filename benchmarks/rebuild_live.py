"""rebuild_objects from a real-shaped `candidates` table: the whole one-process `parallel run`,
Arrow reads (default, ``reader=auto``) against the row-by-row reads (``?reader=rows``, the
previous code), side by side on the same tables, SQLite and MariaDB, in one run.

    python benchmarks/rebuild_live.py [--objects 128000] [--no-mariadb] [--task-seconds S]
                                      [--repeat 3] [--against OLDER_CHECKOUT]

The table: benchmarks/_tables.py (the real sample replicated, rows in arrival order, index on
(objectId, jd) only; not clustered by object in SQLite or InnoDB).  Each run is
`parallel run apps/rebuild_objects --procs 1 -- --source SPEC` on this machine (local
transport), timed from the outside, after one untimed run (the table was just written), each
reader ``--repeat`` times in turn, the median run shown; the shards' rows of every run are
compared byte for byte (the features are equal; tests/test_rebuild_arrow_read.py checks them
against the per-object reference).  Each task's own read/features+csv/write split is printed
from its log.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))  # _tables when run from elsewhere

from _tables import live_mariadb, live_sqlite  # noqa: E402

LASAIR_PER_S = 128_000 / 7828  # anchors.md section 1: 16 objects/s
TASK_LINE = re.compile(r"\((\d+) objects.* in ([\d.]+) s \(read ([\d.]+), features(?:\+csv)? ([\d.]+), "
                       r"write ([\d.]+)\)")


HEAD_ARGS: list[str] = []  # extra `parallel run` options (--task-seconds), from the command line


def python_of(tree: Path) -> str:
    """The interpreter that runs ``tree``'s code: this one for this checkout, else its .venv's."""
    return sys.executable if tree == ROOT else str(tree / ".venv" / "bin" / "python")


def run(work: Path, name: str, spec: str, env: dict, tree: Path = ROOT) -> dict:
    """One whole `parallel run` of ``tree``'s code (its own .venv, or this interpreter for this
    checkout); wall seconds, task split, digest of the shards' rows."""
    cmd = [python_of(tree), "-m", "lasair_parallel.head.cli.main", "run",
           str(tree / "apps" / "rebuild_objects"), "--procs", "1", "--name", name, "-q",
           *HEAD_ARGS, "--", "--source", spec]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode:
        raise SystemExit(f"{name} failed: {p.stderr[-2000:]}")
    rd = work / "runs" / name
    split = [0.0, 0.0, 0.0, 0.0]
    objects = 0
    logs = list(rd.glob("logs/*.out"))
    for log in logs:
        for m in TASK_LINE.finditer(log.read_text()):
            objects += int(m.group(1))
            for i in range(4):
                split[i] += float(m.group(2 + i))
    # The rows of all shards, sorted: the head may split a task at run time, so which shard
    # holds an object can differ between two runs; the rows' bytes may not.
    rows = []
    for shard in (rd / "shards").glob("*.csv"):
        rows.extend(shard.read_bytes().split(b"\n")[1:])
    h = hashlib.sha256(b"\n".join(sorted(r for r in rows if r)))
    return {"wall": wall, "objects": objects, "split": split, "digest": h.hexdigest(),
            "tasks": len(logs)}


def compare(label: str, work: Path, spec: str, env: dict, sep: str, repeat: int,
            against: Path | None = None) -> None:
    """Both readers on the same table: one untimed run first (the table was just written: its
    pages are still being flushed), then ``repeat`` runs of each, in turns (each in another
    place of the turn), medians shown.
    ``against``: another checkout (an older commit, with its own .venv) whose Arrow path runs
    in the same turns, for a ratio that holds while the machine's speed drifts."""
    os.sync()
    run(work, f"{label}-warmup", spec, env)
    kinds = {"arrow (auto)": (spec, ROOT), "rows (before)": (f"{spec}{sep}reader=rows", ROOT)}
    if against is not None:
        kinds[f"arrow @ {against.name}"] = (spec, against)
    runs: dict[str, list[dict]] = {k: [] for k in kinds}
    names = list(kinds)
    for i in range(repeat):
        # The order turns each time, and the dirty pages of the run before (the row path's 7
        # shards) are flushed before each timed run: with a fixed order the run placed after
        # the row path always came third, and the same task code measured 1.53 s first and
        # 1.73 s there (its writeback, most likely; not proven).
        for j in range(len(names)):
            k = names[(i + j) % len(names)]
            s, tree = kinds[k]
            os.sync()
            runs[k].append(run(work, f"{label}-{names.index(k)}-{i}", s, env, tree))
    digests = {r["digest"] for rs in runs.values() for r in rs}
    med = {}
    for name, rs in runs.items():
        r = sorted(rs, key=lambda r: r["wall"])[len(rs) // 2]  # the median run, whole
        med[name] = r
        t, rd, f, w = r["split"]
        walls = ", ".join(f"{x['wall']:.2f}" for x in rs)
        print(f"{label:8s} {name:14s} {r['wall']:6.2f} s whole run (median of {walls}) = "
              f"{r['objects'] / r['wall']:>8,.0f} objects/s; tasks {t:.2f} s (read {rd:.2f}, "
              f"features+csv {f:.2f}, write {w:.2f}); outside tasks {r['wall'] - t:.2f} s; "
              f"{r['tasks']} tasks",
              flush=True)
    ratio = med["rows (before)"]["wall"] / med["arrow (auto)"]["wall"]
    print(f"{label:8s} arrow / rows = {ratio:.2f}x; shards identical: {len(digests) == 1}; "
          f"Lasair {LASAIR_PER_S:.0f} objects/s", flush=True)
    if against is not None:
        turns = [b["wall"] / a["wall"] for a, b in zip(runs["arrow (auto)"],
                                                       runs[f"arrow @ {against.name}"],
                                                       strict=True)]
        print(f"{label:8s} this checkout / {against.name}: {sorted(turns)[len(turns) // 2]:.2f}x "
              f"faster (median of the turns' ratios {', '.join(f'{x:.2f}' for x in turns)})",
              flush=True)


def package_dirs(tree: Path) -> list[str]:
    """The source folders ``tree``'s setup.cfg installs (its ``package_dir``), read from it so
    the list lives in one place; scripts/venv.sh compiles the same folders."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(tree / "setup.cfg")
    lines = cfg.get("options", "package_dir", fallback="").splitlines()
    return sorted({line.split("=", 1)[1].strip() for line in lines if "=" in line})


def compile_tree(tree: Path) -> None:
    """Write ``tree``'s bytecode before any run is timed.  Under PYTHONDONTWRITEBYTECODE=1 (set
    on this machine) a fresh checkout never gets a .pyc, and each of its runs compiled all 111
    modules again (the head, the agent and the task each): the 2026-12-02 10:48 commit's
    "outside tasks" was 1.99 s without its .pyc files and 0.96 s with them (2026-12-03, 06:33
    and 06:41); an explicit compileall writes them whatever that variable says."""
    dirs = [str(tree / d) for d in package_dirs(tree) if (tree / d).is_dir()]
    subprocess.run([python_of(tree), "-m", "compileall", "-q", *dirs], check=True,
                   stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=128_000)
    ap.add_argument("--no-mariadb", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each reader (median)")
    ap.add_argument("--against", type=Path,
                    help="another checkout (e.g. an older commit) with its own .venv: its "
                         "Arrow path runs in the same turns")
    ap.add_argument("--task-seconds", type=float,
                    help="passed to `parallel run` (a large value: no run-time task splits)")
    a = ap.parse_args()
    if a.task_seconds:
        HEAD_ARGS.extend(["--task-seconds", repr(a.task_seconds)])
    for tree in (ROOT, a.against) if a.against is not None else (ROOT,):
        compile_tree(tree)
    work = Path(tempfile.mkdtemp(prefix="bench-rebuild-live-"))
    env = dict(os.environ)
    server = None
    try:
        det = live_sqlite(work / "live.db", a.objects)
        compare("SQLite", work, f"sqlite:///{work / 'live.db'}", env, "?", a.repeat, a.against)
        if a.no_mariadb:
            return
        from fixtures_mariadb import PASSWORD, start_mariadb

        server = start_mariadb(work / "mariadb", {"innodb-buffer-pool-size": "1G"})
        dbname = server.create_database("ztf")
        live_mariadb(server, dbname, det)
        # the password reaches the tasks by the environment only (never argv or the journal)
        compare("MariaDB", work, server.url(dbname), dict(env, MYSQL_PWD=PASSWORD), "?",
                a.repeat, a.against)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
        with open("/proc/loadavg") as f:
            print("load average", " ".join(f.read().split()[:3]))


if __name__ == "__main__":
    main()
