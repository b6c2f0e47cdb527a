# Sourced by quickstart.sh and test.sh: use this checkout's virtual environment, making it
# first when missing.  Debian's own python3 refuses `pip install` outside a venv (PEP 668),
# so both README commands always work in one.  Set LASAIR_VENV to use another folder.
#   usage: . scripts/venv.sh EXTRAS     (EXTRAS: "" or "[test]")
set -euo pipefail
VENV="${LASAIR_VENV:-.venv}"
_extras="${1:-}"
_sudo() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ! -x "$VENV/bin/python" ]; then
  if ! python3 -c "import ensurepip, venv" >/dev/null 2>&1; then
    echo "installing python3-venv (Debian splits venv out of python3)"
    _sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive _sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  fi
  echo "creating the virtual environment $VENV ($(python3 --version)); later runs reuse it"
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
export PATH="$PWD/$VENV/bin:$PATH"
# Install (again) only when the project's metadata changed since the last install.
_stamp="$VENV/.installed${_extras//[^a-z]/-}"
if [ ! -f "$_stamp" ] || [ setup.cfg -nt "$_stamp" ] || [ pyproject.toml -nt "$_stamp" ]; then
  echo "installing lasair-parallel$_extras into $VENV"
  "$PY" -m pip install -q --disable-pip-version-check -e ".$_extras"
  touch "$_stamp"
else
  echo "using $VENV (lasair-parallel$_extras already installed)"
fi
# Byte-compile the project's own modules: an editable install leaves them as source, and
# where PYTHONDONTWRITEBYTECODE is set (this CI image, some clusters) Python never caches them,
# so every command and every app task recompiled them: ~0.04 s of a `parallel run`'s start
# (benchmarks/startend.py), half the time outside the task of a one-task rebuild_objects run
# (1.29 -> 0.65 s, benchmarks/rebuild_live.py).  Up-to-date files are skipped (~0.05 s).
"$PY" -m compileall -q head tasks apps csv_to_database lasair_parallel >/dev/null
