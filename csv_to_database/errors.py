"""Exceptions of the loader: each carries a one-line message that names the file, line and fix."""

from __future__ import annotations

from pathlib import Path


def show_path(path: str | Path) -> str:
    """A file name safe to put on one line: quoted with escapes if it has odd characters."""
    s = str(path)
    if s.isprintable() and "'" not in s and '"' not in s:
        return s
    return ascii(s)


class LoadError(Exception):
    """Base class: something the user can fix; ``str()`` is a one-line message."""


class UsageError(LoadError):
    """Bad command-line usage or unusable input (bad URL, missing table, no shards): exit 2."""


class ConnectError(UsageError):
    """No database host could be reached or the login was refused."""


class HostsUnavailable(ConnectError):
    """Every host was down or not ready (e.g. no Galera node in the primary component) for the
    whole connect window: worth retrying later, unlike a refused login."""


class RefusedFileRequest(ConnectError):
    """The server asked for a local file the loader did not ask to send (see guard.py)."""


class ShardError(LoadError):
    """One shard cannot be loaded; nothing of it was committed."""

    def __init__(self, path: str | Path, line: int | None, message: str,
                 fix: str | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.message = message
        self.fix = fix
        super().__init__(str(self))

    def __str__(self) -> str:
        where = show_path(self.path) + (f":{self.line}" if self.line else "")
        text = f"{where}: {self.message}"
        if self.fix:
            text += f" ({self.fix})"
        # one line, whatever the data put into the message
        return text.replace("\r", "\\r").replace("\n", "\\n")
