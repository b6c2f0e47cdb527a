"""Plan ``busy`` tasks: N tasks of a given duration, burning CPU or sleeping."""

from __future__ import annotations

import argparse
import json
import math
import random
import shlex

from lasair_parallel.tasks import Task, split
from lasair_parallel.tasks.app import PlanContext
from lasair_parallel.tasks.model import python_command, run_path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="parallel run apps/busy --",
        description="A test load: N tasks that burn CPU or sleep for a set time.",
    )
    p.add_argument("--count", type=int, default=16, help="number of tasks (default 16)")
    p.add_argument("--seconds", type=float, default=1.0, help="duration of each task (default 1)")
    p.add_argument(
        "--mode", choices=("cpu", "sleep"), default="cpu",
        help="cpu: spin a core for the duration; sleep: idle (shows scheduler overhead)",
    )
    p.add_argument("--fail-every", type=int, default=0,
                   help="make every k-th task exit 1 (to exercise retries); 0 = never")
    p.add_argument("--outputs", action="store_true",
                   help="each task writes out/busy-<i>.txt under the run directory")
    p.add_argument("--mem-mb", type=int, default=0,
                   help="each task also holds this many MiB of touched memory (peak-memory tests)")
    p.add_argument("--vary", type=float, default=0.0,
                   help="spread durations: task i runs seconds x (1 + vary x f_i), f_i in "
                        "[-1, 1] (a fixed pattern), with weight = its duration; 0 = all equal")
    p.add_argument("--pareto", type=float, default=0.0, metavar="ALPHA",
                   help="heavy-tailed durations: task i runs seconds x a Pareto(ALPHA) draw "
                        "(seconds is the shortest; fixed by --seed); 0 = off")
    p.add_argument("--seed", type=int, default=1, help="seed of --pareto and --weight-noise")
    p.add_argument("--weight-noise", type=float, default=0.0, metavar="SIGMA",
                   help="weights that misjudge durations: weight = duration x a log-normal "
                        "draw of this sigma (the planner's estimate, not the truth); 0 = exact")
    p.add_argument("--split-above", type=float, default=None, metavar="S",
                   help="a task planned longer than S seconds hands back subtasks of at most "
                        "S seconds (spawn) and runs the remainder itself")
    p.add_argument("--gather", action="store_true",
                   help="one more task, after all the others, writing out/gather.txt: the "
                        "number of outputs (out/busy-*.txt) it found")
    p.add_argument("--fail-attempts", type=int, default=0, metavar="N",
                   help="a splitting task's first N attempts fail after spawning (their "
                        "spawns are discarded); 0 = never")
    p.add_argument("--slow-host", metavar="ADDR",
                   help="sleep tasks run --slow-factor times longer on the worker reached at "
                        "this address (a deliberately slow host, for backup tasks)")
    p.add_argument("--slow-factor", type=float, default=4.0, help="see --slow-host (default 4)")
    p.add_argument("--emit-rows", type=int, default=0,
                   help="each task streams this many rows to the head (stream/busy-<i>.csv)")
    p.add_argument("--emit-to-file", action="store_true",
                   help="with --emit-rows: write the rows to a declared output file instead "
                        "(copied back from workers without a shared filesystem), for comparison")
    p.add_argument("--task-cores", type=int, default=None,
                   help="cores each task needs: it takes that many slots of a worker "
                        "(and a Slurm step of that many CPUs)")
    p.add_argument("--task-memory-mb", type=int, default=None,
                   help="memory each task needs (a Slurm step's --mem, enforced there)")
    return p


def duration(args: argparse.Namespace, i: int) -> float:
    """Task ``i``'s duration: a fixed, deterministic spread so reruns plan the same tasks."""
    if getattr(args, "pareto", 0):
        return heavy_tail(args.seconds, args.pareto, args.seed, i)
    if not args.vary or args.count < 2:
        return args.seconds
    f = 2.0 * ((i * 7919) % args.count) / (args.count - 1) - 1.0
    return max(0.0, round(args.seconds * (1.0 + args.vary * f), 3))


def plan(args: argparse.Namespace, ctx: PlanContext) -> list[Task]:
    if args.count < 0 or args.seconds < 0 or args.mem_mb < 0:
        raise ValueError("--count, --seconds and --mem-mb must be >= 0")
    # float() reads "nan" and "inf": neither is a duration (nan even passes the check above).
    if not math.isfinite(args.seconds):
        raise ValueError(f"--seconds {args.seconds}: give a number of seconds, 0 or more")
    if not 0 <= args.vary <= 1:
        raise ValueError("--vary must be between 0 and 1")
    tasks = []
    for i in range(args.count):
        seconds = duration(args, i)
        argv = ["--index", str(i), "--seconds", str(seconds), "--mode", args.mode]
        if args.mem_mb:
            argv += ["--mem-mb", str(args.mem_mb)]
        if args.fail_every and (i + 1) % args.fail_every == 0:
            argv += ["--fail"]
        outputs: tuple[str, ...] = ()
        if args.outputs:
            out = ctx.run_dir / "out" / f"busy-{i:05d}.txt"
            argv += ["--output", str(out)]
            outputs = (str(out),)
        stream = None
        if args.emit_rows:
            argv += ["--emit-rows", str(args.emit_rows)]
            if args.emit_to_file:
                out = ctx.run_dir / "stream" / f"busy-{i:05d}.csv"
                argv += ["--emit-file", str(out)]
                outputs += (str(out),)
            else:
                stream = f"stream/busy-{i:05d}.csv"
        shell = args.mode == "sleep" and not args.mem_mb and not args.emit_rows
        slow = (args.slow_host, args.slow_factor) if args.slow_host else None
        if shell:
            command = shell_sleep(i, seconds, [run_path(o, ctx.run_dir) for o in outputs],
                                  fail="--fail" in argv, slow=slow)
        else:
            command = ctx.command(argv)
        if (split := _split_seconds(args, ctx, seconds)) and shell and not args.fail_every:
            # A plain shell sleep spawns its pieces itself: no interpreter start-up (~0.2 s of
            # CPU here, which 32 parents starting at once on a 2-core head pay in makespan).
            command = shell_split(i, seconds, split, ctx.run_dir, args.outputs,
                                  args.fail_attempts, slow)
        elif split:
            command = ctx.command([*argv, "--split-above", repr(split),
                                   "--fail-attempts", str(args.fail_attempts)])
        tasks.append(Task(id=f"busy-{i:05d}", command=command,
                          weight=planned_weight(args, i, seconds), outputs=outputs,
                          stream=stream, inputs=ctx.code_files,
                          cores=args.task_cores, memory_mb=args.task_memory_mb))
    if args.gather:
        tasks.append(gather_task(ctx, tasks))
    return tasks


def shell_sleep(i: int, seconds: float, outputs: list[str], fail: bool,
                slow: tuple[str, float] | None = None) -> str:
    """A sleep task as plain shell: no interpreter start-up (~0.1 s of CPU per task), so a
    sweep on a 2-core machine measures the scheduler, not Python starting 32 times at once.
    Same output file, stdout line and exit status as ``lasair_parallel.apps.busy.task``.
    ``slow = (address, factor)``: on the worker reached at that address, sleep factor x longer
    (a deliberately slow host, seen in $SSH_CONNECTION: "client port server port")."""
    cmd = f"sleep {seconds}"
    if slow:
        cmd = (f'case "$SSH_CONNECTION" in *" {slow[0]} "*) sleep {round(seconds * slow[1], 3)};; '
               f"*) sleep {seconds};; esac")
    for q in outputs:  # shell words naming the files (tasks.model.run_path): no rewriting
        cmd += (f' && mkdir -p "$(dirname {q})"'
                f" && echo 'busy {i} {float(seconds)} sleep' > {q}.tmp$$ && mv {q}.tmp$$ {q}")
    cmd += f' && echo "busy task {i} done on $(hostname) pid $$"'
    if fail:
        cmd += f" && echo 'busy task {i}: failing on purpose (--fail-every)' >&2 && exit 1"
    return cmd


def heavy_tail(shortest: float, alpha: float, seed: int, i: int) -> float:
    """A Pareto(alpha) duration of at least ``shortest`` seconds for task ``i``, the same on
    every run (one generator per task, seeded by the seed and the index)."""
    u = random.Random(seed * 1_000_003 + i).random()
    return round(shortest / (1.0 - u) ** (1.0 / alpha), 3)


def planned_weight(args: argparse.Namespace, i: int, seconds: float) -> float:
    """The planner's estimate: the duration itself, or (--weight-noise) one that misjudges
    it by a log-normal factor, as real weights (object counts, pixels) do."""
    if not args.weight_noise:
        return seconds
    g = random.Random(args.seed * 7_000_003 + i).gauss(0.0, args.weight_noise)
    return round(max(seconds, 1e-3) * math.exp(g), 4)


def _split_seconds(args: argparse.Namespace, ctx: PlanContext, seconds: float) -> float | None:
    """The piece size for task ``i``, when it is to split itself: --split-above, else the
    runner's --task-seconds (PlanContext.task_seconds)."""
    s = args.split_above or ctx.task_seconds
    if args.split_above is not None and not args.split_above > 0:
        raise ValueError(f"--split-above {args.split_above}: give seconds above 0")
    return s if s and seconds > s else None


def gather_task(ctx: PlanContext, tasks: list[Task]) -> Task:
    """``busy-gather``: after every other task, count the outputs it finds (they are its
    inputs, so a worker without the head's files is sent them first)."""
    out_dir = ctx.run_dir / "out"
    outputs = [o for t in tasks for o in t.outputs]
    module = ctx.task_module.rpartition(".")[0] + ".gather" if "." in ctx.task_module else "gather"
    cmd = python_command(module, ["--dir", str(out_dir), "--out", str(out_dir / "gather.txt")],
                         path=ctx.code_path)
    return Task(id="busy-gather", command=cmd, weight=0.0, outputs=(str(out_dir / "gather.txt"),),
                inputs=tuple(ctx.code_files) + tuple(outputs), after=tuple(t.id for t in tasks))


def shell_split(i: int, seconds: float, piece: float, run_dir, outputs: bool,
                fail_attempts: int, slow: tuple[str, float] | None = None) -> str:
    """A shell sleep task that spawns its pieces (one Task JSON per line on
    $PARALLEL_SPAWN_FD, the protocol any program may speak) and sleeps the remainder."""
    n, rest = split.cut(seconds, piece)  # n - 1 spawned, the remainder runs here
    lines = []
    for k in range(1, n):
        out = [run_dir / "out" / f"busy-{i:05d}-p{k:03d}.txt"] if outputs else []
        t = Task(id=f"busy-{i:05d}-p{k:03d}", weight=piece, outputs=tuple(map(str, out)),
                 command=shell_sleep(i, piece, [run_path(o, run_dir) for o in out], False,
                                     slow))
        lines.append(shlex.quote(json.dumps(t.to_json(), separators=(",", ":"))))
    cmd = f"printf '%s\\n' {' '.join(lines)} >/dev/fd/$PARALLEL_SPAWN_FD && " if lines else ""
    if fail_attempts:
        cmd += (f'{{ [ "$PARALLEL_ATTEMPT" -gt {fail_attempts} ] || {{ echo "busy task {i}: '
                f'attempt $PARALLEL_ATTEMPT fails after spawning (--fail-attempts)" >&2; '
                "exit 1; }; } && ")
    mine = [run_path(run_dir / "out" / f"busy-{i:05d}.txt", run_dir)] if outputs else []
    return cmd + shell_sleep(i, rest, mine, False, slow)
