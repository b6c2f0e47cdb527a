"""Finding apps: built-in, installed plugins, importable modules and folders anywhere.

An app is a package (or a plain folder) holding ``app.py`` (the planner, run on the head) and
``task.py`` (run on a worker for each task); the contract is :class:`lasair_parallel.tasks.app.App`.
A spec names one of them:

``busy``, ``apps/busy``
    a built-in app (``lasair_parallel.apps.busy``) or an installed plugin: a distribution
    declaring ``name = package`` in the entry-point group :data:`ENTRY_POINT_GROUP`;
``./path/to/app``, ``/abs/path``, ``~/app``, ``apps/mine`` (a folder that is not a built-in)
    a folder with app.py and task.py;
``mypkg.myapp``
    an importable package with ``app`` and ``task`` modules.

A folder's code (and that of a module app not installed in site-packages) is copied into the
run directory as a content-hashed snapshot, ``code/<name>-<sha>/``; its files are inputs of
every task, so workers that do not share the head's files are sent them, and a changed app
lands under a new name: a worker never runs a stale copy.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import shutil
import sys
import sysconfig
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from lasair_parallel.tasks.app import APP_NAME, AppError, PlanContext

ENTRY_POINT_GROUP = "lasair_parallel.apps"
BUILTIN_PACKAGE = "lasair_parallel.apps"
# A snapshot is code, not data: past this the user most likely pointed at a data folder.
SNAPSHOT_MAX_BYTES = 50 << 20
_SKIP_DIRS = {"__pycache__", ".git", ".hg", ".svn", ".mypy_cache", ".pytest_cache",
              ".ruff_cache", ".venv", "venv", "node_modules"}
_SKIP_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class AppRef:
    """Where an app comes from and how its tasks are started."""

    name: str  # run names and `parallel apps` use it
    origin: str  # "built-in", "plugin (dist 1.0)", "module", "folder /abs/path"
    package: str | None  # importable package (None for a folder app)
    folder: Path  # the app's source folder
    snapshot: bool  # its code travels with the run
    description: str = ""
    aliases: tuple[str, ...] = field(default=())


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0].strip() if (doc or "").strip() else ""


def _builtins() -> dict[str, AppRef]:
    from lasair_parallel import apps

    root = Path(apps.__file__).parent
    out = {}
    for p in sorted(root.glob("*/app.py")):
        name = p.parent.name
        out[name] = AppRef(name=name, origin="built-in", package=f"{BUILTIN_PACKAGE}.{name}",
                           folder=p.parent, snapshot=False,
                           description=_doc_of_folder(p.parent))
    return out


def _doc_of_folder(folder: Path) -> str:
    """The first docstring line of app.py (else __init__.py), read without importing it."""
    import ast

    for f in (folder / "app.py", folder / "__init__.py"):
        try:
            doc = ast.get_docstring(ast.parse(f.read_text("utf-8")))
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        if doc:
            return _first_line(doc)
    return ""


def _plugins() -> list[tuple[str, str, str]]:
    """``(name, package, distribution)`` for each entry point in our group."""
    from importlib import metadata  # ~10 ms: only runs that name an app by its plugin name

    eps = metadata.entry_points()
    group = eps.select(group=ENTRY_POINT_GROUP) if hasattr(eps, "select") else \
        eps.get(ENTRY_POINT_GROUP, [])  # pragma: no cover - Python < 3.10
    out = []
    for ep in group:
        dist = getattr(ep, "dist", None)
        label = f"{dist.metadata['Name']} {dist.version}" if dist is not None else "?"
        out.append((ep.name, ep.value.split(":")[0].strip(), label))
    return out


def available() -> list[AppRef]:
    """Built-in apps and installed plugins (folders and modules are not listed: name them)."""
    refs = dict(_builtins())
    for name, package, dist in _plugins():
        if name in refs:
            raise AppError(f"two apps named {name!r}: {refs[name].origin} and plugin {dist} "
                           f"({package}); uninstall one")
        refs[name] = _package_ref(package, name, f"plugin ({dist})")
    return [refs[k] for k in sorted(refs)]


def _package_ref(package: str, name: str, origin: str) -> AppRef:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError) as e:
        raise AppError(f"app {name!r}: cannot find package {package!r} ({e})") from None
    if spec is None or not spec.submodule_search_locations:
        raise AppError(f"app {name!r}: {package!r} is not an importable package "
                       "(an app is a package with app.py and task.py)")
    folder = Path(list(spec.submodule_search_locations)[0])
    return AppRef(name=name, origin=origin, package=package, folder=folder,
                  snapshot=origin == "module" and not _installed(folder),
                  description=_doc_of_folder(folder))


def _installed(folder: Path) -> bool:
    """Whether ``folder`` lies in an installed site-packages (workers get it by deploy)."""
    f = folder.resolve()
    for key in ("purelib", "platlib"):
        lib = Path(sysconfig.get_paths()[key]).resolve()
        if f == lib or lib in f.parents:
            return True
    return False


def resolve(spec: str) -> AppRef:
    """Which app ``spec`` names; :class:`AppError` with the fix when none."""
    s = spec.strip()
    if not s:
        raise AppError("empty app name: use e.g. apps/busy, ./path/to/app or mypkg.myapp")
    plain = s.rstrip("/")
    short = plain[len("apps/"):] if plain.startswith("apps/") else plain
    explicit_path = s.startswith(("./", "../", "/", "~")) or s in (".", "..")
    if not explicit_path and APP_NAME.match(short):
        known = {r.name: r for r in available()}
        if short in known:
            return known[short]
        if plain == short or not Path(s).expanduser().is_dir():  # no app by that name
            raise AppError(f"no app named {short!r}: choose one of {', '.join(sorted(known))}, "
                           "or give a folder (./path/to/app) or a module (mypkg.myapp)")
    path = Path(s).expanduser()
    if explicit_path or "/" in s or path.is_dir():
        return _folder_ref(path, spec)
    if all(APP_NAME.match(part) for part in plain.split(".")):
        return _package_ref(plain, plain.rsplit(".", 1)[-1], "module")
    raise AppError(f"{spec!r} is not an app: use apps/<name>, ./path/to/app or mypkg.myapp")


def _folder_ref(path: Path, spec: str) -> AppRef:
    if not path.is_dir():
        raise AppError(f"{spec}: no such folder; an app folder holds app.py and task.py")
    folder = path.resolve()
    for f in ("app.py", "task.py"):
        if not (folder / f).is_file():
            raise AppError(f"{spec}: no {f} in the folder; an app folder holds app.py (the "
                           "planner) and task.py (one task)")
    name = folder.name if APP_NAME.match(folder.name) else "app"
    return AppRef(name=name, origin=f"folder {folder}", package=None, folder=folder,
                  snapshot=True, description=_doc_of_folder(folder))


def import_planner(ref: AppRef) -> ModuleType:
    """Import the app's planner and check it provides the contract's functions."""
    try:
        if ref.package is not None:
            mod = importlib.import_module(f"{ref.package}.app")
        else:
            mod = _import_folder_planner(ref.folder)
    except AppError:
        raise
    except ModuleNotFoundError as e:
        if ref.package and e.name in (ref.package, f"{ref.package}.app"):
            raise AppError(f"app {ref.name!r}: {ref.package}.app not found; an app package "
                           "holds app.py and task.py") from None
        raise AppError(_user_error(ref, e)) from None
    except Exception as e:  # the user's own code failed while importing: show where
        raise AppError(_user_error(ref, e)) from None
    for attr in ("build_parser", "plan"):
        if not callable(getattr(mod, attr, None)):
            raise AppError(f"app {ref.name!r}: {ref.folder / 'app.py'} has no {attr}(); "
                           "see the app contract in the README")
    return mod


def _import_folder_planner(folder: Path) -> ModuleType:
    digest = hashlib.sha1(str(folder).encode()).hexdigest()[:10]
    modname = f"_lasair_parallel_app_{digest}"
    if modname in sys.modules:
        return sys.modules[modname]
    # The planner may import its own sibling modules, as task.py does on the worker.
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(modname, folder / "app.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[modname]
        raise
    return mod


def _user_error(ref: AppRef, e: BaseException) -> str:
    """One line: the innermost frame of the user's code and the exception."""
    frames = traceback.extract_tb(e.__traceback__)
    mine = [f for f in frames if str(ref.folder) in f.filename] or frames[-1:]
    where = f"{mine[-1].filename}:{mine[-1].lineno}: " if mine else ""
    if isinstance(e, SyntaxError) and e.filename:
        where = f"{e.filename}:{e.lineno}: "
    return f"app {ref.name!r} failed to import: {where}{type(e).__name__}: {e}"


def snapshot(ref: AppRef, run_dir: Path) -> tuple[str, tuple[str, ...]]:
    """Copy the app's code into ``run_dir/code/<name>-<sha>``; ``(sys.path entry, files)``.

    A folder app's files land directly under the snapshot (task.py is then the module
    ``task``); a module app's top-level package lands under it (so ``mypkg.myapp.task``).
    The name holds a digest of every file's path and bytes, so an edit gives a new snapshot.
    """
    if ref.package is None:
        src, prefix = ref.folder, ""
    else:
        top = ref.package.split(".")[0]
        spec = importlib.util.find_spec(top)
        src, prefix = Path(list(spec.submodule_search_locations)[0]), top + "/"
    files = []
    total = 0
    for p in sorted(src.rglob("*")):
        rel = p.relative_to(src)
        if any(part in _SKIP_DIRS or part.startswith(".") for part in rel.parts):
            continue
        if not p.is_file() or p.name.endswith(_SKIP_SUFFIXES):
            continue
        data = p.read_bytes()
        total += len(data)
        if total > SNAPSHOT_MAX_BYTES:
            raise AppError(f"{src}: more than {SNAPSHOT_MAX_BYTES >> 20} MB of files; an app "
                           "folder holds code: pass data files as the app's inputs instead")
        files.append((prefix + rel.as_posix(), data))
    h = hashlib.sha256()
    for rel, data in files:
        h.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    dest = run_dir / "code" / f"{ref.name}-{h.hexdigest()[:12]}"
    if not dest.is_dir():
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        for rel, data in files:
            out = tmp / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
        tmp.mkdir(parents=True, exist_ok=True)
        tmp.rename(dest)  # whole or absent: a crash mid-copy leaves only the .tmp
    return str(dest), tuple(str(dest / rel) for rel, _ in files)


def plan_context(ref: AppRef, run_dir: Path, slots: int, hosts: int) -> PlanContext:
    """The context a planner gets: where outputs go, and how to start this app's task."""
    run_dir = run_dir.resolve()
    if ref.snapshot:
        path, files = snapshot(ref, run_dir)
        module = "task" if ref.package is None else f"{ref.package}.task"
    else:
        path, files, module = None, (), f"{ref.package}.task"
    return PlanContext(run_dir=run_dir, slots=slots, hosts=hosts, task_module=module,
                       code_path=path, code_files=files)
