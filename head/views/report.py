"""Run reports: a timeline picture and the numbers for tuning a run, all from its journal.

``analyse(run_dir)`` reads the journal (read-only, so it works on a live run) into plain data:
one bar per attempt (host, slot, start, end, outcome), utilisation per host, the slowest
tasks, retries, the critical path, queue waits, dispatch gaps, and each task's duration
against its weight (seconds per unit weight: the data for choosing task sizes, as OpenQuake
does, ../shared/notes/anchors.md section 6).  ``write_report`` adds the PNG and a Markdown
summary under ``RUN/report/``.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from lasair_parallel.head.views.results import JournalReader, short_command

# Bar colours: a first-try success, a success that needed retries, and each kind of failure.
COLOURS = {"ok": "#4c78a8", "retry_ok": "#9467bd", "failed": "#d62728", "timeout": "#ff7f0e",
           "lost": "#7f7f7f", "killed": "#000000", "running": "#bcbd22"}
TOP = 10  # slowest tasks and retried tasks listed in a report
LABEL_CHAR_IN = 0.06  # width of one 7-point character on the timeline, inches
LABEL_MIN_CHARS = 6  # shorter labels are noise: a bar that cannot hold this stays bare


def _stats(xs: list[float]) -> dict:
    if not xs:
        return {"n": 0, "mean": 0.0, "median": 0.0, "max": 0.0}
    return {"n": len(xs), "mean": statistics.fmean(xs), "median": statistics.median(xs),
            "max": max(xs)}


def analyse(run_dir: Path) -> dict:
    """Every number of the report, as plain data (times in seconds from the first start)."""
    with JournalReader(run_dir) as j:
        rows = j.attempts()
        slots = j.slots()
        meta = j.meta()
    now = time.time()
    bars = []
    for a in rows:
        start, queued = a["start"], a["queued"]
        end = a["end"] if a["end"] is not None else now
        kind = "retry_ok" if a["outcome"] == "ok" and a["attempt"] > 1 else a["outcome"]
        bars.append({"task": a["task"], "attempt": a["attempt"], "host": a["host"],
                     "slot": a["slot"], "t0": start, "t1": end,
                     "seconds": max(0.0, end - start), "outcome": a["outcome"], "colour": kind,
                     "reason": a["reason"], "maxrss_kb": a["maxrss_kb"], "weight": a["weight"],
                     "command": short_command(a["command"]),
                     "queue_wait": max(0.0, start - queued) if queued else None})
    t0 = min((b["t0"] for b in bars), default=0.0)
    for b in bars:
        b["start"], b["end"] = b["t0"] - t0, b["t1"] - t0
    makespan = max((b["end"] for b in bars), default=0.0)
    hosts = {}
    for b in bars:
        hosts.setdefault(b["host"], []).append(b)
    utilisation = {}
    for host, bs in sorted(hosts.items()):
        n_slots = slots.get(host) or (max(b["slot"] for b in bs) + 1)
        busy = sum(b["seconds"] for b in bs)
        utilisation[host] = {"slots": n_slots, "busy_seconds": busy, "attempts": len(bs),
                             "utilisation": busy / (n_slots * makespan) if makespan else 0.0}
    total_slots = sum(u["slots"] for u in utilisation.values())
    work = sum(b["seconds"] for b in bars)
    ok = [b for b in bars if b["outcome"] == "ok"]
    slowest = sorted(ok, key=lambda b: -b["seconds"])[:TOP]
    retried: dict[str, list] = {}
    for b in bars:
        retried.setdefault(b["task"], []).append(b)
    retries = [{"task": t, "command": bs[0]["command"],
                "attempts": [(b["attempt"], b["host"], b["outcome"], b["reason"]) for b in bs]}
               for t, bs in retried.items() if len(bs) > 1]
    return {
        "run": str(run_dir), "name": meta.get("name"), "makespan": makespan,
        "attempts": len(bars), "work_seconds": work, "slots": total_slots,
        "utilisation": work / (total_slots * makespan) if makespan and total_slots else 0.0,
        "hosts": utilisation,
        "slowest": [_brief(b) for b in slowest],
        "retries": retries[:TOP], "retried_tasks": len(retries),
        "critical_path": critical_path(bars, total_slots),
        "queue_wait": _stats([b["queue_wait"] for b in bars if b["queue_wait"] is not None]),
        "dispatch_gap": _stats(dispatch_gaps(bars)),
        "weight": weight_fit(ok),
        "peak_rss_kb": max((b["maxrss_kb"] or 0 for b in bars), default=0),
        "bars": [{k: b[k] for k in ("task", "attempt", "host", "slot", "start", "end",
                                    "outcome", "colour", "command")} for b in bars],
    }


def _brief(b: dict) -> dict:
    return {"task": b["task"], "command": b["command"], "host": b["host"],
            "seconds": b["seconds"], "weight": b["weight"], "maxrss_kb": b["maxrss_kb"]}


def critical_path(bars: list[dict], slots: int) -> dict:
    """What the run's length is made of: the chain of attempts on the slot that ended last.

    Tasks are independent, so the makespan is set by the last slot to finish: walking back
    along that slot, each attempt and each idle gap before it adds up to the run's length.
    Lower bounds show how far from ideal it is: the longest single attempt, and all work
    divided over all slots.
    """
    if not bars:
        return {"chain": [], "busy": 0.0, "idle": 0.0, "longest_task": 0.0, "ideal": 0.0}
    last = max(bars, key=lambda b: b["end"])
    lane = sorted((b for b in bars if (b["host"], b["slot"]) == (last["host"], last["slot"])
                   and b["end"] <= last["end"]), key=lambda b: b["start"])
    busy = sum(b["seconds"] for b in lane)
    return {
        "host": last["host"], "slot": last["slot"],
        "chain": [(b["task"], b["attempt"], round(b["seconds"], 3)) for b in lane],
        "busy": busy, "idle": max(0.0, last["end"] - busy),
        "longest_task": max(b["seconds"] for b in bars),
        "ideal": sum(b["seconds"] for b in bars) / max(1, slots),
    }


def dispatch_gaps(bars: list[dict]) -> list[float]:
    """Idle time between consecutive attempts on one slot: the scheduler's own overhead."""
    lanes: dict[tuple, list] = {}
    for b in bars:
        lanes.setdefault((b["host"], b["slot"]), []).append(b)
    gaps = []
    for lane in lanes.values():
        lane.sort(key=lambda b: b["start"])
        gaps += [max(0.0, b["start"] - a["end"]) for a, b in zip(lane, lane[1:])]
    return gaps


def weight_fit(ok: list[dict]) -> dict:
    """Seconds per unit weight (least squares through the origin) and how well it predicts."""
    pts = [(b["weight"], b["seconds"]) for b in ok if b["weight"]]
    if not pts:
        return {"seconds_per_weight": None, "points": []}
    sw = sum(w * w for w, _ in pts)
    k = sum(w * s for w, s in pts) / sw if sw else 0.0
    ratios = [s / (k * w) for w, s in pts if k and w]
    return {"seconds_per_weight": k, "worst_ratio": max(ratios, default=None),
            "best_ratio": min(ratios, default=None),
            "points": [(round(w, 4), round(s, 4)) for w, s in pts]}


def render(r: dict) -> str:
    """The report as Markdown (also what ``parallel report`` prints)."""
    cp = r["critical_path"]
    q, g = r["queue_wait"], r["dispatch_gap"]
    lines = [f"# Run report: {r['name']}", "",
             f"- makespan {r['makespan']:.2f} s, {r['attempts']} attempt(s), "
             f"{r['work_seconds']:.2f} s of task time over {r['slots']} slot(s): "
             f"utilisation {100 * r['utilisation']:.1f}%",
             f"- critical path: {cp.get('host')} slot {cp.get('slot')}, "
             f"{len(cp['chain'])} attempt(s), {cp['busy']:.2f} s busy + {cp['idle']:.2f} s idle; "
             f"bounds: longest task {cp['longest_task']:.2f} s, work/slots {cp['ideal']:.2f} s",
             f"- queue wait: mean {q['mean']:.2f} s, median {q['median']:.2f} s, "
             f"max {q['max']:.2f} s",
             f"- dispatch gap (slot idle between tasks): median {1000 * g['median']:.1f} ms, "
             f"max {1000 * g['max']:.1f} ms over {g['n']} gap(s)",
             f"- retried tasks: {r['retried_tasks']}; peak task memory "
             f"{r['peak_rss_kb'] / 1024:.1f} MiB"]
    w = r["weight"]
    if w.get("seconds_per_weight"):
        lines.append(f"- duration vs weight: {w['seconds_per_weight']:.4g} s per unit weight; "
                     f"actual/predicted from {w['best_ratio']:.2f} to {w['worst_ratio']:.2f}")
    lines += ["", "| host | slots | attempts | busy s | utilisation |", "|---|---|---|---|---|"]
    for host, u in r["hosts"].items():
        lines.append(f"| {host} | {u['slots']} | {u['attempts']} | {u['busy_seconds']:.2f} | "
                     f"{100 * u['utilisation']:.1f}% |")
    lines += ["", "Slowest tasks:", "",
              "| task | command | host | seconds | weight | peak MiB |",
              "|---|---|---|---|---|---|"]
    for s in r["slowest"]:
        cmd = s["command"].replace("|", "\\|")  # a pipe would split the Markdown cell
        lines.append(f"| {s['task']} | `{cmd}` | {s['host']} | {s['seconds']:.2f} | "
                     f"{s['weight']:g} | {(s['maxrss_kb'] or 0) / 1024:.1f} |")
    if r["retries"]:
        lines += ["", "Retries:"]
        for t in r["retries"]:
            tries = "; ".join(f"#{a} {h} {o}" + (f" ({why})" if why else "")
                              for a, h, o, why in t["attempts"])
            lines.append(f"- {t['task']} (`{t['command']}`): {tries}")
    return "\n".join(lines) + "\n"


def bar_label(b: dict, fits: int) -> str:
    """A timeline bar's text: the task id, or its command when the id is a bare hash (a task
    list's), cut to ``fits`` characters; empty when fewer than LABEL_MIN_CHARS fit."""
    if fits < LABEL_MIN_CHARS:
        return ""
    tid = b["task"].split("-")[0]
    hashed = len(tid) == 12 and all(c in "0123456789abcdef" for c in tid)
    text = (b.get("command") or b["task"]) if hashed else b["task"]
    if b.get("attempt", 1) > 1:
        text = f"{text} #{b['attempt']}"
    return text if len(text) <= fits else text[:fits - 1] + "\u2026"


def plot(r: dict, path: Path) -> Path:
    """Timeline (one row per host slot, one bar per attempt) over duration-vs-weight."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    lanes = sorted({(b["host"], b["slot"]) for b in r["bars"]})
    row = {lane: i for i, lane in enumerate(lanes)}
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(11, 3 + 0.3 * len(lanes) + 3),
                                  gridspec_kw={"height_ratios": [max(2, len(lanes)), 6]})
    fig_w = fig.get_size_inches()[0]
    span = max(r["makespan"], 1e-3)
    for b in r["bars"]:
        width = max(b["end"] - b["start"], 1e-3)
        y = row[(b["host"], b["slot"])]
        ax.barh(y, width, left=b["start"], height=0.8,
                color=COLOURS.get(b["colour"], "#17becf"), edgecolor="white", linewidth=0.5)
        # Name the task on bars long enough to hold a few characters (about 0.85 of the
        # figure's width is the axes; a 7-point character is ~0.06 in wide).
        fits = int(width / span * 0.85 * fig_w / LABEL_CHAR_IN)
        label = bar_label(b, fits)
        if label:
            ax.text(b["start"] + width / 2, y, label, ha="center", va="center", fontsize=7,
                    color="white", clip_on=True)
    ax.set_yticks(range(len(lanes)), [f"{h} #{s}" for h, s in lanes], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the first task started")
    ax.set_title(f"{r['name']}: {r['attempts']} attempts, makespan {r['makespan']:.1f} s, "
                 f"utilisation {100 * r['utilisation']:.0f}%")
    used = sorted({b["colour"] for b in r["bars"]})
    ax.legend(handles=[Patch(color=COLOURS.get(c, "#17becf"), label=c) for c in used],
              loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7, borderaxespad=0)
    # (outside the axes: inside, it hides the last bars, which are the ones that matter)
    pts = r["weight"]["points"]
    if pts:
        ax2.scatter([w for w, _ in pts], [s for _, s in pts], s=12)
        k = r["weight"]["seconds_per_weight"]
        top = max(w for w, _ in pts)
        ax2.plot([0, top], [0, k * top], color="grey", linestyle="--",
                 label=f"{k:.3g} s per unit weight")
        ax2.legend(fontsize=7)
    ax2.set_xlabel("task weight")
    ax2.set_ylabel("duration (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(run_dir: Path) -> tuple[dict, Path]:
    """Write ``report/{timeline.png, summary.md, report.json}``; return the data and the dir."""
    r = analyse(run_dir)
    out = Path(run_dir) / "report"
    out.mkdir(exist_ok=True)
    plot(r, out / "timeline.png")
    (out / "summary.md").write_text(render(r))
    (out / "report.json").write_text(json.dumps(r, indent=1, default=str))
    return r, out
