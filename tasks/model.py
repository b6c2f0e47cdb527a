"""A task is plain data: a shell command, a weight, the files it promises to write.

Tasks are created by a task list (one shell command per line) or by an app's planner, stored
in the run journal, and sent to a worker agent as JSON.  Nothing here talks to a host.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from lasair_parallel.tasks.protocol import ENV_PATH_MAP as PATH_MAP_ENV
from lasair_parallel.tasks.protocol import ENV_PYTHON as PYTHON_ENV
from lasair_parallel.tasks.protocol import ENV_RUN_DIR as RUN_DIR_ENV

# Runs a module as ``python -m`` would, but without the working directory on sys.path: a
# worker's directory (the head's own, for a local worker) may hold a user's tasks.py or apps/
# that would shadow ours.  ``-P`` does this on Python 3.11+ only; this works on 3.10 too.
# ``sys.argv`` becomes [module path, args...], as with -m.  A folder given with --path is put
# first on sys.path (a user app's code snapshot).
# On a worker without the head's files, each argument that is a head path (or lies under
# one) in $PARALLEL_PATH_MAP is mapped to the worker's path first, longest prefix first.
BOOTSTRAP = (
    'import sys;getattr(sys.flags,"safe_path",0) or sys.path.pop(0);import runpy,os,json;a=sys.argv;'
    f'm=sorted(json.loads(os.environ.get("{PATH_MAP_ENV}") or "{{}}").items(),key=lambda kv:-len(kv[0]));'
    'a[1:]=[next((v+x[len(k):] for k,v in m if x==k or x.startswith(k+"/")),x) for x in a[1:]];'
    'a[1:2]==["--path"] and [sys.path.insert(0,a[2]),a.__delitem__(slice(1,3))];'
    'runpy.run_module(a.pop(1),run_name="__main__",alter_sys=True)'
)


@dataclass(frozen=True)
class Task:
    """One unit of work.

    ``id`` must be stable across reruns of the same command: it is how a resumed run knows
    what already finished.  ``outputs`` are paths (absolute, or relative to the task's working
    directory) that the task writes atomically; the head copies them back from workers that
    do not share its filesystem.  ``inputs`` are files the task reads that a worker without
    the head's filesystem must be sent first (copied once per host and run).  ``stream``, when
    set, is where the rows the task sends with :mod:`lasair_parallel.tasks.emit` are kept (a path relative to
    the run directory), written by the head only if the attempt succeeds.  ``weight`` orders dispatch (heaviest first) and is what the
    planner balanced; it has no unit beyond "comparable within one run".
    """

    id: str
    command: str
    weight: float = 1.0
    outputs: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    stream: str | None = None  # rows sent with tasks.emit land here (relative to the run dir)
    timeout: float | None = None
    env: tuple[tuple[str, str], ...] = field(default=())
    # Resources one attempt needs, None = the worker's default (one slot; no memory request).
    # ``cores`` is how many slots of a worker the task takes (a 4-core task takes 4 of an SSH
    # worker's procs) and its Slurm step's --cpus-per-task; ``memory_mb`` its step's --mem.
    cores: int | None = None
    memory_mb: int | None = None
    # Ids of the tasks this one runs after: it starts when all of them succeeded (and the
    # tasks they spawned), and is recorded as skipped when one of them fails for good.
    after: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.after, tuple):  # a list, or one id given as a plain string
            after = (self.after,) if isinstance(self.after, str) else tuple(self.after)
            object.__setattr__(self, "after", after)
        for name in ("cores", "memory_mb"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"task {self.id}: {name} must be a whole number >= 1, not {v!r}")

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "command": self.command,
            "weight": self.weight,
            "outputs": list(self.outputs),
            "inputs": list(self.inputs),
            "stream": self.stream,
            "timeout": self.timeout,
            "env": dict(self.env),
            "cores": self.cores,
            "memory_mb": self.memory_mb,
            "after": list(self.after),
        }

    @classmethod
    def from_json(cls, d: dict) -> Task:
        return cls(
            id=d["id"],
            command=d["command"],
            weight=float(d.get("weight", 1.0)),
            outputs=tuple(d.get("outputs", ())),
            inputs=tuple(d.get("inputs", ())),
            stream=d.get("stream"),
            timeout=d.get("timeout"),
            env=tuple(sorted((d.get("env") or {}).items())),
            cores=d.get("cores"),
            memory_mb=d.get("memory_mb"),
            after=tuple(d.get("after") or ()),
        )


def python_command(module: str, args: Sequence[str], path: str | None = None) -> str:
    """Shell command running ``python -m module args`` on the worker's interpreter.

    The worker's working directory is not on ``sys.path`` (see :data:`BOOTSTRAP`); ``path``,
    when given, is (e.g. a folder app's code snapshot, so ``module`` is found there).
    """
    extra = ["--path", str(path)] if path is not None else []
    return (f'"${{{PYTHON_ENV}:-python3}}" -c {shlex.quote(BOOTSTRAP)} '
            + shlex.join([*extra, module, *[str(a) for a in args]]))


def run_path(path: str | os.PathLike, run_dir: str | os.PathLike) -> str:
    """Shell text naming ``path`` (inside ``run_dir``) through ``$PARALLEL_RUN_DIR``, so the
    command means the same on a worker whose copy of the run directory lies elsewhere."""
    rel = os.path.relpath(os.fspath(path), os.fspath(run_dir))
    if rel == ".." or rel.startswith("../"):
        raise ValueError(f"{path} is not inside the run directory {run_dir}")
    return f'"${RUN_DIR_ENV}"/{shlex.quote(rel)}'


def command_ids(commands: Iterable[str]) -> list[str]:
    """Stable ids for a list of shell commands: a short hash, plus a counter for repeats.

    The same command twice in one list is two tasks (users do that on purpose), so the
    n-th repeat gets a ``-n`` suffix; the ids do not depend on line numbers, so inserting a
    comment line in the task file does not make a resumed run redo everything.
    """
    seen: dict[str, int] = {}
    ids = []
    for cmd in commands:
        h = hashlib.sha1(cmd.encode()).hexdigest()[:12]
        n = seen.get(h, 0)
        seen[h] = n + 1
        ids.append(h if n == 0 else f"{h}-{n}")
    return ids
