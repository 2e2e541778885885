"""The API of another virtkit daemon (the other end of a migration), spoken from this one.

A small async HTTP/1.1 client (one request per connection) over the peer's Unix
socket (``unix:///path/virtkitd.sock``, ``virtkit:///system|session`` of this host),
its TLS listener (``virtkit+tls://HOST:PORT/system[?pki=DIR]``: TLS 1.3 with this
daemon's client certificate, as the CLI does it, see client/tls.py) or plain TCP
(``virtkit+tcp://HOST[:PORT]/system``, for a daemon API exposed by other means). Error
bodies come back as the same ``VirtkitError`` classes the peer raised; an unreachable
peer is a ``DaemonError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from virtkit.errors import ConfigError, DaemonError, VirtkitError, from_dict
from virtkit.paths import socket_for_uri

DEFAULT_TCP_PORT = 16509  # libvirt's virtkit+tcp-alike default
DEFAULT_TIMEOUT_S = 120.0
MAX_BODY_BYTES = 16 << 20


@dataclass(frozen=True)
class PeerAddress:
    uri: str
    socket: str | None  # a Unix socket path, or None for TCP
    host: str
    port: int
    tls_pki: str | None = None  # virtkit+tls: the directory with ca.pem, client*.pem

    @property
    def migration_host(self) -> str:
        """Where the peer's QEMU should listen for the migration stream."""
        return "127.0.0.1" if self.socket is not None else self.host


def parse_uri(uri: str) -> PeerAddress:
    parts = urlsplit(uri)
    if parts.scheme == "virtkit+tcp":
        if not parts.hostname or parts.path not in ("/system", "/session", ""):
            raise ConfigError(f"bad destination URI {uri!r}: use virtkit+tcp://HOST[:PORT]/system")
        return PeerAddress(uri, None, parts.hostname, parts.port or DEFAULT_TCP_PORT)
    if parts.scheme == "virtkit+tls":
        from virtkit.client.tls import tls_target  # the CLI's own TLS conventions

        target = tls_target(uri)
        assert target is not None
        return PeerAddress(uri, None, target.host, target.port, str(target.pki))
    if parts.scheme in ("unix", "virtkit"):
        path, _ = socket_for_uri(uri)
        return PeerAddress(uri, str(path), "127.0.0.1", 0)
    raise ConfigError(
        f"unsupported destination URI {uri!r}: use virtkit+tls://HOST:PORT/system, "
        "virtkit+tcp://HOST[:PORT]/system, or unix:///path/to/virtkitd.sock for another "
        "daemon on this host"
    )


class Peer:
    def __init__(self, uri: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.addr = parse_uri(uri)
        self.timeout_s = timeout_s

    async def request(self, method: str, path: str, body: Any = None,
                      timeout_s: float | None = None) -> Any:  # fmt: skip
        try:
            return await asyncio.wait_for(self._request(method, path, body),
                                          timeout_s or self.timeout_s)  # fmt: skip
        except TimeoutError:
            raise DaemonError(
                f"the destination daemon {self.addr.uri} did not answer {method} {path} within "
                f"{timeout_s or self.timeout_s:g} s; check its log"
            ) from None
        except (OSError, EOFError, asyncio.IncompleteReadError, ValueError) as exc:
            raise DaemonError(
                f"cannot talk to the destination daemon {self.addr.uri}: {exc}; is virtkitd "
                "running there (and listening on that address)?"
            ) from None

    async def _request(self, method: str, path: str, body: Any) -> Any:
        if self.addr.socket is not None:
            reader, writer = await asyncio.open_unix_connection(self.addr.socket)
        elif self.addr.tls_pki is not None:
            from virtkit.client.tls import client_context

            ctx = client_context(Path(self.addr.tls_pki))
            reader, writer = await asyncio.open_connection(
                self.addr.host, self.addr.port, ssl=ctx, server_hostname=self.addr.host
            )
        else:
            reader, writer = await asyncio.open_connection(self.addr.host, self.addr.port)
        try:
            payload = b"" if body is None else json.dumps(body).encode()
            head = (f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                    f"Accept: application/json\r\nContent-Length: {len(payload)}\r\n")  # fmt: skip
            if body is not None:
                head += "Content-Type: application/json\r\n"
            writer.write(head.encode() + b"\r\n" + payload)
            await writer.drain()
            raw_head = await reader.readuntil(b"\r\n\r\n")
            lines = raw_head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {k.strip().lower(): v.strip()
                       for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}  # fmt: skip
            if "content-length" in headers:
                data = await reader.readexactly(int(headers["content-length"]))
            else:
                data = await reader.read(MAX_BODY_BYTES)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        if status >= 400:
            try:
                err = from_dict(json.loads(data))
            except (ValueError, AttributeError):
                err = VirtkitError(f"destination daemon error {status}: {data[:300]!r}")
            raise err
        return json.loads(data) if data else None

    # -- the destination's side of a migration (daemon/api/migrate.py) -------------------

    async def prepare(self, spec: dict[str, Any]) -> dict[str, Any]:
        return dict(await self.request("POST", "/v1/migrations/incoming", spec))

    async def finish(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        path = f"/v1/migrations/incoming/{quote(name, safe='')}/finish"
        return dict(await self.request("POST", path, body))

    async def abort(self, name: str) -> None:
        await self.request("DELETE", f"/v1/migrations/incoming/{quote(name, safe='')}",
                           timeout_s=30)  # fmt: skip
