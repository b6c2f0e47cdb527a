"""Benchmark sweeps: one run of an app per (workers x procs) cell, tabulated like Lasair's.

Each cell uses the first N workers of the hosts file with P slots each, runs the app into
``OUT/w<N>-p<P>/`` (a fresh run directory: a bench never resumes), and records the wall time
of the whole run (connect, dispatch, tasks, all of it: what a user waits for).  Speedup and
efficiency are against the 1 x 1 cell (or the smallest cell swept, scaled by its slots), as in
Lasair's table (../shared/notes/anchors.md section 1).
"""

from __future__ import annotations

import csv
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

from lasair_parallel.head.connect.hosts import HostSpec
from lasair_parallel.head.core.options import Options
from lasair_parallel.tasks.errors import UsageError


class BenchError(UsageError):
    pass


@dataclass
class Cell:
    workers: int
    procs: int
    seconds: float  # wall time of the whole run
    span: float  # first task start to last task end (from the journal)
    done: int
    failed: int
    speedup: float = 0.0
    efficiency: float = 0.0

    @property
    def slots(self) -> int:
        return self.workers * self.procs


def parse_sweep(text: str, what: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise BenchError(f"--sweep-{what} {text!r}: give whole numbers like 1,2,4") from None
    if not vals or any(v < 1 for v in vals):
        raise BenchError(f"--sweep-{what} {text!r}: give numbers >= 1 like 1,2,4")
    return sorted(set(vals))


def sweep(ref, app: ModuleType, app_args, hosts: list[HostSpec], workers: list[int],
          procs: list[int], out: Path, opts: Options, log=print) -> list[Cell]:
    """Run every cell; return them with speedup and efficiency filled in."""
    from lasair_parallel.head.appload import plan_context
    from lasair_parallel.head.core.runner import execute
    from lasair_parallel.head.views.status import summary

    if max(workers) > len(hosts):
        raise BenchError(f"--sweep-workers asks for {max(workers)} workers but the hosts file "
                         f"lists {len(hosts)}")
    name = ref.name
    cells = []
    for p in procs:
        for w in workers:
            rdir = (out / f"w{w}-p{p}").resolve()
            if (rdir / "journal.sqlite").exists():
                shutil.rmtree(rdir)  # an earlier bench's cell: a bench measures a fresh run
            cell_hosts = [replace(h, procs=p) for h in hosts[:w]]
            ctx = plan_context(ref, rdir, slots=w * p, hosts=w)
            tasks = app.plan(app_args, ctx)
            t0 = time.perf_counter()
            res = execute(cell_hosts, tasks, rdir, f"{name}-w{w}-p{p}", opts, progress=False,
                          app=app, app_args=app_args, app_ctx=ctx)
            wall = time.perf_counter() - t0
            span = summary(rdir)["span"]
            cells.append(Cell(w, p, wall, span, res.done, res.failed))
            log(f"bench: {w} worker(s) x {p} proc(s): {wall:.2f} s "
                f"({res.done} done, {res.failed} failed)")
    base = min(cells, key=lambda c: (c.slots, c.seconds))
    for c in cells:
        c.speedup = base.seconds / c.seconds if c.seconds else 0.0
        c.efficiency = c.speedup * base.slots / c.slots
    return cells


def write_outputs(cells: list[Cell], out: Path, title: str) -> dict[str, Path]:
    """bench.csv, bench.md (Lasair's shape: procs down, workers across) and bench.png."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "bench.csv", "md": out / "bench.md", "png": out / "bench.png"}
    with open(paths["csv"], "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["workers", "procs", "slots", "seconds", "span", "speedup", "efficiency",
                     "done", "failed"])
        for c in cells:
            wr.writerow([c.workers, c.procs, c.slots, f"{c.seconds:.3f}", f"{c.span:.3f}",
                         f"{c.speedup:.3f}", f"{c.efficiency:.3f}", c.done, c.failed])
    paths["md"].write_text(markdown(cells, title))
    heatmap(cells, paths["png"], title)
    return paths


def _grid(cells: list[Cell]):
    ws = sorted({c.workers for c in cells})
    ps = sorted({c.procs for c in cells})
    at = {(c.procs, c.workers): c for c in cells}
    return ws, ps, at


def markdown(cells: list[Cell], title: str) -> str:
    ws, ps, at = _grid(cells)
    head = "| procs \\ workers | " + " | ".join(str(w) for w in ws) + " |"
    sep = "|---" * (len(ws) + 1) + "|"
    parts = [f"# {title}", ""]
    for label, fmt in (("seconds", lambda c: f"{c.seconds:.2f}"),
                       ("speedup", lambda c: f"{c.speedup:.2f}x"),
                       ("efficiency", lambda c: f"{100 * c.efficiency:.0f}%")):
        parts += [f"## {label}", "", head, sep]
        for p in ps:
            row = [fmt(at[(p, w)]) if (p, w) in at else "" for w in ws]
            parts.append(f"| {p} | " + " | ".join(row) + " |")
        parts.append("")
    return "\n".join(parts)


def heatmap(cells: list[Cell], path: Path, title: str) -> Path:
    """Efficiency as colour; wall seconds and speedup written in each cell, large enough to
    read at a glance (a 1 x 1 sweep still gives a picture of readable size)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np

    ws, ps, at = _grid(cells)
    eff = np.full((len(ps), len(ws)), np.nan)
    fig, ax = plt.subplots(figsize=(max(8.0, 1.9 * len(ws) + 3.5),
                                    max(5.5, 1.1 * len(ps) + 2.5)))
    for i, p in enumerate(ps):
        for j, w in enumerate(ws):
            c = at.get((p, w))
            if c is None:
                continue
            eff[i, j] = c.efficiency
            # Dark text on the light middle of the colour map, white on its dark ends.
            ink = "black" if 0.25 <= c.efficiency <= 0.85 else "white"
            text = f"{100 * c.efficiency:.0f}%\n{c.seconds:.1f} s, {c.speedup:.1f}x"
            if c.failed:
                text += f"\n{c.failed} task(s) failed"
            ax.text(j, i, text, ha="center", va="center", fontsize=12, color=ink)
    im = ax.imshow(eff, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(ws)), [str(w) for w in ws], fontsize=11)
    ax.set_yticks(range(len(ps)), [str(p) for p in ps], fontsize=11)
    ax.set_xlabel("workers", fontsize=12)
    ax.set_ylabel("procs per worker", fontsize=12)
    ax.set_title(f"{title}\ncolour: efficiency (speedup / slots); "
                 "text: efficiency, wall seconds, speedup", fontsize=11)
    bar = fig.colorbar(im, ax=ax)
    bar.set_label("efficiency (speedup / slots)", fontsize=11)
    bar.ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
