"""``virtkit+tls://HOST:PORT/system``: the remote API over TLS 1.3 with a client certificate.

The client reads ca.pem, client.pem and client-key.pem from ``?pki=DIR`` in the URI,
else VIRTKIT_PKI_DIR, else ~/.config/virtkit/pki (make them with `virtkit pki`).
The server's certificate must be signed by that CA and name HOST.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import parse_qs, urlsplit

from virtkit.errors import ConfigError

if TYPE_CHECKING:  # ssl is imported only when a TLS URI is used (CLI start-up time)
    import ssl

SCHEME = "virtkit+tls"


class TlsTarget(NamedTuple):
    host: str
    port: int
    pki: Path


def default_pki_dir() -> Path:
    env = os.environ.get("VIRTKIT_PKI_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "virtkit" / "pki"


def tls_target(uri: str | None) -> TlsTarget | None:
    """The TLS endpoint a URI names, or None when it is not a ``virtkit+tls://`` URI."""
    uri = uri or os.environ.get("VIRTKIT_DEFAULT_URI", "")
    if not uri.startswith(SCHEME + "://"):
        return None
    parts = urlsplit(uri)
    if not parts.hostname or parts.path not in ("/system", ""):
        raise ConfigError(f"bad URI {uri!r}: use virtkit+tls://HOST:PORT/system")
    pki = parse_qs(parts.query).get("pki", [""])[0]
    return TlsTarget(parts.hostname, parts.port or 16514, Path(pki) if pki else default_pki_dir())


def client_context(pki: Path) -> ssl.SSLContext:
    import ssl

    files = [pki / n for n in ("ca.pem", "client.pem", "client-key.pem")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ConfigError(
            f"no client certificate: {', '.join(missing)} missing; on the daemon's host run "
            f"`virtkit pki client --dir CA_DIR --name $USER --out {pki}` and copy the files"
        )
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(files[0]))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(files[1], files[2])
    return ctx


def connect(target: TlsTarget, timeout: float) -> ssl.SSLSocket:
    import socket

    ctx = client_context(target.pki)
    raw = socket.create_connection((target.host, target.port), timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=target.host)
    except BaseException:
        raw.close()
        raise
