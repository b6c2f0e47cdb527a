"""Remove a run's folders on workers that do not share the head's files.

Such a worker keeps its copy of a run directory (inputs, logs, outputs before they are copied
back) in ``<workdir>/lasair-runs/<run>-<digest>`` (see :mod:`.staging`).  ``parallel clean
RUN`` removes them once the run is over; nothing removes them by itself, because a rerun that
resumes the run may still want them.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from lasair_parallel.head.connect.hosts import HostSpec, resolve_ssh
from lasair_parallel.head.connect.staging import RUNS_FOLDER, worker_run_name
from lasair_parallel.head.connect.transport import shell_dir


@dataclass
class Cleaned:
    host: str
    ok: bool
    detail: str  # the folder removed, or why not


def remove_command(spec: HostSpec, run_dir: Path, run_name: str) -> str:
    """Shell command removing the run's folder, run from the worker's login directory.

    The folder name is quoted as one word (it is made of safe characters anyway); a missing
    workdir means there is nothing to remove, which is success.
    """
    folder = shlex.quote(f"{RUNS_FOLDER}/{worker_run_name(run_dir, run_name)}")
    rm = f"rm -rf -- {folder}"
    if spec.workdir:
        where = shell_dir(spec.workdir)
        return f"if cd {where} 2>/dev/null; then {rm}; fi"
    return rm


def clean_workers(specs: list[HostSpec], run_dir: Path, run_name: str,
                  ssh_config: str | None = None, verify_host_keys: bool = True) -> list[Cleaned]:
    """Remove the run's folder on every SSH worker without the head's files."""
    from lasair_parallel.head.connect.pssh_import import client_module

    connect = client_module().connect
    from lasair_parallel.head.core.failures import describe_error

    done = []
    for spec in specs:
        if spec.transport != "ssh" or spec.shares_fs:
            continue
        folder = f"{RUNS_FOLDER}/{worker_run_name(run_dir, run_name)}"
        try:
            client = connect(resolve_ssh(spec, ssh_config), verify_host_keys)
            out = client.run_command(remove_command(spec, run_dir, run_name))
            client.wait_finished(out)
            rc = out.exit_code
            err = " ".join(out.stderr or [])[:200]
            done.append(Cleaned(spec.label, rc == 0, f"removed {folder}" if rc == 0 else
                                f"rm exited {rc}: {err}"))
        except Exception as e:  # one host failing must not stop the others being cleaned
            done.append(Cleaned(spec.label, False, describe_error(e)))
    return done
