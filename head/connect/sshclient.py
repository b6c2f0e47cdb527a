"""One parallel-ssh connection, with TCP_NODELAY and host-key checking.

parallel-ssh never sets TCP_NODELAY (Nagle + delayed ACK cost ~42 ms per message on loopback)
and never checks host keys (../shared/notes/anchors.md section 3); both are added here, in the
handshake, before any credential is sent.
"""

from __future__ import annotations

import base64
import logging
import os
import socket

from lasair_parallel.head.connect.hosts import SSHTarget
from lasair_parallel.head.connect.transport import quickack
from pssh.clients.native.single import THREAD_POOL, SSHClient
from ssh2 import knownhost as kh
from ssh2 import session as ss

log = logging.getLogger(__name__)

_KEYTYPES = {
    ss.LIBSSH2_HOSTKEY_TYPE_RSA: kh.LIBSSH2_KNOWNHOST_KEY_SSHRSA,
    ss.LIBSSH2_HOSTKEY_TYPE_DSS: kh.LIBSSH2_KNOWNHOST_KEY_SSHDSS,
    ss.LIBSSH2_HOSTKEY_TYPE_ECDSA_256: kh.LIBSSH2_KNOWNHOST_KEY_ECDSA_256,
    ss.LIBSSH2_HOSTKEY_TYPE_ECDSA_384: kh.LIBSSH2_KNOWNHOST_KEY_ECDSA_384,
    ss.LIBSSH2_HOSTKEY_TYPE_ECDSA_521: kh.LIBSSH2_KNOWNHOST_KEY_ECDSA_521,
    ss.LIBSSH2_HOSTKEY_TYPE_ED25519: kh.LIBSSH2_KNOWNHOST_KEY_ED25519,
}


class HostKeyError(Exception):
    """The worker's host key is unknown or has changed."""


class _Client(SSHClient):
    """parallel-ssh's native client, checking the host key right after the key exchange."""

    def __init__(self, *args, known_hosts=(), verify=True, sock=None, **kwargs):
        self._known_hosts = known_hosts
        self._verify = verify
        self._given_sock = sock  # a jump host's channel (head/connect/jump.py), or None
        super().__init__(*args, **kwargs)

    def _connect(self, host, port, retries=1):
        if self._given_sock is None:
            return super()._connect(host, port, retries)
        self.sock = self._given_sock

    def _init_session(self, retries=1):
        # Small messages both ways (one JSON line per task event): disable Nagle's algorithm.
        if self.sock.family != socket.AF_UNIX:  # a jump host's socket pair has no TCP
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super()._init_session(retries)
        if self._verify:
            check_host_key(self.session, self.host, self.port, self._known_hosts)

    def poll(self, timeout=None):
        # Every blocking step after the handshake (opening the channel, the exec request)
        # waits here between libssh2's reads.  sshd leaves Nagle on for sessions without a
        # pty: after its post-login messages it holds the channel confirmation until the head
        # ACKs them, and Linux delays that ACK up to 40 ms (strace: the channel open took
        # 43 ms on loopback).  Acknowledging what was read before waiting sends it at once.
        quickack(self.sock)
        super().poll(timeout)

    def _auth_retry(self, retries=1):
        # parallel-ssh runs the handshake in gevent's thread pool but authenticates in the
        # calling thread with the session still blocking: each host's auth round trips then
        # stalled every other greenlet, and 4 hosts authenticated one after another (the 4th
        # ~60 ms after the 1st, measured on loopback).  In the pool (ssh2-python releases the
        # GIL in libssh2 calls) they overlap; the session is this client's alone meanwhile.
        THREAD_POOL.apply(super()._auth_retry, (retries,))


def check_host_key(session, host: str, port: int, known_hosts) -> None:
    """Raise HostKeyError unless ``host``'s key is in one of the ``known_hosts`` files."""
    key, ktype = session.hostkey()
    store = session.knownhost_init()
    files = [f for f in known_hosts if os.path.exists(f)]
    where = host if port == 22 else f"[{host}]:{port}"
    revoked = find_revoked(files, key)
    if revoked:
        raise HostKeyError(
            f"host key for {where} is REVOKED ({revoked}); the host must get a new key, "
            "then add that one to known_hosts")
    for f in files:
        try:
            store.readfile(f)
        except Exception as e:  # libssh2 rejects some lines (e.g. @cert-authority)
            log.debug("known_hosts %s: %s", f, e)
    mask = (kh.LIBSSH2_KNOWNHOST_TYPE_PLAIN | kh.LIBSSH2_KNOWNHOST_KEYENC_RAW
            | _KEYTYPES.get(ktype, kh.LIBSSH2_KNOWNHOST_KEY_UNKNOWN))
    try:
        store.checkp(host.encode(), port, key, mask)
    except Exception as e:
        name = type(e).__name__
        if "MisMatch" in name:
            raise HostKeyError(
                f"host key for {where} has CHANGED (possible man-in-the-middle); check it and "
                f"fix {files[0] if files else '~/.ssh/known_hosts'}"
            ) from None
        raise HostKeyError(
            f"host key for {where} is not in {', '.join(files) or '~/.ssh/known_hosts'}; "
            f"add it (ssh-keyscan -p {port} {host} >> ~/.ssh/known_hosts) or pass "
            "--no-host-key-check"
        ) from None


def find_revoked(files: list[str], key: bytes) -> str:
    """``file:line`` of a ``@revoked`` known_hosts entry for ``key``, or "".

    OpenSSH never accepts a key marked ``@revoked`` (sshd(8), SSH_KNOWN_HOSTS FILE FORMAT);
    libssh2 does not know the marker.  A revoked key is refused whatever host patterns its
    line names: a key revoked for one name is not trusted under another.
    """
    b64 = base64.b64encode(key).decode()
    for f in files:
        try:
            with open(f, encoding="utf-8", errors="replace") as fh:
                for n, line in enumerate(fh, 1):
                    fields = line.split()
                    if len(fields) >= 4 and fields[0] == "@revoked" and fields[3] == b64:
                        return f"{f}:{n}"
        except OSError:
            continue
    return ""


def connect(target: SSHTarget, verify_host_key: bool = True, timeout: float = 15.0) -> SSHClient:
    """An authenticated, non-blocking connection to ``target``."""
    pkey = target.identities[0] if target.identities else None
    # No key file configured or found: use the user's ssh-agent, as ssh would (the keys
    # stay in the agent; libssh2 asks it to sign).  With a key file, that key alone.
    agent = pkey is None and bool(os.environ.get("SSH_AUTH_SOCK"))
    sock = jump_proc = None
    if target.jump:
        from lasair_parallel.head.connect.jump import master_for

        master = master_for(target.jump, target.ssh_config, target.identities,
                            verify_host_key)
        sock, jump_proc = master.open_socket(target.hostname, target.port)
    elif target.proxy_command:
        from lasair_parallel.head.connect.jump import proxy_socket

        sock, jump_proc = proxy_socket(target.proxy_command, target.hostname, target.port,
                                       target.user)
    client = _Client(
        target.hostname, user=target.user, port=target.port, pkey=pkey,
        num_retries=1, timeout=timeout, allow_agent=agent,
        identity_auth=pkey is None,
        keepalive_seconds=0,  # our agent's heartbeats do this job; a keepalive greenlet would
        # touch the session behind the pump's back
        known_hosts=target.known_hosts, verify=verify_host_key, sock=sock,
    )
    client.jump_proc = jump_proc  # the mux client carrying it: ends when the socket closes
    return client
