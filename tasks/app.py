"""What an app is, seen from the head: a module ``apps.<name>.app`` with a planner.

An app module provides

``build_parser() -> argparse.ArgumentParser``
    its options (shown by ``parallel run apps/<name> --help``; given after ``--``);
``plan(args, ctx: PlanContext) -> list[Task]``
    the tasks, each a shell command (usually :func:`tasks.python_command` running
    ``apps.<name>.task`` on the worker), with weights and declared outputs under ``ctx.run_dir``;
``gather(args, ctx: PlanContext) -> None``  (optional)
    run on the head after every task succeeded (e.g. reduce partial results);
``describe(args, ctx, tasks) -> str``  (optional)
    a line printed before the run starts (e.g. a time estimate).

Apps import from ``tasks`` only; the head imports apps by name through :func:`load_app`.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

APP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class AppError(ValueError):
    """An app name or app option that cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class PlanContext:
    """What a planner may know about the run it plans for."""

    run_dir: Path  # absolute; outputs go under it
    slots: int  # total worker slots (sum of procs), for sizing tasks
    hosts: int  # number of worker hosts


def app_name(spec: str) -> str:
    """``apps/busy``, ``apps/busy/``, ``apps.busy`` or ``busy`` -> ``busy``."""
    s = spec.strip().rstrip("/")
    for prefix in ("apps/", "apps."):
        if s.startswith(prefix):
            s = s[len(prefix):]
    if not APP_NAME.match(s):
        raise AppError(f"{spec!r} is not an app name: use apps/<name>, e.g. apps/busy")
    return s


def load_app(spec: str) -> ModuleType:
    """Import ``apps.<name>.app`` and check it has a planner."""
    name = app_name(spec)
    try:
        mod = importlib.import_module(f"apps.{name}.app")
    except ModuleNotFoundError as e:
        if e.name in (f"apps.{name}", f"apps.{name}.app"):
            raise AppError(
                f"no app named {name!r}: choose one of {', '.join(available_apps())}"
            ) from None
        raise
    for attr in ("build_parser", "plan"):
        if not hasattr(mod, attr):
            raise AppError(f"app {name!r} has no {attr}() in apps/{name}/app.py")
    return mod


def available_apps() -> list[str]:
    import apps

    root = Path(apps.__file__).parent
    return sorted(p.parent.name for p in root.glob("*/app.py"))
