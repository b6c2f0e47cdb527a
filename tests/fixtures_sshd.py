"""pytest fixtures for the SSH test bed (see sshbed.py)."""

from __future__ import annotations

import itertools

import pytest
from sshbed import SSHBed, start_bed

_next_addr = itertools.count(10, 4)  # destructive tests get fresh hosts at 127.0.0.10, .14, ...


@pytest.fixture(scope="session")
def sshbed(tmp_path_factory) -> SSHBed:
    """Four sshd hosts on 127.0.0.2-5, shared by tests that do not break them."""
    bed = start_bed(tmp_path_factory.mktemp("sshbed"), n=4, first=2)
    yield bed
    bed.stop()


@pytest.fixture
def fresh_bed(tmp_path_factory) -> SSHBed:
    """Three sshd hosts of the test's own, for tests that kill or freeze them."""
    bed = start_bed(tmp_path_factory.mktemp("freshbed"), n=3, first=next(_next_addr))
    yield bed
    bed.stop()
