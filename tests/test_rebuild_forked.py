"""The forked half of a block's shard text (apps/rebuild_objects/forked.py and
task.shard_pieces): real child processes, its result, its failures, and whole task runs whose
shards, written or streamed, are the one-process text byte for byte."""

from __future__ import annotations

import os
import signal

import pytest
from helpers import parallel
from lasair_parallel.apps.rebuild_objects import forked
from lasair_parallel.apps.rebuild_objects.features import compute_features
from lasair_parallel.apps.rebuild_objects.shard import shard_bytes
from lasair_parallel.apps.rebuild_objects.sources import open_source

pytestmark = pytest.mark.skipif(not forked.can_fork(), reason="forks on Linux only")


def test_a_forked_job_runs_in_another_process_and_returns_its_bytes():
    wait = forked.start(lambda: [str(os.getpid()).encode(), b"x" * 1_000_000, b"x" * 2_000_000])
    out = b"".join(map(bytes, wait()))
    assert out.endswith(b"x" * 3_000_000)
    assert int(out[:-3_000_000]) != os.getpid()


def test_an_empty_result_is_empty():
    assert b"".join(map(bytes, forked.start(lambda: [b""])())) == b""


def test_the_jobs_exception_is_raised_in_the_parent():
    def job() -> list[bytes]:
        raise ValueError("bad row 3 of the block")

    with pytest.raises(ValueError, match="bad row 3 of the block"):
        forked.start(job)()


def test_a_child_killed_before_its_result_is_an_error_not_a_short_shard():
    def job() -> list[bytes]:
        os.kill(os.getpid(), signal.SIGKILL)
        return [b"never"]

    with pytest.raises(RuntimeError, match="without a result"):
        forked.start(job)()


def test_without_fork_the_job_runs_in_this_process(monkeypatch):
    monkeypatch.setattr(forked, "can_fork", lambda: False)
    assert forked.start(lambda: [str(os.getpid()).encode()])() == [str(os.getpid()).encode()]


@pytest.mark.parametrize("stream", [False, True])
def test_a_block_made_in_two_processes_is_the_one_process_shard(tmp_path, stream):
    """6,000 synthetic objects (59,425 detections: over base.THREADED_ROWS, so the task forks)
    as one task through `parallel run`, the shard written on the worker or streamed to the
    head: the bytes of the features computed here in one piece."""
    source = "synthetic:6000"
    src = open_source(source)
    ids, _ = src.list_objects()
    det = src.read_range(str(ids[0]), str(ids[-1]))
    assert det.n_rows >= 50_000
    whole = shard_bytes(compute_features(det, 0.0)[1])
    p = parallel("run", "apps/rebuild_objects", "--procs", "1", "--name", "r", "-q", "--",
                 "--source", source, "--task-seconds", "1000", *(["--stream"] if stream else []),
                 cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    shards = list((tmp_path / "runs" / "r" / "shards").glob("*.csv"))
    assert len(shards) == 1 and shards[0].read_bytes() == whole
