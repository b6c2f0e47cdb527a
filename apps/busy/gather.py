"""busy's gather task: count the outputs the other tasks wrote, into ``gather.txt``.

``python -m lasair_parallel.apps.busy.gather --dir RUN/out --out RUN/out/gather.txt``; planned
by ``busy --gather`` after every other task, with their outputs as its inputs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lasair_parallel.tasks.outputs import atomic_write


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lasair_parallel.apps.busy.gather")
    p.add_argument("--dir", required=True, help="folder of the busy-*.txt outputs")
    p.add_argument("--out", required=True, help="where to write the count")
    a = p.parse_args(argv)
    found = sorted(Path(a.dir).glob("busy-*.txt"))
    with atomic_write(a.out) as f:
        f.write(f"{len(found)}\n")
    print(f"busy gather: {len(found)} output(s) in {a.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
