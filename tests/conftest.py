"""Fixtures shared by the suite: real sshd test hosts, a real MariaDB server."""
