#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine, then run it.
#   bash scripts/test.sh [pytest args]
# Installs Debian's openssh-server (the sshd test bed), mariadb-server and galera-4 (the loader's
# database and cluster tests), GNU parallel (the dispatch benchmark's peer), chromium (the web
# view's test), slurm-wlm + munge (the Slurm transport's tests), iproute2 (network namespaces
# for jump hosts) and openssh-client (ssh-agent) when missing, then this project with its test
# extras into .venv (created when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
[ -e /usr/lib/galera/libgalera_smm.so ] || need+=(galera-4)
command -v parallel >/dev/null 2>&1 || need+=(parallel)
command -v rsync >/dev/null 2>&1 || need+=(rsync)
command -v chromium >/dev/null 2>&1 || need+=(chromium)  # the live web view's browser test
# A real one-machine Slurm for transport: slurm (tests/slurmbed.py starts it by PID)
[ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/slurmd ] && command -v srun >/dev/null 2>&1 \
  || need+=(slurm-wlm)
[ -x /usr/sbin/munged ] || need+=(munge)
command -v ip >/dev/null 2>&1 || need+=(iproute2)  # network namespaces: jump-host tests
command -v ssh-agent >/dev/null 2>&1 || need+=(openssh-client)  # ssh-agent, ssh -G
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

. scripts/venv.sh "[test]"
"$PY" -m ruff check --quiet . || { echo "ruff found problems (above)"; exit 1; }
set +e
"$PY" -m pytest "$@"
rc=$?
set -e
# pytest exits 5 when it collected no test: that is a failure here, not a pass.
exit $rc
