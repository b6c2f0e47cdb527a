"""The app contract: what an app provides, the same for built-in and user apps.

An app is a package or a plain folder with two files:

``app.py``, the planner, imported on the head (see :class:`App`);
``task.py``, run on a worker for each task as a main module (``python -m``-style, without the
worker's working directory on ``sys.path``): it parses the arguments its planner gave it,
does one piece of work and writes its declared outputs atomically
(:func:`lasair_parallel.tasks.outputs.atomic_write`) or streams rows
(:mod:`lasair_parallel.tasks.emit`).

Apps import from ``lasair_parallel.tasks`` only; the head finds them (built-in, plugin,
module or folder) in :mod:`lasair_parallel.head.appload`.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from lasair_parallel.tasks.errors import UsageError
from lasair_parallel.tasks.model import Task, python_command

APP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class AppError(UsageError):
    """An app name or app option that cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class PlanContext:
    """What a planner may know about the run it plans for, and how to start its own task."""

    run_dir: Path  # absolute; outputs go under it
    slots: int  # total worker slots (sum of procs), for sizing tasks
    hosts: int  # number of worker hosts
    task_module: str = ""  # the app's worker module (``task`` of its package or folder)
    code_path: str | None = None  # a code snapshot, put first on sys.path on the workers
    code_files: tuple[str, ...] = ()  # the snapshot's files: inputs of every task
    # Measured sizing (head.core.sizing): seconds per unit of Task.weight that an earlier run
    # in this run directory measured (None: not known yet), and the longest wanted task
    # (--task-seconds; None: the head sizes from the rate it measures as the run goes).
    rate: float | None = None
    task_seconds: float | None = None

    def command(self, args: Sequence[object]) -> str:
        """The shell command that runs this app's ``task.py`` with ``args`` on a worker."""
        return python_command(self.task_module, [str(a) for a in args], path=self.code_path)

    def gather_task(self, args: argparse.Namespace, after: Sequence[Task],
                    outputs: Sequence[str], inputs: Sequence[str] = (),
                    id: str = "gather") -> Task:
        """A task running this app's ``gather(args, ctx)`` on a worker, after ``after``.

        Its inputs are the outputs and inputs of ``after`` (and ``inputs``), staged like
        any other task's; ``outputs`` are what gather writes (under ``ctx.run_dir``), copied
        back.  The head plans this itself for an app that names its gather's outputs in
        ``GATHER_OUTPUTS`` (file names under the run directory), and then gathers no more.
        """
        planner = (self.task_module.rpartition(".")[0] + ".app" if "." in self.task_module
                   else "app")
        options = json.dumps(vars(args), default=str)
        cmd = python_command("lasair_parallel.tasks.gather_task",
                             ["--planner", planner, "--slots", self.slots, "--hosts", self.hosts,
                              "--args", options], path=self.code_path)
        staged = [p for t in after for p in (*t.outputs, *t.inputs)] + list(inputs)
        return Task(id=id, command=cmd, weight=0.0, outputs=tuple(outputs),
                    inputs=tuple(self.code_files) + tuple(dict.fromkeys(staged)),
                    after=tuple(t.id for t in after))

    def task(self, id: str, args: Sequence[object], **fields: Any) -> Task:
        """A :class:`Task` running this app's ``task.py`` with ``args``.

        ``fields`` are the other :class:`Task` fields (weight, outputs, inputs, stream,
        timeout, env); the code snapshot's files are added to ``inputs``, so workers that do
        not share the head's files receive the app's code.
        """
        inputs = tuple(self.code_files) + tuple(fields.pop("inputs", ()))
        return Task(id=id, command=self.command(args), inputs=inputs, **fields)


@runtime_checkable
class App(Protocol):
    """An app's planner module (``app.py``).

    Required: :meth:`build_parser` and :meth:`plan`.  Optional: ``describe(args, ctx,
    tasks) -> str`` (a line printed before the run, e.g. a time estimate) and ``gather(args,
    ctx) -> None`` (run on the head after every task succeeded, e.g. to reduce partial
    results).  The module docstring's first line is the app's description in ``parallel
    apps``.
    """

    def build_parser(self) -> argparse.ArgumentParser:
        """The app's options, given after ``--`` on the command line (or as ``args=`` to run)."""
        ...

    def plan(self, args: argparse.Namespace, ctx: PlanContext) -> list[Task]:
        """The tasks: usually ``ctx.task(id, argv, weight=..., outputs=[...])`` each.

        Ids must be stable across reruns (they are how a resumed run knows what finished);
        outputs go under ``ctx.run_dir``.  Raise :class:`AppError` (or ``ValueError``) for
        unusable options: the CLI shows the message as one line with exit status 2.
        """
        ...
