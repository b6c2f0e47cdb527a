"""parallel-ssh imported without running git.

parallel-ssh 2.16's wheel ships versioneer's unexpanded ``pssh/_version.py``: ``import pssh``
looks its own version up by running ``git`` in its installed folder.  In a venv inside a git
clone (the quick start's ``.venv`` in this project's checkout) that is six git processes,
and the version they find is the clone's, not parallel-ssh's; elsewhere one git process that
fails.  Measured: ``import pssh.clients.native.single`` took 69-85 ms, 44-62 ms with the
lookup replaced (medians of 10 fresh interpreters, this machine).  The replacement answers
from the name of parallel-ssh's own ``*.dist-info`` folder, without importing
importlib.metadata (~8 ms).
"""

from __future__ import annotations

import os
import sys
import types
from importlib.util import find_spec

DIST_PREFIX = "parallel_ssh-"


def installed_version() -> str:
    """parallel-ssh's version from its dist-info folder's name ("0+unknown" if none)."""
    spec = find_spec("pssh")
    if spec is None or not spec.submodule_search_locations:
        return "0+unknown"
    where = os.path.dirname(next(iter(spec.submodule_search_locations)))
    try:
        names = os.listdir(where)
    except OSError:
        return "0+unknown"
    for name in sorted(names):
        if name.startswith(DIST_PREFIX) and name.endswith(".dist-info"):
            return name[len(DIST_PREFIX):-len(".dist-info")]
    return "0+unknown"


def quiet_version() -> None:
    """Before parallel-ssh is first imported: give it a ``pssh._version`` that runs no git."""
    if "pssh" in sys.modules or "pssh._version" in sys.modules:
        return
    version = installed_version()
    stub = types.ModuleType("pssh._version")
    stub.get_versions = lambda: {"version": version, "full-revisionid": None, "dirty": None,
                                 "error": None, "date": None}
    sys.modules["pssh._version"] = stub


def client_module() -> types.ModuleType:
    """:mod:`lasair_parallel.head.connect.sshclient` (parallel-ssh's client), imported once
    with the git lookup replaced."""
    quiet_version()
    from lasair_parallel.head.connect import sshclient

    return sshclient
