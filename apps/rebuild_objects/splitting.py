"""Run-time splitting of a rebuild task over an object range (issue 13, measured sizing).

A task whose predicted time (the head's measured seconds per detection x its weight, the
block's detections) is over the wanted task length cuts its range into pieces of about equal
detections, from the source's listing, spawns all but the first as tasks of their own (ids
``<task>.1``, ``<task>.2``, ...; shards ``shards/<task>.<k>.csv`` beside its own) and computes
the first.  A loader over ``shards/`` sees every piece's shard; together they hold exactly the
unsplit shard's rows.
"""

from __future__ import annotations

import os

from lasair_parallel.apps.rebuild_objects import TASK_ENV
from lasair_parallel.tasks import Task, python_command, split
from lasair_parallel.tasks.emit import head_path, sizing, spawn
from lasair_parallel.tasks.protocol import ENV_TASK_ID

MODULE = "lasair_parallel.apps.rebuild_objects.task"


def pieces_of_range(src, first: str, last: str, n: int) -> list[tuple[str, str, float]]:
    """``[(first, last, detections), ...]``: the objects of ``[first, last]`` (the source's
    listing, compared as strings like its range reads) in ``n`` ranges of about equal
    detections."""
    ids, counts = src.list_objects()
    ids = ids.astype(str)
    inside = (ids >= first) & (ids <= last)
    ids, counts = ids[inside], counts[inside]
    order = ids.argsort(kind="stable")
    ids, counts = ids[order], counts[order]
    weights = [float(c) if c > 0 else 1.0 for c in counts]  # as the planner weighs them
    return [(str(ids[a]), str(ids[b - 1]), float(sum(weights[a:b])))
            for a, b in split.weighted_ranges(weights, n)]


def reads_by_scan(src, first: str, last: str) -> bool:
    """Would ``src`` read ``[first, last]`` by scanning its whole table (a table not stored
    by object, sources.arrow_read.choose)?  Then every piece would scan it again: splitting
    multiplies the read, the biggest stage (benchmarks/rebuild_live.py), so it does not
    split."""
    read_mode = getattr(src, "read_mode", None)  # sources without one never scan
    return read_mode is not None and read_mode(first, last) == "scan"


def split_range(src, source: str, first: str, last: str, output: str | None,
                window_days: float) -> str:
    """Spawn the pieces of ``[first, last]`` after the first, when the head asks for more
    than one; return the last objectId this task computes itself."""
    n = split.wanted()
    if n <= 1 or reads_by_scan(src, first, last):
        return last
    parts = pieces_of_range(src, first, last, n)
    if len(parts) <= 1:
        return last
    me = os.environ.get(ENV_TASK_ID) or "rebuild"
    rate = sizing()[0] or 0.0  # seconds per detection, measured (n > 1: the head had one)
    children = []
    for k, (lo, hi, weight) in enumerate(parts[1:], start=1):
        cid = f"{me}.{k}"
        argv = ["--source", source, "--window-days", repr(window_days), "--first", lo,
                "--last", hi]
        outputs: tuple[str, ...] = ()
        stream = None
        if output is None:
            argv.append("--stream")
            stream = f"shards/{cid}.csv"
        else:
            # The head copies outputs back by its own name of the path.
            out = os.path.join(os.path.dirname(head_path(os.path.abspath(output))),
                               f"{cid}.csv")
            argv += ["--output", out]
            outputs = (out,)
        # As the planner's blocks (app.plan): 10x the predicted time, at least a minute.
        children.append(Task(id=cid, command=python_command(MODULE, argv), weight=weight,
                             outputs=outputs, stream=stream,
                             timeout=max(60.0, 10.0 * rate * weight), env=TASK_ENV))
    spawn(*children)
    return parts[0][1]
