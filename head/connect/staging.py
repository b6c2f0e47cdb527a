"""Workers without the head's filesystem: send inputs before a task, fetch outputs after.

Such a worker gets its own copy of the run directory
(``<workdir>/lasair-runs/<run>-<digest of the head's run dir>``); log paths and outputs are
mapped to it, and inputs outside the run directory are sent to ``inputs/<hash>/<name>`` there
(like GNU parallel's --transfer/--return).  A command's text is never rewritten: tasks see
the worker's run directory as ``$PARALLEL_RUN_DIR``, and an app's Python command maps head
paths in its argv through ``$PARALLEL_PATH_MAP`` (see :mod:`lasair_parallel.tasks.protocol`).  Copies go over SFTP on a second connection to the host, so
they never share the agent's channel (parallel-ssh breaks with concurrent channels on one
connection, ../shared/notes/anchors.md section 3).  Outputs land atomically on the head:
a temporary name, then a rename.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import posixpath
import re
import shlex
from pathlib import Path

from gevent.lock import RLock
from lasair_parallel.head.connect.hosts import HostSpec, SSHTarget
from lasair_parallel.tasks import Task
from lasair_parallel.tasks.protocol import ENV_PATH_MAP, ENV_RUN_DIR

# Logs up to this size come back inside the agent's exit event (base64, so ~87 KB on the wire):
# most tasks print far less, and one SFTP round trip costs more than sending 64 KB.
INLINE_MAX = 64 * 1024
RUNS_FOLDER = "lasair-runs"  # under the worker's workdir (default: the login directory)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def worker_run_name(run_dir: Path, run_name: str) -> str:
    """The worker-side folder of a run: its name made safe for a path, plus a digest of the
    head's run directory, so two run directories of one name never share a folder."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", run_name)[:60].lstrip(".") or "run"
    digest = hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:8]
    return f"{safe}-{digest}"


class Stager:
    """Path mapping and file copies for one worker that does not share the head's files."""

    def __init__(self, spec: HostSpec, target: SSHTarget, opts, run_dir: Path, run_name: str,
                 hello: dict):
        self.spec = spec
        self.target = target
        self.opts = opts
        self.local_run = str(run_dir)
        self.remote_run = posixpath.join(hello.get("cwd") or ".", RUNS_FOLDER,
                                         worker_run_name(run_dir, run_name))
        self._client = None
        self._lock = RLock()  # one SFTP transfer at a time on the copy connection
        self._sent: set[str] = set()

    def _conn(self):
        if self._client is None:
            from lasair_parallel.head.connect.pssh_import import client_module

            connect = client_module().connect

            self._client = connect(self.target, self.opts.verify_host_keys)
        return self._client

    def close(self) -> None:
        self._client = None

    def remove_remote(self) -> None:
        """Remove this run's folder on the worker (``--clean-workers``)."""
        with self._lock:
            self._run(f"rm -rf -- {shlex.quote(self.remote_run)}")

    def _run(self, cmd: str) -> None:
        """Run ``cmd`` on the copy connection; OSError naming it and its stderr if it fails."""
        client = self._conn()
        out = client.run_command(cmd)
        client.wait_finished(out)
        if out.exit_code != 0:
            raise OSError(f"{cmd.split()[0]} exited {out.exit_code}: "
                          f"{' '.join(out.stderr or [])[:200]}")

    def remote(self, path: str) -> str:
        """The worker's path for a head path (inside the run directory, or an input)."""
        if _inside(path, self.local_run):
            return self.remote_run + path[len(self.local_run):]
        digest = hashlib.sha1(path.encode()).hexdigest()[:10]
        return posixpath.join(self.remote_run, "inputs", digest, os.path.basename(path))

    def path_map(self, inputs: tuple[str, ...]) -> dict[str, str]:
        """{head path: worker path} for the run directory and inputs outside it."""
        paths = {p: self.remote(p) for p in inputs if not _inside(p, self.local_run)}
        paths[self.local_run] = self.remote_run
        return paths

    def prepare(self, task: Task, msg: dict) -> dict:
        """Send the task's inputs (once per host and run) and rewrite its paths."""
        with self._lock:
            for p in task.inputs:
                if p in self._sent:
                    continue
                self._send(p, self.remote(p))
                self._sent.add(p)
        msg = dict(msg)
        # The command's text is sent as it is: paths reach it through the environment (the
        # run directory) or the path map an app's bootstrap applies to its argv.
        msg["env"] = dict(msg.get("env") or {}, **{
            ENV_RUN_DIR: self.remote_run,
            ENV_PATH_MAP: json.dumps(self.path_map(task.inputs))})
        msg["out"] = self.remote(msg["out"])
        msg["err"] = self.remote(msg["err"])
        msg["outputs"] = [self.remote(o) if os.path.isabs(o) else o for o in task.outputs]
        msg["inline_max"] = INLINE_MAX
        return msg

    def _send(self, local: str, remote: str) -> None:
        """Copy one input under a temporary name, then rename it into place: a task already
        reading the file (another host's, where "hosts" share a folder the head was told is
        not shared) keeps its whole copy instead of seeing this one half written."""
        tmp = f"{remote}.part-{os.getpid()}-{id(self):x}"
        self._conn().copy_file(local, tmp)
        self._run(f"mv -f -- {shlex.quote(tmp)} {shlex.quote(remote)}")

    def fetch(self, task: Task, logs: tuple[str, str], ev: dict) -> None:
        """Copy the task's declared outputs and its stdout/stderr back, atomically.

        Logs small enough to travel inside the exit event (``inline_max``) are written from
        it; only larger ones and declared outputs cost an SFTP transfer.
        """
        to_copy = list(task.outputs)
        for path, name in zip(logs, ("out", "err"), strict=True):
            data = ev.get(f"{name}_b64")
            if data is None:
                to_copy.append(path)
                continue
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_bytes(base64.b64decode(data))
        with self._lock:
            for path in to_copy:
                local = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)
                remote = self.remote(local) if os.path.isabs(path) else path
                Path(local).parent.mkdir(parents=True, exist_ok=True)
                tmp = f"{local}.part-{os.getpid()}"
                try:
                    self._conn().copy_remote_file(remote, tmp)
                    os.replace(tmp, local)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
