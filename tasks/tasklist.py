"""Task lists: one shell command per line, as GNU parallel reads them."""

from __future__ import annotations

from pathlib import Path

from lasair_parallel.tasks.errors import UsageError
from lasair_parallel.tasks.model import Task, command_ids


class TaskListError(UsageError):
    """A task list that cannot be used; the message names the file, the line and the fix."""


def read_task_list(path: str | Path) -> list[Task]:
    """Read ``path``: one command per line; blank lines and lines starting with ``#`` skipped.

    A line may end in a backslash to continue on the next line.  Commands must be valid UTF-8
    text without NUL bytes (a shell cannot run those).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TaskListError(
            f"{path}: no such task list; give a file with one command per line") from None
    except OSError as e:
        raise TaskListError(f"{path}: cannot read task list ({e.strerror})") from None
    if raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 BOM (Windows editors): not part of a command
        raw = raw[3:]
    commands: list[str] = []
    pending = ""
    pending_line = 0
    blines = raw.split(b"\n")
    if blines and blines[-1] == b"":
        blines.pop()  # the file's final newline ends the last line; it is not a line itself
    for lineno, bline in enumerate(blines, 1):
        if b"\0" in bline:
            raise TaskListError(f"{path}:{lineno}: NUL byte in a command; remove it")
        try:
            line = bline.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            raise TaskListError(
                f"{path}:{lineno}: not UTF-8 text; save the task list as UTF-8"
            ) from None
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if not pending:
            pending_line = lineno
        if line.endswith("\\"):
            pending += line[:-1] + "\n"
            continue
        commands.append((pending + line).strip())
        pending = ""
    if pending:
        raise TaskListError(
            f"{path}:{pending_line}: the last command ends in a backslash with nothing after it; "
            "remove the trailing backslash"
        )
    if not commands:
        raise TaskListError(f"{path}: no commands in the task list; put one command per line")
    return [Task(id=i, command=c) for i, c in zip(command_ids(commands), commands)]
