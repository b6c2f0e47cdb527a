"""The ``slurm:`` options of a ``transport: slurm`` worker in hosts.yaml, checked.

```yaml
- host: cluster            # a label for status and the journal
  transport: slurm
  procs: 8                 # slots: 1-core tasks at once (a task with cores: 4 takes 4)
  slurm:
    partition: main
    account: astro
    qos: normal
    time: "2:00:00"        # the allocation's time limit (salloc --time)
    cpus_per_task: 1       # a slot's CPUs (a task's default --cpus-per-task)
    mem_per_task: 2G       # a task's default --mem (K, M, G, T; a bare number is MiB)
    srun_args: [--constraint=avx2]   # extra arguments for every step (and the allocation)
```
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from lasair_parallel.tasks.errors import UsageError

KEYS = {"partition", "account", "qos", "time", "cpus_per_task", "mem_per_task", "srun_args"}
_MEM = re.compile(r"^(\d+)\s*([KMGT]?)B?$", re.IGNORECASE)
_UNIT_MB = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}


@dataclass(frozen=True)
class SlurmOptions:
    """Where and how a Slurm worker's allocation and steps are requested."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str | None = None
    cpus_per_task: int = 1
    mem_per_task_mb: int | None = None
    srun_args: tuple[str, ...] = ()

    def allocation_args(self) -> list[str]:
        """salloc/srun options shared by the allocation and its steps' identity."""
        args = []
        for flag, v in (("--partition", self.partition), ("--account", self.account),
                        ("--qos", self.qos)):
            if v:
                args.append(f"{flag}={v}")
        return args


def memory_mb(value: object) -> int:
    """'512M', '2G', 2048 (MiB) -> MiB; ValueError when unreadable."""
    if isinstance(value, bool):
        raise ValueError(value)
    m = _MEM.match(str(value).strip())
    if not m:
        raise ValueError(value)
    mb = int(int(m[1]) * _UNIT_MB[m[2].upper()])
    if mb < 1:
        raise ValueError(value)
    return mb


def parse_slurm_options(where: str, value: object) -> SlurmOptions:
    """The ``slurm:`` mapping of one worker; UsageError naming ``where`` and the fix."""
    if value is None:
        return SlurmOptions()
    if not isinstance(value, dict):
        raise UsageError(f"{where}: `slurm:` must be a mapping (e.g. `partition: main`)")
    value = {k: v for k, v in value.items() if k != "__line__"}
    unknown = set(value) - KEYS
    if unknown:
        raise UsageError(f"{where}: unknown slurm option {sorted(unknown)[0]!r}; use one of "
                         f"{', '.join(sorted(KEYS))}")
    strs = {}
    for key in ("partition", "account", "qos", "time"):
        v = value.get(key)
        if v is not None:
            if not isinstance(v, (str, int)) or isinstance(v, bool) or not str(v).strip():
                raise UsageError(f"{where}: slurm {key} must be a word, not {v!r}")
            strs[key] = str(v).strip()
    cpt = value.get("cpus_per_task", 1)
    if isinstance(cpt, bool) or not isinstance(cpt, int) or cpt < 1:
        raise UsageError(f"{where}: slurm cpus_per_task must be a whole number >= 1, not {cpt!r}")
    mem = None
    if value.get("mem_per_task") is not None:
        try:
            mem = memory_mb(value["mem_per_task"])
        except ValueError:
            raise UsageError(f"{where}: slurm mem_per_task {value['mem_per_task']!r} is not a "
                             "memory size; write e.g. 512M or 2G") from None
    extra = value.get("srun_args") or ()
    if isinstance(extra, str):
        extra = shlex.split(extra)
    if not isinstance(extra, (list, tuple)) or not all(isinstance(a, str) for a in extra):
        raise UsageError(f"{where}: slurm srun_args must be a list of arguments")
    return SlurmOptions(cpus_per_task=cpt, mem_per_task_mb=mem, srun_args=tuple(extra), **strs)
