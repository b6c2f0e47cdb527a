"""Run one busy task on a worker: ``python -m lasair_parallel.apps.busy.task --index I --seconds S``."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time

from lasair_parallel.tasks import Task, python_command
from lasair_parallel.tasks.emit import emitter, head_path, spawn
from lasair_parallel.tasks.finish import exit_task
from lasair_parallel.tasks.model import run_path
from lasair_parallel.tasks.outputs import atomic_write
from lasair_parallel.tasks.protocol import ENV_ATTEMPT, ENV_RUN_DIR, ENV_TASK_ID
from lasair_parallel.tasks.split import cut


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lasair_parallel.apps.busy.task")
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--mode", choices=("cpu", "sleep"), default="cpu")
    p.add_argument("--fail", action="store_true")
    p.add_argument("--output")
    p.add_argument("--mem-mb", type=int, default=0)
    p.add_argument("--emit-rows", type=int, default=0)
    p.add_argument("--emit-file")
    p.add_argument("--split-above", type=float, default=None,
                   help="spawn pieces of at most S seconds, run the remainder here")
    p.add_argument("--fail-attempts", type=int, default=0,
                   help="fail (after spawning) while $PARALLEL_ATTEMPT <= N")
    a = p.parse_args(argv)
    if a.split_above:
        a.seconds = split(a)
        attempt = int(os.environ.get(ENV_ATTEMPT) or 1)
        if attempt <= a.fail_attempts:
            print(f"busy task {a.index}: attempt {attempt} fails after spawning "
                  "(--fail-attempts)", file=sys.stderr)
            return 1
    # Touch every page so the memory is resident (counted in the task's peak RSS).
    held = bytearray(a.mem_mb << 20)
    for off in range(0, len(held), 4096):
        held[off] = 1
    if a.mode == "sleep":
        time.sleep(a.seconds)
    else:
        # CPU time, not wall time: a fixed amount of work, so tasks crowded onto too few
        # cores take longer, as real work does (and a sweep shows the core count's ceiling).
        end = time.process_time() + a.seconds
        n = 0
        while time.process_time() < end:
            n += sum(range(1000))
    if a.output:
        with atomic_write(a.output) as f:
            f.write(f"busy {a.index} {a.seconds} {a.mode}\n")
    if a.emit_rows:
        stream_rows(a.index, a.emit_rows, a.emit_file)
    del held
    print(f"busy task {a.index} done on {socket.gethostname()} pid {os.getpid()}")
    if a.fail:
        print(f"busy task {a.index}: failing on purpose (--fail-every)", file=sys.stderr)
        return 1
    return 0


def split(a: argparse.Namespace) -> float:
    """Hand back all but one piece of at most ``--split-above`` seconds as spawned tasks
    (ids ``<task>-p001``, ...; outputs ``busy-<i>-p001.txt`` beside this task's); return the
    seconds left to run here (the remainder, at most one piece)."""
    from lasair_parallel.apps.busy.app import shell_sleep

    piece = a.split_above
    n, rest = cut(a.seconds, piece)
    if n == 1:
        return a.seconds
    me = os.environ.get(ENV_TASK_ID) or f"busy-{a.index:05d}"
    head_run = head_path(os.environ.get(ENV_RUN_DIR, ""))
    pieces = []
    for k in range(1, n):
        outputs: tuple[str, ...] = ()
        if a.output:
            out = os.path.join(os.path.dirname(head_path(os.path.abspath(a.output))),
                               f"busy-{a.index:05d}-p{k:03d}.txt")
            outputs = (out,)
        if a.mode == "sleep":  # plain shell, as the planner's sleep tasks (no interpreter)
            cmd = shell_sleep(a.index, piece, [run_path(o, head_run) for o in outputs], False)
        else:
            cmd = python_command("lasair_parallel.apps.busy.task",
                                 ["--index", a.index, "--seconds", piece, "--mode", a.mode]
                                 + (["--output", outputs[0]] if outputs else []))
        pieces.append(Task(id=f"{me}-p{k:03d}", command=cmd, weight=piece, outputs=outputs))
    spawn(*pieces)
    return rest


def stream_rows(index: int, n: int, to_file: str | None = None, batch: int = 10_000) -> None:
    """Send ``n`` rows ``index,k,k*k`` to the head in batches, or write them to ``to_file``."""
    if to_file:
        with atomic_write(to_file) as f:
            f.write("task,k,k2\n")
            for start in range(0, n, batch):
                f.write("".join(f"{index},{k},{k * k}\n"
                                for k in range(start, min(n, start + batch))))
        return
    e = emitter()
    if e is None:
        raise SystemExit("--emit-rows needs a stream: run through `parallel run apps/busy`")
    e.lines("task,k,k2\n")
    for start in range(0, n, batch):
        e.lines("".join(f"{index},{k},{k * k}\n" for k in range(start, min(n, start + batch))))
    e.close()


if __name__ == "__main__":
    exit_task(main())
