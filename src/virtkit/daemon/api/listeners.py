"""The API's extra listeners, each serving the same app under a role (daemon/auth/roles.py).

  virtkitd.sock      (main.py) admin: 0660 root:virtkit in system mode, 0600 in session mode
  virtkitd-ro.sock   readonly: GET requests and the event stream, for monitoring
                     (0666 in system mode like libvirt's read-only socket, 0600 in session)
  --listen-tls A:P   remote: TCP with TLS 1.3 only and a client certificate signed by the
                     daemon's CA (VIRTKIT_TLS_DIR, default STATE/pki; `virtkit pki`)

The web UI's browser listener is separate (uilisten.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import logging
import os
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from virtkit.daemon.auth.roles import READ_METHODS, READONLY, ROLE, SCOPE_KEY
from virtkit.errors import ConfigError, DaemonError
from virtkit.paths import Paths

log = logging.getLogger("virtkit.daemon")
API_GROUP = "virtkit"


def ro_socket(paths: Paths) -> Path:
    return paths.run_dir / "virtkitd-ro.sock"


class RoleApp:
    """Tags every request with the listener's role; the read-only role may only read."""

    def __init__(self, app: ASGIApp, role: str) -> None:
        self.app, self.role = app, role

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope[SCOPE_KEY] = self.role
            if self.role == READONLY and not _read_only_ok(scope):
                await _refuse(scope, receive, send)
                return
        token = ROLE.set(self.role)
        try:
            await self.app(scope, receive, send)
        finally:
            ROLE.reset(token)


def _read_only_ok(scope: Scope) -> bool:
    if scope["type"] == "websocket":
        return False  # consoles and VNC take input
    path = str(scope.get("path", ""))
    return scope.get("method") in READ_METHODS and not path.endswith("/content")


async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
    msg = ("this is the read-only socket (monitoring: GET requests and events); "
           "use virtkitd.sock to change anything")  # fmt: skip
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 4403, "reason": "read-only socket"})
        return
    body = json.dumps({"error": "forbidden", "message": msg}).encode()
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def secure_socket(path: Path, mode: str, public: bool = False) -> None:
    """Permissions of an API socket: group virtkit in system mode, owner only in session."""
    if mode == "session":
        os.chmod(path, 0o600)
        return
    os.chmod(path, 0o666 if public else 0o660)
    try:
        gid = grp.getgrnam(API_GROUP).gr_gid
    except KeyError:
        log.warning("group %r does not exist (run scripts/setup): %s is root-only",
                    API_GROUP, path)  # fmt: skip
        return
    os.chown(path, 0, gid)
    if not public:  # members of the group must reach the socket through the run directory
        st = path.parent.stat()
        if st.st_uid == 0:
            os.chown(path.parent, 0, gid)
            os.chmod(path.parent, (st.st_mode & 0o7777) | 0o050)


def parse_addr(text: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"TLS listen address {text!r}: write ADDRESS:PORT, e.g. 0.0.0.0:16514")
    return host, int(port)


def tls_context(tls_dir: Path) -> ssl.SSLContext:
    """Server side: TLS 1.3 only, a client certificate from our CA required."""
    files = [tls_dir / n for n in ("ca.pem", "server.pem", "server-key.pem")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise DaemonError(
            f"the TLS listener needs {', '.join(missing)}: make them with "
            f"`virtkit pki init --dir {tls_dir}` and "
            f"`virtkit pki server --dir {tls_dir} --host $(hostname -f)`"
        )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(files[1], files[2])
    ctx.load_verify_locations(cafile=str(files[0]))
    return ctx


class Listener:
    """One uvicorn server on a socket we bound ourselves."""

    def __init__(self, app: ASGIApp, sock: socket.socket, what: str,
                 ssl_ctx: ssl.SSLContext | None = None) -> None:  # fmt: skip
        self.app, self.sock, self.what, self.ssl_ctx = app, sock, what, ssl_ctx
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        import uvicorn

        ctx = self.ssl_ctx

        class _Config(uvicorn.Config):
            def load(self) -> None:
                super().load()
                self.ssl = ctx  # ours: TLS 1.3 minimum, CERT_REQUIRED (see tls_context)

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:  # the daemon handles signals
                yield

        config = _Config(self.app, log_level="warning", access_log=False, lifespan="off",
                         ws_max_size=1 << 20, timeout_graceful_shutdown=2)  # fmt: skip
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[self.sock]))
        while not self._server.started and not self._task.done():
            await asyncio.sleep(0.005)
        if self._task.done():
            self._task.result()
        log.info("listening on %s", self.what)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 5)
        self.sock.close()


async def start_listeners(app: ASGIApp, paths: Paths, listen_tls: str,
                          tls_dir: str) -> list[Listener]:  # fmt: skip
    """The read-only socket, and the TLS listener when ``listen_tls`` is set."""
    out: list[Listener] = []
    ro = ro_socket(paths)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(ro)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(ro))
    secure_socket(ro, paths.mode, public=True)
    s.listen(128)
    s.setblocking(False)
    lst = Listener(RoleApp(app, READONLY), s, str(ro))
    await lst.start()
    out.append(lst)
    if listen_tls:
        from virtkit.daemon.auth.roles import REMOTE

        host, port = parse_addr(listen_tls)
        ctx = tls_context(Path(tls_dir) if tls_dir else paths.state_dir / "pki")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        t = socket.socket(family, socket.SOCK_STREAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            t.bind((host, port))
        except OSError as exc:
            t.close()
            raise DaemonError(f"cannot listen for TLS on {listen_tls}: {exc.strerror}") from None
        t.listen(128)
        t.setblocking(False)
        tls = Listener(RoleApp(app, REMOTE), t, f"tls://{host}:{port}", ctx)
        await tls.start()
        out.append(tls)
    return out
