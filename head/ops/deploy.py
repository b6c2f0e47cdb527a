"""``parallel deploy``: install this project, at the head's version, on every worker.

1. Build a wheel of the checkout the head runs from.  The wheel is assembled here (PEP 427:
   a zip of the packages plus ``*.dist-info``), so a deploy needs no build backend, no
   ``wheel`` package and no network on the head.
2. With ``--deps wheels`` also build wheels of the pinned dependencies (``name==version`` as
   installed on the head, through the head's own pip and index) for workers that cannot reach
   a package index.
3. Copy them to each worker (SFTP), into ``<base>/.lasair-parallel/wheels/``, where ``<base>``
   is the worker's ``workdir`` or the SSH user's home.
4. Create the versioned venv ``<base>/.lasair-parallel/<version>/`` with the worker's
   ``python:`` (default ``python3``) and install the wheel into it; then ask the venv's Python
   which version it has.

The agent of a worker without an explicit ``python:`` starts on that venv's interpreter when it
exists (see :mod:`lasair_parallel.head.version`), so its tasks run the deployed code.  ``--system-site-packages``
with ``--deps none`` makes a venv that sees the worker's own site-packages and installs only
this project: fast, and what the test suite uses on one machine.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import os
import shlex
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import gevent
from lasair_parallel.head.connect.hosts import HostSpec, resolve_ssh
from lasair_parallel.head.version import DIST, VENV_ROOT, head_version, venv_dir
from lasair_parallel.tasks.errors import UsageError

SKIP_DIRS = {"__pycache__", ".pytest_cache"}
SKIP_SUFFIXES = (".pyc", ".pyo")


class DeployError(UsageError):
    pass


@dataclass
class HostResult:
    host: str
    ok: bool
    version: str | None = None
    venv: str = ""
    seconds: float = 0.0
    error: str = ""


def project_root() -> Path:
    """The source checkout the head runs from (where setup.cfg is)."""
    root = Path(__file__).resolve().parents[2]  # head/ops/deploy.py -> the checkout
    if not (root / "setup.cfg").exists():
        raise DeployError(f"{root}: no setup.cfg; deploy runs from a source checkout "
                          "(pip install -e .)")
    return root


def read_setup(root: Path) -> configparser.ConfigParser:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(root / "setup.cfg")
    return cfg


def _lines(text: str) -> list[str]:
    return [x.strip() for x in text.strip().splitlines() if x.strip()]


def build_wheel(root: Path, out: Path) -> Path:
    """A pure-Python wheel (py3-none-any) of the checkout at ``root``, written into ``out``."""
    cfg = read_setup(root)
    name, version = cfg["metadata"]["name"], cfg["metadata"]["version"]
    dist = name.replace("-", "_")
    # Each installed package comes from the folder setup.cfg's package_dir maps it to.
    mapping = dict(line.split("=", 1) for line in _lines(cfg["options"].get("package_dir", "")))
    mapping = {k.strip(): v.strip() for k, v in mapping.items()}
    packages = _lines(cfg["options"].get("packages", ""))
    top = sorted({p.split(".")[0] for p in packages})
    files: list[tuple[str, bytes]] = []
    for pkg, folder in sorted(mapping.items()):
        src = root / folder
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            for f in sorted(filenames):
                if f.endswith(SKIP_SUFFIXES):
                    continue
                p = Path(dirpath) / f
                rel = p.relative_to(src).as_posix()
                files.append((pkg.replace(".", "/") + "/" + rel, p.read_bytes()))
    info = f"{dist}-{version}.dist-info"
    requires = _lines(cfg["options"].get("install_requires", ""))
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
            f"Summary: {cfg['metadata'].get('description', '')}",
            f"Requires-Python: {cfg['options'].get('python_requires', '>=3')}"]
    meta += [f"Requires-Dist: {r}" for r in requires]
    # Every entry-point group setup.cfg declares (console scripts, schema packages, apps).
    eps = "".join(f"[{group}]\n" + "\n".join(_lines(value)) + "\n\n"
                  for group, value in cfg["options.entry_points"].items()
                  if group not in cfg.defaults() and _lines(value))
    files += [(f"{info}/METADATA", ("\n".join(meta) + "\n").encode()),
              (f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: lasair-parallel deploy\n"
                                b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
              (f"{info}/entry_points.txt", eps.encode()),
              (f"{info}/top_level.txt", ("\n".join(top) + "\n").encode())]
    record = []
    for path, data in files:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for path, data in files:
            z.writestr(path, data)
        z.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel


def dependency_wheels(root: Path, out: Path) -> list[Path]:
    """Wheels of the dependencies, pinned to the versions the head has installed."""
    import re
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for req in _lines(read_setup(root)["options"].get("install_requires", "")):
        name = re.split(r"[<>=!~ \[;]", req, maxsplit=1)[0]
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pins.append(req)
    before = set(out.glob("*.whl"))
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check",
                        "-w", str(out), *pins], capture_output=True, text=True)
    if p.returncode != 0:
        tail = (p.stderr.strip().splitlines() or ["?"])[-1]
        raise DeployError(f"building dependency wheels failed (pip wheel {' '.join(pins)}): "
                          f"{tail}")
    return sorted(set(out.glob("*.whl")) - before or set(out.glob("*.whl")))


def plugin_wheels(out: Path) -> list[Path]:
    """Wheels of the installed distributions that declare apps (``lasair_parallel.apps`` entry
    points), so workers run the same plugin code as the head.

    A plugin installed from a local folder (pip's ``direct_url.json`` names a ``file://`` URL,
    e.g. ``pip install -e ./myplugin``) is built from that folder; any other is fetched as
    ``name==version``.  Dependencies are not bundled: the worker's pip resolves them.
    """
    import json
    from importlib import metadata
    from urllib.parse import unquote, urlparse

    from lasair_parallel.head.appload import ENTRY_POINT_GROUP

    sources: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name or name == DIST or not any(
                ep.group == ENTRY_POINT_GROUP for ep in dist.entry_points):
            continue
        url = ""
        try:
            url = json.loads(dist.read_text("direct_url.json") or "{}").get("url", "")
        except ValueError:
            pass
        sources[name] = (unquote(urlparse(url).path) if url.startswith("file://")
                         else f"{name}=={dist.version}")
    if not sources:
        return []
    out.mkdir(parents=True, exist_ok=True)
    built = []
    for name, src in sorted(sources.items()):
        before = set(out.glob("*.whl"))
        p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                            "--disable-pip-version-check", "-w", str(out), src],
                           capture_output=True, text=True)
        new = sorted(set(out.glob("*.whl")) - before)
        if p.returncode != 0 or not new:
            tail = (p.stderr.strip().splitlines() or ["?"])[-1]
            raise DeployError(f"building a wheel of the plugin {name} ({src}) failed: {tail}")
        built += new
    return built


def install_script(spec: HostSpec, version: str, wheel: str, deps: str, system_site: bool,
                   plugins: tuple[str, ...] = ()) -> str:
    """The shell script a worker runs (in its workdir or home) to install and verify."""
    q = shlex.quote
    venv = venv_dir(version)
    py = spec.python or "python3"
    venv_opts = "--system-site-packages --without-pip" if system_site else ""
    pip = f"{q(venv + '/bin/python')} -m pip install -q --disable-pip-version-check"
    wheels = f"{VENV_ROOT}/wheels"
    if deps == "none":
        install = f"{pip} --no-deps --force-reinstall {q(wheels + '/' + wheel)}"
    elif deps == "wheels":
        install = (f"{pip} --no-index --find-links {q(wheels)} --force-reinstall --no-deps "
                   f"{q(wheels + '/' + wheel)} && {pip} --no-index --find-links {q(wheels)} "
                   f"{q(wheels + '/' + wheel)}")
    else:
        install = f"{pip} --force-reinstall --no-deps {q(wheels + '/' + wheel)} && " \
                  f"{pip} {q(wheels + '/' + wheel)}"
    for plugin in plugins:  # after the project, so a plugin's requirement on it is met
        install += f" && {pip} --force-reinstall --no-deps {q(wheels + '/' + plugin)}"
        if deps == "index":
            install += f" && {pip} {q(wheels + '/' + plugin)}"
    check = f"import importlib.metadata as m; print(m.version({DIST!r}))"
    cd = f"mkdir -p {q(spec.workdir)} && cd {q(spec.workdir)} && " if spec.workdir else ""
    return (f"{cd}{{ [ -x {q(venv + '/bin/python')} ] || {q(py)} -m venv {venv_opts} "
            f"{q(venv)}; }} && {install} && {q(venv + '/bin/python')} -c {q(check)}")


def _run_ssh(spec: HostSpec, target, script: str, files: list[Path],
             verify: bool) -> tuple[int, str, str]:
    from lasair_parallel.head.connect.pssh_import import client_module

    connect = client_module().connect

    client = connect(target, verify)
    try:
        base = (spec.workdir.rstrip("/") + "/") if spec.workdir else ""
        for f in files:
            client.copy_file(str(f), f"{base}{VENV_ROOT}/wheels/{f.name}")
        out = client.run_command(script)
        client.wait_finished(out)
        stdout = "\n".join(out.stdout or [])
        stderr = "\n".join(out.stderr or [])
        rc = out.exit_code
        return (rc if rc is not None else 255), stdout, stderr
    finally:
        client.disconnect()


def deploy_host(spec: HostSpec, files: list[Path], version: str, deps: str, system_site: bool,
                ssh_config: str | None, verify: bool, plugins: tuple[str, ...] = ()) -> HostResult:
    t0 = time.monotonic()
    script = install_script(spec, version, files[0].name, deps, system_site, plugins)
    if spec.transport == "local":
        # A local worker's agent runs on the head's own interpreter: it is always in step.
        return HostResult(spec.label, True, head_version(), "(local: the head's interpreter)")
    try:
        rc, out, err = _run_ssh(spec, resolve_ssh(spec, ssh_config), script, files, verify)
    except Exception as e:  # any failure on one host is that host's result, not the deploy's
        from lasair_parallel.head.core.failures import describe_error as _describe

        return HostResult(spec.label, False, seconds=time.monotonic() - t0, error=_describe(e))
    got = (out.strip().splitlines() or [""])[-1].strip()
    res = HostResult(spec.label, rc == 0 and got == version, got or None, venv_dir(version),
                     time.monotonic() - t0)
    if rc != 0:
        res.error = f"install failed (exit {rc}): " + " | ".join(err.strip().splitlines()[-3:])
    elif got != version:
        res.error = f"venv reports version {got!r}, expected {version}"
    return res


def deploy(hosts: list[HostSpec], deps: str = "index", system_site: bool = False,
           ssh_config: str | None = None, verify: bool = True) -> tuple[str, list[HostResult]]:
    """Build and install on every host at once; return the version and per-host results."""
    root = project_root()
    version = read_setup(root)["metadata"]["version"]
    running = head_version()
    if running and running != version:
        raise DeployError(f"the head runs {DIST} {running} but {root}/setup.cfg says {version}; "
                          f"reinstall the head (pip install -e {root}) first")
    with tempfile.TemporaryDirectory(prefix="lasair-deploy-") as tmp:
        files = [build_wheel(root, Path(tmp))]
        plugins = plugin_wheels(Path(tmp) / "plugins")
        files += plugins
        if deps == "wheels":
            files += dependency_wheels(root, Path(tmp) / "deps")
        names = tuple(p.name for p in plugins)
        jobs = [gevent.spawn(deploy_host, h, files, version, deps, system_site, ssh_config,
                             verify, names) for h in hosts]
        gevent.joinall(jobs)
    return version, [j.value for j in jobs]


def render(version: str, results: list[HostResult]) -> str:
    w = max([len(r.host) for r in results] + [4])
    lines = [f"{'host':<{w}}  result  version  seconds  detail"]
    for r in results:
        detail = r.venv if r.ok else r.error
        lines.append(f"{r.host:<{w}}  {'ok' if r.ok else 'FAILED':<6}  {r.version or '-':<7}  "
                     f"{r.seconds:7.1f}  {detail}")
    ok = sum(r.ok for r in results)
    lines.append(f"deployed {DIST} {version} to {ok} of {len(results)} worker(s)")
    return "\n".join(lines)
