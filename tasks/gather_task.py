"""Run an app's ``gather(args, ctx)`` as a task on a worker (see ``PlanContext.gather_task``).

``python -m lasair_parallel.tasks.gather_task --planner MODULE --slots N --hosts H --args JSON``

The planner's options travel as JSON; strings naming head paths are mapped to this worker's
(``$PARALLEL_PATH_MAP``, the rule the argv bootstrap applies), and the context's run directory
is this worker's copy (``$PARALLEL_RUN_DIR``), where the inputs were staged and where the
gather's declared outputs are written, then copied back.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
from pathlib import Path

from lasair_parallel.tasks.app import PlanContext
from lasair_parallel.tasks.finish import exit_task
from lasair_parallel.tasks.protocol import ENV_PATH_MAP, ENV_RUN_DIR


def _mapper():
    pairs = sorted(json.loads(os.environ.get(ENV_PATH_MAP) or "{}").items(),
                   key=lambda kv: -len(kv[0]))

    def map_value(v):
        if isinstance(v, str):
            return next((w + v[len(h):] for h, w in pairs if v == h or v.startswith(h + "/")), v)
        if isinstance(v, list):
            return [map_value(x) for x in v]
        return v

    return map_value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lasair_parallel.tasks.gather_task")
    p.add_argument("--planner", required=True, help="the app's planner module (app.py)")
    p.add_argument("--slots", type=int, required=True)
    p.add_argument("--hosts", type=int, required=True)
    p.add_argument("--args", required=True, help="the planner's options, as JSON")
    a = p.parse_args(argv)
    map_value = _mapper()
    options = argparse.Namespace(**{k: map_value(v) for k, v in json.loads(a.args).items()})
    run_dir = Path(os.environ.get(ENV_RUN_DIR) or ".").resolve()
    app = importlib.import_module(a.planner)
    app.gather(options, PlanContext(run_dir=run_dir, slots=a.slots, hosts=a.hosts))
    return 0


if __name__ == "__main__":
    exit_task(main())
