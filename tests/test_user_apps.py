"""Users' own code: one namespace, apps from folders/modules/plugins, code that travels.

Every run here starts from a working directory holding a ``tasks.py`` and an ``apps/``
package, the case that broke every app task when the project installed top-level ``tasks`` and
``apps`` packages.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import journal, parallel

REPO = Path(__file__).resolve().parent.parent
FADING = REPO / "examples" / "fading"


def hostile_cwd(tmp_path: Path) -> Path:
    """A directory whose tasks.py and apps/ would shadow bare ``tasks`` / ``apps`` imports."""
    d = tmp_path / "work"
    (d / "apps").mkdir(parents=True)
    (d / "apps" / "__init__.py").write_text("raise ImportError('the user apps package')\n")
    (d / "tasks.py").write_text("raise SystemExit('this is the user tasks.py (Invoke)')\n")
    return d


def test_nothing_is_importable_under_bare_names(tmp_path):
    code = textwrap.dedent("""
        import importlib, sys
        sys.path.remove('') if '' in sys.path else None
        for name in ('head', 'tasks', 'apps', 'csv_to_database'):
            try:
                importlib.import_module(name)
            except ModuleNotFoundError:
                continue
            print('importable:', name)
        import lasair_parallel.head.cli.main, lasair_parallel.tasks, lasair_parallel.apps.busy.app
        import lasair_parallel.csv_to_database
        print('ok')
    """)
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert p.stdout.strip() == "ok", p.stdout + p.stderr


def test_version_flags(tmp_path):
    from lasair_parallel.head.version import head_version

    p = parallel("--version", cwd=tmp_path, check=True)
    assert head_version() in p.stdout
    q = subprocess.run([sys.executable, "-m", "lasair_parallel.csv_to_database.cli", "--version"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert q.returncode == 0 and head_version() in q.stdout


def test_app_tasks_ignore_the_worker_cwd(tmp_path):
    """A local worker inherits the head's directory: its tasks.py and apps/ change nothing."""
    cwd = hostile_cwd(tmp_path)
    p = parallel("run", "apps/busy", "--procs", "2", "-q", "--", "--count", "4", "--seconds",
                 "0", "--outputs", cwd=cwd)
    assert p.returncode == 0, p.stderr
    assert len(list((cwd / "runs" / "busy" / "out").glob("busy-*.txt"))) == 4


def test_parallel_apps_lists_builtins(tmp_path):
    p = parallel("apps", cwd=tmp_path, check=True)
    names = [line.split()[0] for line in p.stdout.splitlines()]
    assert names == ["busy", "rebuild_objects", "scarp_search"]
    assert all("built-in" in line for line in p.stdout.splitlines())


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_folder_app_runs_locally_and_gathers(tmp_path):
    cwd = hostile_cwd(tmp_path)
    p = parallel("run", str(FADING), "--procs", "2", "-q", "--", "--rate", "0.05", cwd=cwd)
    assert p.returncode == 0, p.stderr
    run = cwd / "runs" / "fading"
    rows = _rows(run / "fading.csv")
    assert rows and all(float(r["slope_mag_per_day"]) > 0.05 for r in rows)
    # the code ran from the run's content-hashed snapshot, not from examples/
    snaps = list((run / "code").glob("fading-*"))
    assert len(snaps) == 1 and (snaps[0] / "task.py").is_file()
    cmds = [r[0] for r in journal(run).execute("SELECT command FROM tasks")]
    assert cmds and all(str(snaps[0]) in c for c in cmds)


def test_folder_app_code_travels_to_workers_without_shared_files(sshbed, tmp_path):
    cwd = hostile_cwd(tmp_path)
    local = parallel("run", str(FADING), "--procs", "2", "-q", "--name", "local", cwd=cwd)
    assert local.returncode == 0, local.stderr
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=2, hosts=sshbed.hosts[:2],
                                    shared_fs=False, workdir=str(tmp_path / "remote"),
                                    python=sys.executable)
    p = parallel("run", str(FADING), "--workers", hosts, "--ssh-config", sshbed.ssh_config,
                 "-q", "--name", "ssh", cwd=cwd)
    assert p.returncode == 0, p.stderr
    assert _rows(cwd / "runs" / "ssh" / "fading.csv") == _rows(cwd / "runs" / "local" /
                                                               "fading.csv")
    hosts_used = {r[0] for r in journal(cwd / "runs" / "ssh").execute(
        "SELECT DISTINCT host FROM attempts WHERE outcome = 'ok'")}
    assert len(hosts_used) == 2
    # the snapshot reached the workers' own run folders
    remote_snaps = list((tmp_path / "remote").rglob("code/fading-*/task.py"))
    assert remote_snaps, "the app's code was not sent"


def _versioned_app(root: Path, version: str) -> Path:
    app = root / "vapp"
    app.mkdir(exist_ok=True)
    (app / "app.py").write_text(textwrap.dedent('''
        """Prints the version of its sibling module."""
        import argparse

        def build_parser():
            return argparse.ArgumentParser(prog="vapp")

        def plan(args, ctx):
            return [ctx.task(f"v-{i}", ["--i", str(i)]) for i in range(2)]
    '''))
    (app / "task.py").write_text(textwrap.dedent('''
        import sys
        from version import VERSION
        print("running", VERSION, sys.argv[1:])
    '''))
    (app / "version.py").write_text(f"VERSION = {version!r}\n")
    return app


def test_changed_app_is_sent_again(sshbed, tmp_path):
    """Two run directories, one worker-side run folder: the edited app must run, not the old."""
    cwd = hostile_cwd(tmp_path)
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=1, hosts=sshbed.hosts[:1],
                                    shared_fs=False, workdir=str(tmp_path / "remote"),
                                    python=sys.executable)
    outs = []
    for n, version in enumerate(("v1", "v2")):
        app = _versioned_app(tmp_path, version)
        rdir = cwd / f"r{n}"
        p = parallel("run", str(app), "--workers", hosts, "--ssh-config", sshbed.ssh_config,
                     "-q", "--name", "same", "--run-dir", rdir, cwd=cwd)
        assert p.returncode == 0, p.stderr
        outs.append({path.read_text() for path in (rdir / "logs").glob("*.out")})
    assert all("running v1" in o for o in outs[0])
    assert all("running v2" in o for o in outs[1])


@pytest.mark.parametrize("files, message", [
    ({"task.py": "print(1)\n"}, "no app.py in the folder"),
    ({"app.py": "def build_parser(): pass\n", "task.py": ""}, "has no plan()"),
    ({"app.py": "import argparse\n\n\nx = 1 / 0\n", "task.py": ""},
     "app.py:4: ZeroDivisionError"),
    ({"app.py": "def plan(:\n", "task.py": ""}, "app.py:1: SyntaxError"),
])
def test_broken_folder_apps_give_one_line(tmp_path, files, message):
    app = tmp_path / "broken"
    app.mkdir()
    for name, text in files.items():
        (app / name).write_text(text)
    p = parallel("run", "./broken", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], p.stderr
    assert "Traceback" not in p.stderr


def test_unknown_apps_give_one_line(tmp_path):
    for spec, message in (("nope", "no app named 'nope'"), ("./missing", "no such folder"),
                          ("nosuchpkg.app", "nosuchpkg")):
        p = parallel("run", spec, cwd=tmp_path)
        assert p.returncode == 2 and message in p.stderr and len(p.stderr.splitlines()) == 1, \
            (spec, p.stderr)


def _module_app(root: Path) -> Path:
    pkg = root / "lib" / "mypkg" / "myapp"
    pkg.mkdir(parents=True)
    (root / "lib" / "mypkg" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "app.py").write_text(textwrap.dedent('''
        """A module app: mypkg.myapp."""
        import argparse

        def build_parser():
            p = argparse.ArgumentParser()
            p.add_argument("--n", type=int, default=3)
            return p

        def plan(args, ctx):
            out = ctx.run_dir / "out"
            return [ctx.task(f"m-{i}", ["--i", i, "--out", out / f"{i}.txt"],
                             outputs=(str(out / f"{i}.txt"),)) for i in range(args.n)]
    '''))
    (pkg / "task.py").write_text(textwrap.dedent('''
        import argparse
        from lasair_parallel.tasks.outputs import atomic_write
        from mypkg.myapp.helper import square
        p = argparse.ArgumentParser()
        p.add_argument("--i", type=int)
        p.add_argument("--out")
        a = p.parse_args()
        with atomic_write(a.out) as f:
            f.write(str(square(a.i)))
    '''))
    (pkg / "helper.py").write_text("def square(x):\n    return x * x\n")
    return root / "lib"


def test_module_app_and_plugin(tmp_path):
    cwd = hostile_cwd(tmp_path)
    lib = _module_app(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(lib))
    p = subprocess.run([sys.executable, "-m", "lasair_parallel.head.cli.main", "run",
                        "mypkg.myapp", "--procs", "2", "-q", "--", "--n", "4"],
                       cwd=cwd, capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    out = cwd / "runs" / "myapp" / "out"
    assert sorted(f.read_text() for f in out.glob("*.txt")) == ["0", "1", "4", "9"]
    # the same package as a plugin: a distribution's entry point in our group
    dist = lib / "myplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[lasair_parallel.apps]\nsquares = mypkg.myapp\n")
    q = subprocess.run([sys.executable, "-m", "lasair_parallel.head.cli.main", "apps"],
                       cwd=cwd, capture_output=True, text=True, env=env)
    assert q.returncode == 0 and "squares" in q.stdout and "plugin (myplugin 1.0)" in q.stdout, \
        q.stdout + q.stderr
    r = subprocess.run([sys.executable, "-m", "lasair_parallel.head.cli.main", "run", "squares",
                        "--procs", "2", "-q", "--", "--n", "2"],
                       cwd=cwd, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert sorted(f.read_text() for f in (cwd / "runs" / "squares" / "out").glob("*")) == \
        ["0", "1"]
    # two plugins with one name: refused in one line
    dup = lib / "other-2.0.dist-info"
    dup.mkdir()
    (dup / "METADATA").write_text("Metadata-Version: 2.1\nName: other\nVersion: 2.0\n")
    (dup / "entry_points.txt").write_text("[lasair_parallel.apps]\nbusy = mypkg.myapp\n")
    s = subprocess.run([sys.executable, "-m", "lasair_parallel.head.cli.main", "apps"],
                       cwd=cwd, capture_output=True, text=True, env=env)
    assert s.returncode == 2 and "two apps named 'busy'" in s.stderr, s.stderr
    assert len(s.stderr.strip().splitlines()) == 1
