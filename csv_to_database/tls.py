"""TLS for MySQL connections, read as the mysql client reads it: ``ssl-mode``, ``ssl-ca``,
``ssl-capath``, ``ssl-cert``, ``ssl-key`` (and MariaDB's ``ssl-verify-server-cert``), from the
``--db`` URL's query (``?ssl-mode=VERIFY_IDENTITY&ssl-ca=/etc/ca.pem``) or the option file's
``[client]`` section; the URL wins.

We build the :class:`ssl.SSLContext` ourselves instead of handing the options to pymysql:
pymysql given only ``ssl_ca`` sets ``CERT_NONE``, i.e. encrypts without checking anything.

Modes (the mysql client's):

* ``DISABLED``: plain TCP.
* ``PREFERRED`` (default without a CA): TLS if the server offers it, certificate not checked.
* ``REQUIRED``: TLS or fail; the certificate is checked against ``ssl-ca`` if one is given.
* ``VERIFY_CA`` (default when ``ssl-ca``/``ssl-capath`` is given): TLS, certificate signed by
  the CA (the system's CAs without ``ssl-ca``), host name not checked.
* ``VERIFY_IDENTITY``: as ``VERIFY_CA`` and the certificate must name the host connected to.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lasair_parallel.csv_to_database.errors import UsageError, show_path

MODES = ("DISABLED", "PREFERRED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY")
_FILES = ("ssl_ca", "ssl_capath", "ssl_cert", "ssl_key")
_KEYS = (*_FILES, "ssl_mode", "ssl_verify_server_cert")
_TRUE = ("", "1", "on", "true", "yes")  # a bare ``ssl-verify-server-cert`` line means on


@dataclass(frozen=True)
class TLS:
    """Resolved TLS settings for one target (files already checked to exist)."""

    mode: str = "PREFERRED"
    ca: str | None = None
    capath: str | None = None
    cert: str | None = None
    key: str | None = None

    @property
    def required(self) -> bool:
        """True when a connection without TLS must be refused."""
        return self.mode not in ("DISABLED", "PREFERRED")

    def context(self) -> ssl.SSLContext | None:
        """The client context for this mode, or None for ``DISABLED``."""
        if self.mode == "DISABLED":
            return None
        verify = self.mode in ("VERIFY_CA", "VERIFY_IDENTITY") or bool(self.ca or self.capath)
        try:
            if verify:
                ctx = ssl.create_default_context(cafile=self.ca, capath=self.capath)
            else:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        except (ssl.SSLError, OSError) as e:
            raise _unusable("ssl-ca", self.ca or self.capath or "(system CAs)", e) from None
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # older ones are broken
        ctx.check_hostname = self.mode == "VERIFY_IDENTITY"  # before CERT_NONE: ssl insists
        ctx.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
        if self.cert:
            try:
                ctx.load_cert_chain(self.cert, keyfile=self.key)
            except (ssl.SSLError, OSError) as e:
                raise _unusable("ssl-cert/ssl-key", f"{self.cert} {self.key or ''}".strip(),
                                e) from None
        return ctx


def _unusable(what: str, files: str, e: BaseException) -> UsageError:
    reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or str(e)
    return UsageError(f"TLS: cannot use {what} {show_path(files)} ({reason}); give PEM files "
                      "(in --db ?ssl-...= or the option file's [client])")


def tls_options(url_params: Mapping[str, str], file_opts: Mapping[str, str]) -> TLS:
    """TLS settings from the URL's query (first) and the option file's ``[client]`` (second).

    Keys may be spelt ``ssl-mode`` or ``ssl_mode``. An unknown ``ssl...`` key in the URL is
    refused (a typo there would silently weaken security); the option file is shared with
    the mysql client, so its other ``ssl-*`` options (``ssl-cipher``, ...) are left alone.
    """
    url = {k.replace("-", "_").lower(): v for k, v in url_params.items()}
    for k in url:
        if k.startswith("ssl") and k not in _KEYS:
            raise UsageError(f"--db option {k.replace('_', '-')!r} is not supported "
                             f"(use {', '.join(x.replace('_', '-') for x in _KEYS)})")
    fopts = {k.replace("-", "_").lower(): (v or "") for k, v in file_opts.items()}

    def get(key: str) -> tuple[str | None, str]:
        if key in url:
            return url[key], "--db"
        if key in fopts:
            return fopts[key], "option file"
        return None, ""

    files: dict[str, str | None] = {}
    for key in _FILES:
        value, origin = get(key)
        if value:
            p = Path(value).expanduser()
            if not (p.is_dir() if key == "ssl_capath" else p.is_file()):
                raise UsageError(f"{key.replace('_', '-')} {show_path(value)} (from {origin}) "
                                 "does not exist; fix the path")
            files[key] = str(p)
    mode, origin = get("ssl_mode")
    if mode:
        mode = mode.strip().upper()
        if mode not in MODES:
            raise UsageError(f"ssl-mode {mode!r} (from {origin}) must be one of "
                             f"{', '.join(MODES)}")
    else:
        verify, _ = get("ssl_verify_server_cert")
        if verify is not None and verify.strip().lower() in _TRUE:
            mode = "VERIFY_IDENTITY"
        elif files.get("ssl_ca") or files.get("ssl_capath"):
            mode = "VERIFY_CA"  # a CA given is a CA to check against
        else:
            mode = "PREFERRED"
    if files.get("ssl_key") and not files.get("ssl_cert"):
        raise UsageError("ssl-key without ssl-cert: give the client certificate too")
    return TLS(mode, files.get("ssl_ca"), files.get("ssl_capath"), files.get("ssl_cert"),
               files.get("ssl_key"))
