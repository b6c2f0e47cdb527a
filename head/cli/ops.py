"""Operating commands of ``parallel``: bench, report, deploy, hosts check|add|remove.

Registered on the main click group by :func:`register` (called from :mod:`lasair_parallel.head.cli.main`), so the
CLI stays one group while each command's logic lives in its own library module.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import click
from lasair_parallel.head.api import read_hosts
from lasair_parallel.head.connect.hosts import HostsError

# The one default every command shares (lasair_parallel.head.api.default_workers).
WORKERS_HELP = ("hosts.yaml or a GNU parallel sshloginfile [default: ./hosts.yaml if present, "
                "else this machine]")
SSH_CONFIG_HELP = "An ssh_config file to use instead of ~/.ssh/config."
NO_KEY_CHECK_HELP = "Do not verify worker host keys (insecure)."


def _head_alive(run_dir: Path) -> bool:
    """Is a head running ``run_dir`` now? (its pid is alive here and the run has not ended)"""
    from lasair_parallel.head.views.results import JournalReader
    from lasair_parallel.head.views.status import head_host, run_state

    with JournalReader(run_dir) as j:
        return run_state(j.meta(), head_host(run_dir))[1]


def register(main: click.Group, fail: Callable[[str], None], user_errors: tuple) -> None:
    """Add the operating commands to ``main``."""

    @main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
                  short_help="Time APP over a grid of workers x procs.")
    @click.argument("app")
    @click.option("--workers", type=click.Path(dir_okay=False),
                  help=WORKERS_HELP + "; a cell with N workers uses its first N.")
    @click.option("--sweep-workers",
                  help="Numbers of workers to sweep [default: 1,2,4, those the workers have].")
    @click.option("--sweep-procs", default="1,2,4,8", show_default=True,
                  help="Slots per worker to sweep.")
    @click.option("--out", type=click.Path(file_okay=False),
                  help="Where cells and tables go [default: runs/bench-<app>].")
    @click.option("--ssh-config", type=click.Path(dir_okay=False), help=SSH_CONFIG_HELP)
    @click.option("--no-host-key-check", is_flag=True, help=NO_KEY_CHECK_HELP)
    @click.pass_context
    def bench(ctx: click.Context, app: str, workers: str | None, sweep_workers: str | None,
              sweep_procs: str, out: str | None, ssh_config: str | None,
              no_host_key_check: bool) -> None:
        """Run APP once per (workers x procs) cell; write CSV, Markdown table and heatmap.

        parallel bench apps/busy --workers hosts.yaml -- --mode sleep --count 32
        """
        from lasair_parallel.head.api import load_app, parse_app_args
        from lasair_parallel.head.core.options import Options
        from lasair_parallel.head.ops.bench import BenchError, parse_sweep, sweep, write_outputs

        try:
            ps = parse_sweep(sweep_procs, "procs")
            hosts = read_hosts(workers)
            # Unasked, sweep only what there is: this machine alone is a 1-worker sweep.
            ws = (parse_sweep(sweep_workers, "workers") if sweep_workers
                  else [w for w in (1, 2, 4) if w <= len(hosts)])
            ref, mod = load_app(app)
            app_args = parse_app_args(mod, ref, list(ctx.args))
            name = ref.name
            outdir = Path(out) if out else Path("runs") / f"bench-{name}"
            opts = Options(verify_host_keys=not no_host_key_check, ssh_config=ssh_config)
            cells = sweep(ref, mod, app_args, hosts, ws, ps, outdir, opts,
                          log=lambda m: click.echo(m, err=True))
        except (*user_errors, BenchError, ValueError) as e:
            fail(str(e))
        title = f"{name} {' '.join(ctx.args)}".strip()
        paths = write_outputs(cells, outdir, title)
        click.echo(paths["md"].read_text())
        click.echo("wrote " + ", ".join(str(p) for p in paths.values()), err=True)
        if any(c.failed for c in cells):
            sys.exit(1)

    @main.command(short_help="Timeline PNG and tuning numbers of a run.")
    @click.argument("run", required=False)
    @click.option("--json", "as_json", is_flag=True,
                  help="Print the report data as JSON (one row per attempt under `bars`).")
    def report(run: str | None, as_json: bool) -> None:
        """Timeline PNG and summary of RUN [default: latest] under RUN/report/."""
        from lasair_parallel.head.views.report import render, write_report
        from lasair_parallel.head.views.status import find_run

        try:
            rdir = find_run(run)
        except user_errors as e:
            fail(str(e))
        r, out = write_report(rdir)
        click.echo(json.dumps(r, indent=1, default=str) if as_json else render(r))
        click.echo(f"wrote {out / 'timeline.png'}, {out / 'summary.md'}, "
                   f"{out / 'report.json'}", err=True)

    @main.command(short_help="Install this project in a venv on every worker.")
    @click.option("--workers", type=click.Path(dir_okay=False), help=WORKERS_HELP)
    @click.option("--deps", type=click.Choice(["index", "wheels", "none"]), default="index",
                  show_default=True, help="index: workers' pip fetches dependencies; wheels: "
                  "ship pinned dependency wheels (no index needed); none: install only this "
                  "project (use with --system-site-packages).")
    @click.option("--system-site-packages", is_flag=True,
                  help="The venv sees the worker's system site-packages.")
    @click.option("--ssh-config", type=click.Path(dir_okay=False), help=SSH_CONFIG_HELP)
    @click.option("--no-host-key-check", is_flag=True, help=NO_KEY_CHECK_HELP)
    def deploy(workers: str | None, deps: str, system_site_packages: bool, ssh_config: str | None,
               no_host_key_check: bool) -> None:
        """Install this project (the head's version) in a venv on every worker."""
        from lasair_parallel.head.ops.deploy import DeployError, render
        from lasair_parallel.head.ops.deploy import deploy as do_deploy

        try:
            hosts = read_hosts(workers)
            version, results = do_deploy(hosts, deps, system_site_packages, ssh_config,
                                         not no_host_key_check)
        except (*user_errors, DeployError) as e:
            fail(str(e))
        click.echo(render(version, results))
        if not all(r.ok for r in results):
            sys.exit(1)

    @main.group(short_help="Check workers; add or drain workers of a run.")
    def hosts() -> None:
        """Check workers; add or drain workers of a running run."""

    @hosts.command("check", short_help="Reachability, Python, cores, memory of each worker.")
    @click.option("--workers", type=click.Path(dir_okay=False), help=WORKERS_HELP)
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.option("--ssh-config", type=click.Path(dir_okay=False), help=SSH_CONFIG_HELP)
    @click.option("--no-host-key-check", is_flag=True, help=NO_KEY_CHECK_HELP)
    def hosts_check(workers: str | None, as_json: bool, ssh_config: str | None,
                    no_host_key_check: bool) -> None:
        """Reachability, auth, host key, Python, cores, memory, load, disk of every worker."""
        from lasair_parallel.head.ops.hostcheck import as_rows, check_hosts, render

        try:
            specs = read_hosts(workers)
        except user_errors as e:
            fail(str(e))
        checks = check_hosts(specs, ssh_config, not no_host_key_check)
        click.echo(json.dumps(as_rows(checks), indent=1) if as_json else render(checks))
        if not all(c.ok for c in checks):
            sys.exit(1)

    @hosts.command("add", short_help="Add a worker to a running run.")
    @click.argument("run")
    @click.argument("host")
    @click.option("--procs", type=int, help="Slots [default: from HOST, e.g. 4/node1, else 1].")
    @click.option("--identity", type=click.Path(dir_okay=False),
                  help="SSH private key for HOST [default: ssh's own choice].")
    @click.option("--workdir", help="Directory tasks run in on HOST [default: the home].")
    @click.option("--python", help="Python on HOST that runs the agent "
                  "[default: the deployed venv, else python3].")
    @click.option("--shared-fs/--no-shared-fs", default=None,
                  help="Whether HOST sees the head's files; without, outputs are copied back.")
    @click.option("--name", help="Display name (the label `hosts remove` takes).")
    def hosts_add(run: str, host: str, procs: int | None, identity: str | None,
                  workdir: str | None, python: str | None, shared_fs: bool | None,
                  name: str | None) -> None:
        """Add HOST ([procs/][user@]host[:port]) to the running RUN; it gets tasks at once."""
        from lasair_parallel.head.connect.hosts import _parse_login
        from lasair_parallel.head.core.elastic import send_command, spec_to_json
        from lasair_parallel.head.views.status import find_run

        try:
            rdir = find_run(run)
            spec = _parse_login(Path("HOST"), 0, host)
            if procs is not None and procs < 1:
                raise HostsError("--procs must be at least 1")
            spec = replace(spec, **{k: v for k, v in dict(
                procs=procs, identity=identity, workdir=workdir, python=python,
                shared_fs=shared_fs, name=name).items() if v is not None})
            if not _head_alive(rdir):
                raise HostsError(f"{rdir}: no head is running this run; add the host to the "
                                 "hosts file for the next run instead")
        except user_errors as e:
            fail(str(e))
        send_command(rdir, {"op": "add", "spec": spec_to_json(spec)})
        click.echo(f"asked the head of {rdir} to add {spec.label} ({spec.procs} slot(s))")

    @hosts.command("remove", short_help="Drain a worker from a running run.")
    @click.argument("run")
    @click.argument("host")
    def hosts_remove(run: str, host: str) -> None:
        """Drain HOST (its label) from the running RUN: running tasks finish, no new ones."""
        from lasair_parallel.head.core.elastic import send_command
        from lasair_parallel.head.views.status import find_run, summary

        try:
            rdir = find_run(run)
            known = {h["host"] for h in summary(rdir)["hosts"]}
            if host not in known:
                raise HostsError(f"{host}: not a worker of {rdir} (workers: "
                                 f"{', '.join(sorted(known)) or 'none yet'})")
            if not _head_alive(rdir):
                raise HostsError(f"{rdir}: no head is running this run")
        except user_errors as e:
            fail(str(e))
        send_command(rdir, {"op": "remove", "host": host})
        click.echo(f"asked the head of {rdir} to drain {host}")
