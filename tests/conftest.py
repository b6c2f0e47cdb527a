"""Fixtures shared by the suite: real sshd test hosts, a real MariaDB server."""

from fixtures_mariadb import galera_cluster, mariadb_server  # noqa: F401
from fixtures_sshd import fresh_bed, sshbed  # noqa: F401
