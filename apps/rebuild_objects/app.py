"""Plan a rebuild of Lasair's object features: blocks of objects balanced by detection count."""

from __future__ import annotations

import argparse
import hashlib
import re

from lasair_parallel.apps.rebuild_objects import TASK_ENV
from lasair_parallel.apps.rebuild_objects.lazynp import np
from lasair_parallel.tasks import Task, python_command
from lasair_parallel.tasks.app import PlanContext
from lasair_parallel.tasks.outputs import atomic_write
from lasair_parallel.tasks.weights import split_by_weight, target_block_weight

# Detections per second of one process, end to end (read + features + shard), measured by
# benchmarks/rebuild_objects.py on the SQLite source (see benchmarks/README.md):
# 1.28M detections of 128,000 objects in 5.7-7.0 s (~185,000-225,000/s) on a loaded 2-core
# machine; the lower end is used.  Only sizes tasks and estimates.
DETECTIONS_PER_SECOND = 185_000.0
MAX_TASK_SECONDS = 300.0  # a straggler or a retry costs at most this much
SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="parallel run apps/rebuild_objects --",
        description="Recompute Lasair's ZTF object features (one CSV shard per task, under "
                    "<run dir>/shards/, loadable with csv_to_database --table objects).")
    p.add_argument("--source", default="sample",
                   help="sample (bundled real ZTF data, default), csv:PATH, synthetic:N[:SEED], "
                        "sqlite:///path.db, mysql://user@host:port/db (password from MYSQL_PWD "
                        "or ~/.my.cnf on the workers), cassandra://host[,host]:port/keyspace; "
                        "add ?table=NAME for a table other than candidates")
    p.add_argument("--window-days", type=float, default=0.0,
                   help="keep only detections with jd > jdmax - D per object (the seed's "
                        "30-day rule, matching real-time alerts); default 0 = the whole light "
                        "curve, what Lasair's code does now, so a rebuild loses no history")
    p.add_argument("--task-seconds", type=float, default=None,
                   help="target duration of one task; default: the work split into 2 blocks "
                        f"per slot, each at most {MAX_TASK_SECONDS:g} s at --rate")
    p.add_argument("--rate", type=float, default=DETECTIONS_PER_SECOND,
                   help="detections per second of one process, for sizing tasks "
                        f"(default {DETECTIONS_PER_SECOND:g}, measured by "
                        "benchmarks/rebuild_objects.py)")
    p.add_argument("--load-to", metavar="DB", default=None,
                   help="end with one more journaled task, after every block (and the pieces "
                        "they split into), that loads the shards into DB with csv_to_database "
                        "(sqlite:///file.db or mysql://user@host:port/db; the table is created "
                        "if missing; password from MYSQL_PWD or ~/.my.cnf on that worker)")
    p.add_argument("--load-table", default="objects", metavar="TABLE",
                   help="the table --load-to fills (default objects)")
    p.add_argument("--stream", action="store_true",
                   help="send each shard's rows to the head over the runner's channel instead "
                        "of writing the file on the worker (same shard, no shared filesystem "
                        "or copy-back needed)")
    return p


def block_weight(total: float, slots: int, rate: float, task_seconds: float | None,
                 per_slot: int = 2) -> float:
    """Detections per task: from --task-seconds, else ``per_slot`` blocks per slot (2, or 1
    when every block's read scans the whole table), capped in duration.

    No floor: a minimum duration would leave slots idle on a small input (the bundled sample
    planned 1 task for 2 slots); a few seconds of start-up per task is the price of using
    every slot, and --task-seconds sets bigger tasks when that matters.
    """
    if task_seconds is not None:
        if task_seconds <= 0:
            raise ValueError("--task-seconds must be > 0")
        return task_seconds * rate
    w = target_block_weight(total, slots, per_slot)
    return float(min(w, MAX_TASK_SECONDS * rate))


def _task_id(first: str, last: str, tag: str) -> str:
    return f"objects-{SAFE.sub('_', first)}-{SAFE.sub('_', last)}-{tag}"


def _blocks(src, args: argparse.Namespace, ctx: PlanContext
            ) -> list[tuple[str, str, float, np.ndarray | tuple[()]]]:
    """(first objectId, last objectId, weight, the block's objectIds) per block, heaviest
    first; the weight is the block's detections, or its rows in the index where it is cut
    from the index.

    A table not stored by object is read by a scan of the whole table for every block: one
    block per slot then, as a second costs a process start and another scan (~0.2 s + 0.3-0.6 s
    of the 1.28M-row benchmark table, benchmarks/rebuild_live.py); such a SQLite table is cut
    from its index without listing its objects (``SqlSource.scanned_blocks``; a block's names
    are then not known, nor needed: its range is).
    """
    scanned = getattr(src, "scanned_blocks", None)
    cut = scanned(lambda total: block_weight(float(total), ctx.slots, args.rate,
                                             args.task_seconds, per_slot=1)) if scanned else None
    if cut is not None:
        return [(b.first, b.last, float(b.rows), ()) for b in cut]  # names: not needed
    ids, counts = src.list_objects()
    if len(ids) == 0:
        return []
    per_slot = 1 if getattr(src, "scans_blocks", False) else 2
    # Sources that cannot tell detection counts cheaply (Cassandra) report 0: weigh 1 then.
    weights = np.where(counts > 0, counts, 1).astype(float)
    max_w = block_weight(float(weights.sum()), ctx.slots, args.rate, args.task_seconds,
                         per_slot)
    if args.task_seconds is None and per_slot == 1:  # slack of one object: one block per
        # slot, not one plus a remainder of a few objects (a process start and a whole-table
        # scan for 4 objects); where blocks are read by seeks a small remainder is cheap
        max_w = min(max_w + float(weights.max()), MAX_TASK_SECONDS * args.rate)
    return [(str(ids[b[0]]), str(ids[b[-1]]), float(weights[b].sum()), ids[b])
            for b in split_by_weight(weights, max_w)]


def plan(args: argparse.Namespace, ctx: PlanContext) -> list[Task]:
    """One task per block of objects; ids derive from the block's first/last objectId."""
    from lasair_parallel.apps.rebuild_objects.sources import open_source

    if args.window_days < 0:
        raise ValueError("--window-days must be >= 0")
    if args.rate <= 0:
        raise ValueError("--rate must be > 0")
    if args.load_to is not None:
        if args.stream:
            raise ValueError("--load-to reads the shard files; with --stream use the runner's "
                             "--stream-to DB --stream-table objects instead")
        if not args.load_to.startswith(("sqlite:///", "mysql://")):
            raise ValueError(f"--load-to {args.load_to}: give sqlite:///file.db or "
                             "mysql://user@host:port/db")
    src = open_source(args.source)
    try:
        blocks = _blocks(src, args, ctx)
        ranges = src.ranges
    finally:
        src.close()
    # Tag: the same blocks over another source or window are other tasks (and other shards).
    tag = hashlib.sha1(f"{args.source}|{args.window_days!r}".encode()).hexdigest()[:8]
    shards = ctx.run_dir / "shards"
    tasks = []
    for first, last, w, names in blocks:
        tid = _task_id(first, last, tag)
        out = shards / f"{tid}.csv"
        argv = ["--source", args.source, "--window-days", repr(args.window_days)]
        argv += ["--stream"] if args.stream else ["--output", str(out)]
        inputs: tuple[str, ...] = ()
        if ranges:
            argv += ["--first", first, "--last", last]
        else:
            block_file = ctx.run_dir / "blocks" / f"{tid}.txt"
            with atomic_write(block_file) as f:
                f.write("".join(f"{i}\n" for i in names))
            argv += ["--objects-file", str(block_file)]
            inputs = (str(block_file),)  # sent to workers without the head's filesystem
        tasks.append(ctx.task(tid, argv, weight=w, inputs=inputs,
                              outputs=() if args.stream else (str(out),),
                              stream=f"shards/{tid}.csv" if args.stream else None,
                              timeout=max(60.0, 10.0 * w / args.rate), env=TASK_ENV))
    if args.load_to is not None and tasks:
        tasks.append(_load_task(args, tasks, shards, tag))
    return tasks


def _load_task(args: argparse.Namespace, blocks: list[Task], shards, tag: str) -> Task:
    """csv_to_database over the shard folder, after every block: its shards (and those of
    the pieces the blocks spawn, see head.core.dynamic) are its inputs, staged like any
    other task's, and the loader's ledger makes a rerun load each shard once."""
    cmd = python_command("lasair_parallel.csv_to_database.cli",
                         [str(shards), "--db", args.load_to, "--table", args.load_table,
                          "--create", "-q"])
    return Task(id=f"rebuild-load-{tag}", command=cmd, weight=0.0,
                inputs=tuple(o for t in blocks for o in t.outputs),
                after=tuple(t.id for t in blocks))


def describe(args: argparse.Namespace, ctx: PlanContext, tasks: list[Task]) -> str:
    """Objects, detections and the time estimate, printed before the run."""
    total = sum(t.weight for t in tasks)
    heaviest = max((t.weight for t in tasks), default=0)
    work = total / args.rate
    # Weights count light-curve rows: detections, or every row of the objectId index where
    # a table read by scans is cut from it (sources.sqlite_blocks, sources.mysql_blocks).
    return (f"rebuild_objects: {len(tasks)} tasks, {total:.0f} rows (heaviest task "
            f"{heaviest:.0f}); ~{work:.1f} s of work at {args.rate:g} rows/s per process, "
            f"~{max(work / max(ctx.slots, 1), heaviest / args.rate):.1f} s on {ctx.slots} slots")
