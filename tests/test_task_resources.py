"""Per-task resources (Task.cores, Task.memory_mb): the model, and SSH slot accounting.

A task with ``cores: k`` takes k slots of a worker; measured from the journal's attempt
intervals on a real sshd worker, against the same run without the field.
"""

from __future__ import annotations

import pytest
from helpers import journal, parallel
from lasair_parallel.tasks import Task


def max_overlap(rows) -> int:
    """Most attempts running at the same moment, from (start, end) pairs."""
    events = sorted([(s, 1) for s, _ in rows] + [(e, -1) for _, e in rows])
    now = best = 0
    for _, d in events:
        now += d
        best = max(best, now)
    return best


def test_resources_round_trip_and_checks():
    t = Task(id="a", command="true", cores=4, memory_mb=2048)
    assert Task.from_json(t.to_json()) == t
    assert Task.from_json({"id": "b", "command": "true"}).cores is None  # old journals/wires
    with pytest.raises(ValueError, match="cores"):
        Task(id="c", command="true", cores=0)
    with pytest.raises(ValueError, match="memory_mb"):
        Task(id="d", command="true", memory_mb=True)


def test_planner_sets_resources(tmp_path):
    from lasair_parallel.apps.busy import app
    from lasair_parallel.tasks.app import PlanContext

    args = app.build_parser().parse_args(["--count", "2", "--task-cores", "3",
                                          "--task-memory-mb", "700"])
    tasks = app.plan(args, PlanContext(run_dir=tmp_path, slots=4, hosts=1))
    assert [(t.cores, t.memory_mb) for t in tasks] == [(3, 700), (3, 700)]


@pytest.mark.parametrize("cores,expect", [(None, 4), (2, 2), (3, 1), (9, 1)])
def test_multi_core_tasks_take_several_ssh_slots(sshbed, tmp_path, cores, expect):
    """4 slots: 1-core tasks run 4 at once, 2-core 2, 3-core 1; a 9-core task still runs
    (alone: it is capped at the worker's size rather than never starting)."""
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=4, hosts=sshbed.hosts[:1],
                                    shared_fs=True)
    extra = ["--task-cores", str(cores)] if cores else []
    p = parallel("run", "apps/busy", "--workers", hosts, "--ssh-config", sshbed.ssh_config,
                 "--name", "c", "--", "--count", "8", "--seconds", "0.4", "--mode", "sleep",
                 *extra, cwd=tmp_path, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    db = journal(tmp_path / "runs" / "c")
    rows = db.execute("SELECT start, end FROM attempts WHERE outcome = 'ok'").fetchall()
    assert len(rows) == 8
    # Attempts ending and starting at the same instant are not concurrent: shave a hair.
    assert max_overlap([(s + 0.01, e - 0.01) for s, e in rows]) == expect
