"""The head <-> agent wire format, in one place: every message, every field, every name.

The agent (:mod:`lasair_parallel.head.worker.agent`) is stdlib-only and travels to a worker as
source text; this module travels with it (pasted into the agent's source), so it too must
import nothing but the standard library and run on Python 3.10.  It lives in ``tasks`` because
both sides need it: the head, and the tasks that read ``PARALLEL_*`` (``tasks`` imports nothing
above it).

Transport: one JSON object per line (UTF-8, ``\\n``-terminated), head -> agent on the agent's
stdin, agent -> head on its stdout.  An attempt is named on the wire by its key,
``<task id>#<attempt number>`` (:func:`attempt_key` / :func:`split_key`).

A head and an agent speak the same :data:`PROTOCOL_VERSION` or not at all: the agent states
its version in ``hello`` and the head refuses a different one with one line (a worker running
a stale deployed copy, say), instead of misreading fields.
"""

import sys

# Bump on any change of a message's meaning or a required field.
PROTOCOL_VERSION = 3  # 3: spawn (subtasks), PARALLEL_SPAWN_FD, sizing hints

# Environment names a task sees (set by the agent).
ENV_PYTHON = "PARALLEL_PYTHON"  # the worker's interpreter: apps' commands run on it
ENV_EMIT_FD = "PARALLEL_EMIT_FD"  # descriptor for streamed rows (see tasks.emit)
ENV_TASK_ID = "PARALLEL_TASK_ID"  # the task's id
ENV_ATTEMPT = "PARALLEL_ATTEMPT"  # its attempt number, 1-based
# A random token of the agent that started the task, inherited by all it starts: the agent's
# guardian finds by it what the agent's bookkeeping may lack (see head/worker/agent.py).
ENV_AGENT_TOKEN = "PARALLEL_AGENT_TOKEN"
# Descriptor for new tasks a running task hands to the head (see tasks.emit.spawn): one JSON
# object per line, a Task's to_json().  Kept only if the attempt succeeds.
ENV_SPAWN_FD = "PARALLEL_SPAWN_FD"
ENV_DEPTH = "PARALLEL_SPAWN_DEPTH"  # how deep in spawns this task is (0: planned)
# Sizing hints from the head (head.core.sizing): measured seconds per unit of Task.weight on
# this host, and the wanted longest task in seconds; a splittable task hands back the rest.
ENV_RATE = "PARALLEL_RATE"
ENV_TASK_SECONDS = "PARALLEL_TASK_SECONDS"
ENV_WEIGHT = "PARALLEL_WEIGHT"  # the task's own weight, to scale the rate
ENV_SAFEPATH = "PYTHONSAFEPATH"  # Python 3.11+: no working directory on sys.path
# The run directory as this worker sees it: the head's own where files are shared, the
# worker's copy (``<workdir>/lasair-runs/<run>-<digest>``) elsewhere.  Shell commands name
# run-directory files through it ("$PARALLEL_RUN_DIR"/out/x.csv); nothing rewrites their text.
ENV_RUN_DIR = "PARALLEL_RUN_DIR"
# JSON {head path: worker path} for workers without the head's files: the Python bootstrap of
# an app's command (tasks.model.BOOTSTRAP) applies it to each argv element (a path or a path
# prefix ending at a "/"), after the shell has parsed the quoted words: paths never pass
# through shell text, so spaces or ``$(...)`` in them are just characters.
ENV_PATH_MAP = "PARALLEL_PATH_MAP"

TAIL_BYTES = 2048  # stderr/stdout tail kept in the journal: enough for a traceback's last lines


def attempt_key(task_id, attempt):
    """The wire name of one attempt of one task."""
    return f"{task_id}#{attempt}"


def split_key(key):
    """``(task_id, attempt)`` from :func:`attempt_key`'s output."""
    task_id, _, attempt = key.rpartition("#")
    return task_id, int(attempt)


# <messages> Each message's fields, as typed dicts (documentation and type checks).  The agent
# carries this module only down to here (transport.agent_source): importing typing cost ~2.6 ms
# of each agent's start (median of 40 `python -S` starts), ahead of its hello.
if sys.version_info >= (3, 11):  # pragma: no branch - NotRequired is 3.11+
    from typing import NotRequired, TypedDict  # noqa: E402 - see above
else:  # Python 3.10: every field is simply optional at run time
    from typing import TypedDict  # noqa: E402

    NotRequired = None  # only used inside string annotations below


# -- head -> agent -------------------------------------------------------------------------

class RunMsg(TypedDict):
    """Start one attempt."""

    op: str  # "run"
    key: str  # attempt_key(task id, attempt)
    cmd: str  # shell command (exec'd directly when plain words, else /bin/sh -c)
    cwd: "str | None"  # working directory (None: the agent's)
    env: "dict[str, str]"  # added to the agent's environment
    timeout: "float | None"  # seconds; then TERM, then KILL the whole process group
    out: str  # stdout file on the worker
    err: str  # stderr file on the worker
    outputs: "list[str]"  # declared outputs, checked to exist after a success
    emit: "NotRequired[bool]"  # open a pipe on $PARALLEL_EMIT_FD and forward its lines
    inline_max: "NotRequired[int]"  # logs up to this size travel inside the exit event
    spawn: "NotRequired[bool]"  # open a pipe on $PARALLEL_SPAWN_FD and forward its lines


class KillMsg(TypedDict):
    """Stop one attempt (TERM, then KILL after a grace period)."""

    op: str  # "kill"
    key: str


class StopMsg(TypedDict):
    """Kill every task and exit (EOF on stdin means the same)."""

    op: str  # "stop"


# -- agent -> head -------------------------------------------------------------------------

class HelloEv(TypedDict):
    """The agent's first line: who and where it is."""

    ev: str  # "hello"
    protocol: int  # PROTOCOL_VERSION of the agent
    pid: int
    hostname: str
    cores: "int | None"
    python: str  # "3.11.7"
    executable: str
    cwd: str  # the agent's working directory (workdir, else the login directory)
    memfree: "int | None"  # bytes available (MemAvailable)
    load: "float | None"  # 1-minute load average
    disk_free: "int | None"  # bytes free where the agent runs
    version: "str | None"  # lasair-parallel installed for this interpreter, if any


class StartEv(TypedDict):
    ev: str  # "start"
    key: str
    pid: int  # the task's process (and process group) id
    t: float  # worker clock, epoch seconds


class ExitEv(TypedDict):
    """An attempt ended; its logs ride along when small (``inline_max``)."""

    ev: str  # "exit"
    key: str
    rc: "int | None"  # exit status, or None when killed by a signal
    sig: "int | None"  # the signal that killed it
    t: float
    maxrss_kb: "int | None"  # peak RSS of the task's process tree (wait4)
    timed_out: bool
    out_size: int
    err_size: int
    out_tail: str  # last TAIL_BYTES of stdout, decoded with replacement
    err_tail: str
    missing_outputs: "list[str]"  # declared outputs absent after exit status 0
    out_b64: "NotRequired[str]"  # whole stdout, when out_size <= inline_max
    err_b64: "NotRequired[str]"


class RowsEv(TypedDict):
    """Streamed CSV records of a running attempt: whole lines, in order."""

    ev: str  # "rows"
    key: str
    data: str


class SpawnEv(TypedDict):
    """New tasks from a running attempt: whole lines, each one Task's JSON, in order.

    Sent before the attempt's ``exit``; the head keeps them only if the attempt succeeds."""

    ev: str  # "spawn"
    key: str
    data: str


class HeartbeatEv(TypedDict):
    ev: str  # "hb"
    t: float
    memfree: "int | None"
    load: "float | None"
    running: int  # tasks the agent has running

