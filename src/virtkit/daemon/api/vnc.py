"""Graphical console routes: where VNC listens, viewer tokens, the websocket -> VNC proxy.

- GET  /v1/domains/{name}/vncdisplay    virsh vncdisplay (127.0.0.1:0 or a socket path)
- POST /v1/domains/{name}/vnc/session   a one-use token for the proxy (60 s to connect)
- WS   /v1/domains/{name}/vnc?token=T   RFB bytes <-> binary websocket frames (noVNC)
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, WebSocket
from pydantic import BaseModel

from virtkit.daemon.auth.webauth import VNC_TOKEN_TTL_S, WebAuth
from virtkit.daemon.domains.vnc import open_vnc, vnc_address
from virtkit.daemon.service import Service
from virtkit.errors import VirtkitError, http_status


class VncDisplay(BaseModel):
    display: str
    family: str
    host: str
    port: int | None
    password: bool


class VncSession(BaseModel):
    token: str
    path: str
    expires_s: float
    password: bool


def router(svc: Service, auth: WebAuth) -> APIRouter:
    r = APIRouter(tags=["console"])

    @r.get("/v1/domains/{name}/vncdisplay", response_model=VncDisplay)
    async def vncdisplay(name: str) -> dict[str, Any]:
        addr = await vnc_address(svc, name)
        return {"display": addr.display, "family": addr.family, "host": addr.host,
                "port": addr.port,
                "password": bool(svc.entry(name).domain.graphics.password)}  # fmt: skip

    @r.post("/v1/domains/{name}/vnc/session", response_model=VncSession)
    async def vnc_session(name: str) -> dict[str, Any]:
        await vnc_address(svc, name)  # running, with VNC: or a clear error now
        token = auth.vnc_token(name)
        path = f"/v1/domains/{quote(name, safe='')}/vnc?token={token}"
        return {"token": token, "path": path, "expires_s": VNC_TOKEN_TTL_S,
                "password": bool(svc.entry(name).domain.graphics.password)}  # fmt: skip

    @r.websocket("/v1/domains/{name}/vnc")
    async def vnc_proxy(ws: WebSocket, name: str, token: str = "") -> None:
        await _proxy(svc, auth, ws, name, token)

    return r


async def _proxy(svc: Service, auth: WebAuth, ws: WebSocket, name: str, token: str) -> None:
    if not auth.use_vnc_token(token, name):
        await ws.close(code=4401, reason="no or expired VNC token: ask /vnc/session again")
        return
    try:
        reader, writer = await open_vnc(await vnc_address(svc, name))
    except (VirtkitError, OSError) as exc:
        status = http_status(exc) if isinstance(exc, VirtkitError) else 502
        await ws.close(code=4000 + status, reason=str(exc)[:120])
        return
    offered = ws.scope.get("subprotocols", [])
    await ws.accept(subprotocol="binary" if "binary" in offered else None)

    async def vnc_to_browser() -> None:
        while data := await reader.read(65536):
            await ws.send_bytes(data)

    async def browser_to_vnc() -> None:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            writer.write(msg.get("bytes") or (msg.get("text") or "").encode())
            await writer.drain()

    tasks = [asyncio.create_task(vnc_to_browser()), asyncio.create_task(browser_to_vnc())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        writer.close()
        with contextlib.suppress(Exception):
            await ws.close()
