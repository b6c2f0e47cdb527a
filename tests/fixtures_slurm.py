"""pytest fixture: a real one-machine Slurm cluster (see slurmbed.py), for the whole session."""

from __future__ import annotations

import os

import pytest
from slurmbed import SlurmBed, have_slurm, start_slurm


@pytest.fixture(scope="session")
def slurm(tmp_path_factory) -> SlurmBed:
    """munged + slurmctld + slurmd on this machine; SLURM_CONF points clients at them."""
    why = have_slurm()
    if why:
        pytest.skip(why)
    bed = start_slurm(tmp_path_factory.mktemp("slurm"))
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(bed.conf)
    yield bed
    if old is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = old
    bed.stop()
