#!/usr/bin/env bash
# Set up and run the main job on embedded defaults, on a fresh machine:
#   bash scripts/quickstart.sh
# installs this project into .venv (created when missing), rebuilds Lasair object features from the bundled real ZTF light
# curves on the workers in hosts.yaml (this machine, as local subprocesses), and loads the
# CSV shards into SQLite (lasair.db).  Rerunning it is safe: finished tasks and loaded shards
# are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh ""
parallel run apps/rebuild_objects --workers hosts.yaml
csv_to_database runs/rebuild_objects/shards --db sqlite:///lasair.db --table objects --create
"$PY" - <<'PY'
import sqlite3
db = sqlite3.connect("lasair.db")
n, = db.execute("SELECT COUNT(*) FROM objects").fetchone()
print(f"lasair.db: {n} objects; the five with most detections:")
for row in db.execute("SELECT objectId, ncand, ramean, decmean, gmag, rmag FROM objects "
                      "ORDER BY ncand DESC LIMIT 5"):
    print("  ", row)
PY
