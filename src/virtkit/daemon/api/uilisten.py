"""The optional TCP listener for browsers (the web manager, consoles, noVNC).

It serves the same ASGI app as the Unix socket, behind the WebGate (login,
CSRF, origin checks). Default ``127.0.0.1:8738`` (settings: VIRTKIT_UI_LISTEN,
``virtkitd --ui-listen``; ``none`` turns it off; port 0 picks a free port). An
address already taken is a warning, not a failed daemon (guests matter more); the
default port, taken by another daemon, falls back to a free one.
On a non-loopback address requests run with the "remote" role (daemon/auth/roles.py:
install media and disks only from storage pools). TLS for such listeners belongs
here (a server-side SSLContext on the socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
from collections.abc import Iterator
from typing import Any

from virtkit.errors import ConfigError

DEFAULT_UI_LISTEN = "127.0.0.1:8738"
log = logging.getLogger("virtkit.ui")


def parse_listen(text: str) -> tuple[str, int] | None:
    """``HOST:PORT``, ``[V6]:PORT`` or ``PORT`` (loopback); None for ``none``/``off``."""
    text = text.strip()
    if text.lower() in ("", "none", "off", "no"):
        return None
    if text.isdigit():
        host, port_s = "127.0.0.1", text
    elif text.startswith("["):
        host, sep, port_s = text[1:].partition("]:")
        if not sep:
            raise ConfigError(f"UI listen address {text!r}: write [ADDRESS]:PORT for IPv6")
    else:
        host, sep, port_s = text.rpartition(":")
        if not sep or not host:
            raise ConfigError(f"UI listen address {text!r}: write HOST:PORT, e.g. 127.0.0.1:8738")
    if not port_s.isdigit() or not 0 <= int(port_s) <= 65535:
        raise ConfigError(f"UI listen address {text!r}: the port must be 0-65535")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ConfigError(f"UI listen address {text!r}: give an IP address") from None
        host = "127.0.0.1"
    return host, int(port_s)


def is_loopback(host: str) -> bool:
    return ipaddress.ip_address(host).is_loopback


def url_host(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class UiListener:
    """One uvicorn server on a TCP socket we bind ourselves (so port 0 works)."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        self.app = app  # already wrapped in the WebGate
        self.host, self.port = host, port
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{url_host(self.host, self.port)}"

    async def start(self) -> None:
        """Bind and serve; raises OSError when the address is taken or not ours."""
        import uvicorn

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:  # the daemon handles signals
                yield

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="off",
            ws_max_size=1 << 20, timeout_graceful_shutdown=2,
        )  # fmt: skip
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started and not self._task.done():
            await asyncio.sleep(0.005)
        if self._task.done():
            self._task.result()
        if not is_loopback(self.host):
            log.warning("the web UI listens on %s without TLS: passwords and cookies cross the "
                        "network in clear text", self.base_url)  # fmt: skip
        log.info("web UI on %s/ui/", self.base_url)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await self._task


async def start_ui(app: Any, listen: str) -> UiListener | None:
    """Start the browser listener for ``app`` (a FastAPI app from create_app), or None.

    The base URL is recorded in ``app.state.web`` so `virtkit ui` can print links.
    """
    from virtkit.daemon.api.webgate import WebGate

    web = app.state.web
    try:
        addr = parse_listen(listen)
    except ConfigError as exc:  # a bad setting costs the web UI, not the daemon
        log.error("web UI not started: %s", exc.message)
        web.ui_error = exc.message
        return None
    if addr is None:
        return None
    inner = app
    if not is_loopback(addr[0]):  # reachable from the network: the "remote" role's limits
        from virtkit.daemon.api.listeners import RoleApp
        from virtkit.daemon.auth.roles import REMOTE

        inner = RoleApp(app, REMOTE)
    listener = UiListener(WebGate(inner, web.auth), *addr)
    try:
        await listener.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE and listen == DEFAULT_UI_LISTEN:
            # another daemon (another user's session) has the default port: take any port;
            # `virtkit ui` prints the address either way
            log.warning("%s is taken; the web UI listens on a free port instead", listen)
            return await start_ui(app, "127.0.0.1:0")
        log.warning("web UI not started: cannot listen on %s: %s", listen, exc.strerror or exc)
        web.ui_error = f"cannot listen on {listen}: {exc.strerror or exc}"
        return None
    web.base_url = listener.base_url
    return listener
