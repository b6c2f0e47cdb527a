"""Apps through the real runner over the sshd bed, then into a database with csv_to_database.

The same app run three ways (one local slot; four SSH hosts sharing the head's files; four SSH
hosts with directories of their own, outputs copied back) must give byte-identical outputs.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from helpers import parallel

REBUILD = ["--", "--source", "synthetic:1500", "--task-seconds", "1", "--rate", "1500"]


def shards(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run / "shards").glob("*.csv"))}


def test_rebuild_objects_distributed_equals_local_and_loads(sshbed, tmp_path):
    local = parallel("run", "apps/rebuild_objects", "--procs", "1", "--name", "local", "-q",
                     *REBUILD, cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    ref = shards(tmp_path / "runs" / "local")
    assert len(ref) >= 4  # the planner split the work into several tasks

    shared = sshbed.write_hosts_yaml(tmp_path / "shared.yaml", procs=2, shared_fs=True)
    p = parallel("run", "apps/rebuild_objects", "--workers", shared, "--ssh-config",
                 sshbed.ssh_config, "--name", "ssh", "-q", *REBUILD, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert shards(tmp_path / "runs" / "ssh") == ref

    own = sshbed.write_hosts_yaml(tmp_path / "own.yaml", procs=2, shared_fs=False,
                                  workdir=tmp_path / "worker-home")
    p = parallel("run", "apps/rebuild_objects", "--workers", own, "--ssh-config",
                 sshbed.ssh_config, "--name", "copied", "-q", *REBUILD, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert shards(tmp_path / "runs" / "copied") == ref

    # Streamed over the channel instead of written on the worker: the same shards.
    p = parallel("run", "apps/rebuild_objects", "--workers", own, "--ssh-config",
                 sshbed.ssh_config, "--name", "streamed", "-q", *REBUILD, "--stream",
                 cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert shards(tmp_path / "runs" / "streamed") == ref

    db = tmp_path / "lasair.db"
    load = subprocess.run(
        [sys.executable, "-m", "lasair_parallel.csv_to_database.cli", str(tmp_path / "runs" / "ssh" / "shards"),
         "--db", f"sqlite:///{db}", "--table", "objects", "--create"],
        capture_output=True, text=True, cwd=tmp_path)
    assert load.returncode == 0, load.stderr
    n_rows = sum(len(b.splitlines()) - 1 for b in ref.values())
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*) FROM objects").fetchone()[0] == n_rows == 1500


def test_scarp_search_distributed_equals_local(sshbed, tmp_path):
    import lasair_parallel.apps.scarp_search as pkg
    dem = Path(pkg.__file__).parent / "data" / "synthetic.tif"
    grid = ["--", "--dem", str(dem), "--d", "20", "--angle-step", "30", "--log-kt-min", "0.5",
            "--log-kt-max", "1.5", "--log-kt-step", "0.5"]
    local = parallel("run", "apps/scarp_search", "--procs", "1", "--name", "local", "-q", *grid,
                     cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    own = sshbed.write_hosts_yaml(tmp_path / "own.yaml", procs=2, shared_fs=False,
                                  workdir=tmp_path / "worker-home")
    p = parallel("run", "apps/scarp_search", "--workers", own, "--ssh-config", sshbed.ssh_config,
                 "--name", "ssh", "-q", *grid, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    a, b = tmp_path / "runs" / "local", tmp_path / "runs" / "ssh"
    assert (a / "detections.csv").read_bytes() == (b / "detections.csv").read_bytes()
    import rasterio

    with rasterio.open(a / "best_fit.tif") as ra, rasterio.open(b / "best_fit.tif") as rb:
        import numpy as np

        assert np.array_equal(ra.read(), rb.read(), equal_nan=True)
        assert ra.transform == rb.transform
