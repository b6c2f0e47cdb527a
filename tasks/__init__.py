"""The task model shared by the head and the apps: plain data, no I/O at import time."""

from lasair_parallel.tasks import split
from lasair_parallel.tasks.model import Task, python_command

__all__ = ["Task", "python_command", "split"]
