"""Rebuild the features of one block of objects into one CSV shard.

``python -m lasair_parallel.apps.rebuild_objects.task --source SPEC --first ID --last ID --output SHARD.csv``
(or ``--objects-file BLOCK.txt``, one objectId a line).  The shard is written atomically; a rerun
rewrites the identical file.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import sys
import time
from pathlib import Path

from lasair_parallel.apps.rebuild_objects import forked
from lasair_parallel.apps.rebuild_objects.features import compute_features
from lasair_parallel.apps.rebuild_objects.shard import shard_chunks
from lasair_parallel.apps.rebuild_objects.sources import open_source
from lasair_parallel.apps.rebuild_objects.sources.base import (
    Detections,
    objects_slice,
    two_threads,
)
from lasair_parallel.apps.rebuild_objects.splitting import split_range
from lasair_parallel.tasks.emit import emitter
from lasair_parallel.tasks.finish import exit_task
from lasair_parallel.tasks.outputs import atomic_write


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lasair_parallel.apps.rebuild_objects.task")
    p.add_argument("--source", default="sample", help="source spec (see the app's --help)")
    p.add_argument("--first", help="first objectId of the block (listing order)")
    p.add_argument("--last", help="last objectId of the block (inclusive)")
    p.add_argument("--objects-file", help="file with the block's objectIds, one a line")
    p.add_argument("--window-days", type=float, default=0.0)
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--output", help="CSV shard to write")
    out.add_argument("--stream", action="store_true",
                     help="send the shard's rows to the head (tasks.emit) instead")
    return p


def run(source: str, output: str | Path | None, first: str | None = None, last: str | None = None,
        objects_file: str | None = None, window_days: float = 0.0) -> dict:
    """Read the block, compute its features, write the shard; returns counts and timings.

    ``output`` None streams the shard to the head (``lasair_parallel.tasks.emit``) instead of a file.
    """
    t0 = time.perf_counter()
    src = open_source(source)
    try:
        if objects_file:
            ids = [s for s in Path(objects_file).read_text().split("\n") if s]
            det = src.read_ids(ids)
        elif first is not None and last is not None:
            # Predicted over the wanted length: the rest of the range goes to spawned tasks.
            last = split_range(src, source, first, last, None if output is None else str(output),
                               window_days)
            det = src.read_range(first, last)
        else:
            raise ValueError("give --first and --last, or --objects-file")
    finally:
        src.close()
    t1 = time.perf_counter()
    n, pieces = shard_pieces(det, window_days)
    t2 = time.perf_counter()
    if output is None:
        stream_shard(pieces)
    else:
        with atomic_write(output, "wb") as f:
            f.writelines(pieces)
    t3 = time.perf_counter()
    return {"objects": len(det.ids), "rows": n, "detections": det.n_rows,
            "read_s": t1 - t0, "features_s": t2 - t1, "write_s": t3 - t2, "total_s": t3 - t0}


def shard_pieces(det: Detections, window_days: float = 0.0
                 ) -> tuple[int, list[bytes | memoryview]]:
    """The block's shard (rows, CSV text in pieces: ``shard.shard_chunks``): its features and
    their text, the second half of its objects' in a forked child (``forked``: the text is made
    under the GIL, so threads do not help) when it has base.THREADED_ROWS detections or more.
    Each object's features depend on its own rows only, so the halves' pieces joined (one
    header) are the whole block's, byte for byte (tests/test_rebuild_app.py)."""
    if len(det.ids) < 2 or not two_threads(det.n_rows):
        return len(det.ids), _chunks(det, window_days)
    mid = len(det.ids) // 2
    second = objects_slice(det, mid, len(det.ids))
    # started first, so the child works while this process makes the first half
    wait = forked.start(lambda: _chunks(second, window_days)[1:])  # without its header
    try:
        first = _chunks(objects_slice(det, 0, mid), window_days)
    except BaseException:
        with contextlib.suppress(Exception):  # reap the child; this failure is the one told
            wait()
        raise
    return len(det.ids), [*first, *wait()]


def _chunks(det: Detections, window_days: float) -> list[bytes]:
    """The block's features as shard text, in pieces."""
    return shard_chunks(compute_features(det, window_days)[1])


def stream_shard(pieces: list[bytes | memoryview]) -> None:
    """Send exactly the bytes the shard file would hold, through the head's stream."""
    e = emitter()
    if e is None:
        raise ValueError("--stream needs the runner's stream: run through `parallel run`")
    for piece in pieces:  # each ends with a newline: whole records
        e.lines(str(piece, "utf-8"))  # bytes, or the forked half's memoryview
    e.close()


def peak_mb() -> float:
    """This process's peak resident memory, MB.  Linux: VmHWM of /proc/self/status (ru_maxrss
    carries a forking parent's peak over into the child, even across exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        r = run(a.source, None if a.stream else a.output, a.first, a.last, a.objects_file,
                a.window_days)
    except (ValueError, FileNotFoundError) as e:
        print(f"rebuild_objects: {e}", file=sys.stderr)
        return 2
    peak = peak_mb()
    print(f"rebuild_objects: {r['rows']} rows ({r['objects']} objects, {r['detections']} "
          f"detections) -> {a.output or 'stream'} in {r['total_s']:.2f} s (read {r['read_s']:.2f}, "
          f"features+csv {r['features_s']:.2f}, write {r['write_s']:.2f}); peak {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    exit_task(main())
