"""``parallel clean RUN``: remove a finished run's folders on the workers.

Registered on the main click group by :func:`register` (from :mod:`lasair_parallel.head.cli.main`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import click


def register(main: click.Group, fail: Callable[[str], None], user_errors: tuple) -> None:
    """Add ``clean`` to ``main``."""

    @main.command()
    @click.argument("run")
    @click.option("--workers", type=click.Path(dir_okay=False),
                  help="hosts.yaml or sshloginfile [default: the one the run used].")
    @click.option("--ssh-config", type=click.Path(dir_okay=False, exists=True),
                  help="An ssh_config file to use instead of ~/.ssh/config.")
    @click.option("--no-host-key-check", is_flag=True,
                  help="Do not verify worker host keys (insecure).")
    def clean(run: str, workers: str | None, ssh_config: str | None,
              no_host_key_check: bool) -> None:
        """Remove RUN's folders (<workdir>/lasair-runs/<run>-<digest>) on workers that do not
        share this machine's files.  The run directory here is kept."""
        from lasair_parallel.head.connect.cleanup import clean_workers
        from lasair_parallel.head.connect.hosts import read_hosts
        from lasair_parallel.head.core.runlock import RunLock
        from lasair_parallel.head.views.results import open_readonly

        rdir = Path(run)
        if not (rdir / "journal.sqlite").exists():
            fail(f"{run}: no run there (no journal.sqlite); give a run directory")
        try:
            lock = RunLock(rdir).acquire()  # refuses while a head is running it
            try:
                db = open_readonly(rdir)
                try:
                    meta = {k: json.loads(v) for k, v in
                            db.execute("SELECT key, value FROM meta")}
                finally:
                    db.close()
                hosts_file = workers or meta.get("hosts_file")
                if not hosts_file:
                    fail(f"{run}: the run used no hosts file; give --workers")
                specs = read_hosts(hosts_file)
                results = clean_workers(specs, rdir.resolve(), meta.get("name") or rdir.name,
                                        ssh_config, not no_host_key_check)
            finally:
                lock.release()
        except user_errors as e:
            fail(str(e))
        for r in results:
            click.echo(f"{r.host}: {r.detail}", err=not r.ok)
        if not results:
            click.echo("no worker of this run keeps a folder of its own (all share files)",
                       err=True)
        sys.exit(0 if all(r.ok for r in results) else 1)
