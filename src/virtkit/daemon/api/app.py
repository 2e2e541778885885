"""The HTTP API (FastAPI) served on the daemon's Unix socket.

The OpenAPI document it generates is checked in (openapi.json next to this
file) and tests validate requests and responses against it. Errors are always
``{"error": <code>, "message": <text>, "details": {...}}`` with the status
from errors.HTTP_STATUS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

import virtkit
from virtkit.daemon.api import domextra
from virtkit.daemon.api import schemas as s
from virtkit.daemon.api import storage as storage_api
from virtkit.daemon.service import Service
from virtkit.errors import ConfigError, VirtkitError, http_status

MAX_BODY_BYTES = 1 << 20
log = logging.getLogger("virtkit.api")


class BodyLimit:
    """Refuse request bodies over 1 MiB before they are read into memory."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for k, v in scope.get("headers", []):
            if k == b"content-length" and v.isdigit() and int(v) > MAX_BODY_BYTES:
                resp = JSONResponse(
                    {"error": "config", "message": "request body larger than 1 MiB"}, 413
                )
                await resp(scope, receive, send)
                return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            msg = await receive()
            seen += len(msg.get("body", b""))
            if seen > MAX_BODY_BYTES:
                raise ConfigError("request body larger than 1 MiB")
            return msg

        await self.app(scope, limited, send)


def create_app(svc: Service) -> FastAPI:
    app = FastAPI(
        title="virtkit",
        version=virtkit.__version__,
        description="virtkit daemon API: domains, lifecycle, console, events, host.",
        responses={"default": {"model": s.ErrorBody, "description": "error"}},
    )
    app.add_middleware(BodyLimit)
    app.include_router(storage_api.router(svc))

    @app.exception_handler(VirtkitError)
    async def _virtkit_error(_: Request, exc: VirtkitError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=http_status(exc))

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error")
        return JSONResponse(
            {"error": "error", "message": f"internal error in virtkitd: {exc!r}; "
             f"see {svc.paths.daemon_log}"}, status_code=500)  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        cause = exc.__cause__
        if isinstance(cause, VirtkitError):
            return JSONResponse(cause.to_dict(), status_code=http_status(cause))
        code = {404: "not-found", 405: "config"}.get(exc.status_code, "config")
        return JSONResponse({"error": code, "message": str(exc.detail)},
                            status_code=exc.status_code, headers=exc.headers)  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        lines = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:20]]
        return JSONResponse({"error": "config", "message": "invalid request: " + "; ".join(lines)},
                            status_code=400)  # fmt: skip

    from virtkit.daemon.api import hotplug as hotplug_api
    from virtkit.daemon.api import snapshots as snapshots_api

    app.include_router(snapshots_api.router(svc))
    app.include_router(hotplug_api.router(svc))
    from virtkit.daemon.api import hostfeat as hostfeat_api

    app.include_router(hostfeat_api.router(svc))  # nodeinfo, capabilities, KSM, nodedev, pinning
    from virtkit.daemon.api import networks as networks_api

    app.include_router(networks_api.router(svc))
    from virtkit.daemon.api import migrate as migrate_api

    app.include_router(migrate_api.router(svc))
    from virtkit.daemon.api import monitor as monitor_api

    app.include_router(monitor_api.router(svc))  # qemu-monitor-command (admin only)
    from virtkit.daemon.api import stats as stats_api

    stats_api.install(app, svc)  # /v1/stats, /metrics, request-latency histogram
    from virtkit.daemon.api import web as web_api

    web_api.install(app, svc)  # /ui pages + login, /v1/events/stream, VNC proxy, install argv

    @app.get("/v1/version", response_model=s.Version, tags=["host"])
    async def version() -> s.Version:
        return s.Version(version=virtkit.__version__, mode=svc.paths.mode,
                         state_dir=str(svc.paths.state_dir))  # fmt: skip

    @app.get("/v1/domains", response_model=list[s.DomainSummary], tags=["domains"])
    async def list_domains(all: bool = False) -> list[dict[str, Any]]:
        return svc.list(all)

    @app.post("/v1/domains", response_model=s.DomainSummary, status_code=201, tags=["domains"])
    async def define(body: s.DefineRequest) -> dict[str, Any]:
        dom = await svc.define(text=body.text, config=body.config, source=body.source)
        return svc.summary(svc.entry(dom.name))

    @app.get("/v1/domains/{name}", response_model=s.DomainInfo, tags=["domains"])
    async def info(name: str) -> dict[str, Any]:
        return svc.info(name)

    @app.get("/v1/domains/{name}/config", response_model=dict[str, Any], tags=["domains"])
    async def config(name: str) -> dict[str, Any]:
        return svc.config(name)

    @app.delete("/v1/domains/{name}", status_code=204, tags=["domains"])
    async def undefine(name: str) -> None:
        await svc.undefine(name)

    @app.put("/v1/domains/{name}/autostart", response_model=s.DomainSummary, tags=["domains"])
    async def autostart(name: str, body: s.AutostartRequest) -> dict[str, Any]:
        await svc.set_autostart(name, body.enabled)
        return svc.summary(svc.entry(name))

    @app.post("/v1/domains/{name}/start", response_model=s.StartResult, tags=["lifecycle"])
    async def start(name: str, paused: bool = False, force_boot: bool = False) -> dict[str, Any]:
        e = await svc.start(name, paused, force_boot=force_boot)
        rec = e.sup.record if e.sup else None
        return svc.summary(e) | {"warning": rec.accel_note if rec else "",
                                 "accel": rec.accel if rec else ""}  # fmt: skip

    @app.post("/v1/domains/{name}/shutdown", response_model=s.DomainSummary, tags=["lifecycle"])
    async def shutdown(name: str, wait_s: float = Query(0.0, ge=0, le=3600)) -> dict[str, Any]:
        return svc.summary(await svc.shutdown(name, wait_s))

    @app.post("/v1/domains/{name}/reboot", response_model=s.DomainSummary, tags=["lifecycle"])
    async def reboot(name: str) -> dict[str, Any]:
        return svc.summary(await svc.reboot(name))

    @app.post("/v1/domains/{name}/reset", response_model=s.DomainSummary, tags=["lifecycle"])
    async def reset(name: str) -> dict[str, Any]:
        return svc.summary(await svc.reset(name))

    @app.post("/v1/domains/{name}/destroy", response_model=s.DomainSummary, tags=["lifecycle"])
    async def destroy(name: str, graceful: bool = False) -> dict[str, Any]:
        return svc.summary(await svc.destroy(name, graceful))

    @app.post("/v1/domains/{name}/suspend", response_model=s.DomainSummary, tags=["lifecycle"])
    async def suspend(name: str) -> dict[str, Any]:
        return svc.summary(await svc.suspend(name))

    @app.post("/v1/domains/{name}/resume", response_model=s.DomainSummary, tags=["lifecycle"])
    async def resume(name: str) -> dict[str, Any]:
        return svc.summary(await svc.resume(name))

    @app.post("/v1/install", response_model=s.InstallResponse, tags=["lifecycle"])
    async def install(body: s.InstallRequest) -> dict[str, Any]:
        from virtkit.daemon.auth.roles import check_install
        from virtkit.daemon.domains.install import run_install

        check_install(svc, body.spec)  # remote callers: media and disks only in pools
        res = await run_install(svc, body.spec, dry_run=body.dry_run)
        return res.__dict__

    @app.get("/v1/events", response_model=list[s.EventOut], tags=["events"])
    async def events(
        after: int = Query(0, ge=0), domain: str | None = None,
        wait_s: float = Query(0.0, ge=0, le=300), limit: int = Query(1000, ge=1, le=10000),
    ) -> list[dict[str, Any]]:  # fmt: skip
        found = await svc.bus.wait(after, domain, wait_s, limit)
        return [e.__dict__ for e in found]

    app.include_router(domextra.router(svc))

    @app.websocket("/v1/domains/{name}/console")
    async def console(ws: WebSocket, name: str, force: bool = False) -> None:
        await _console(svc, ws, name, force)

    return app


async def _console(svc: Service, ws: WebSocket, name: str, force: bool) -> None:
    """Proxy the guest's serial port <-> a websocket (binary frames)."""
    await ws.accept()
    taken = asyncio.Event()
    try:
        reader, writer = await svc.open_console(name, force, taken.set)
    except VirtkitError as exc:
        await ws.send_json(exc.to_dict())
        await ws.close(code=4000 + http_status(exc))
        return
    await ws.send_json({"ok": True})
    sup = svc.entry(name).sup
    close_cb = sup.console_close if sup is not None else None

    async def guest_to_client() -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                return
            await ws.send_bytes(data)

    async def client_to_guest() -> None:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            data = msg.get("bytes") or (msg.get("text") or "").encode()
            writer.write(data)
            await writer.drain()

    tasks = [asyncio.create_task(guest_to_client()), asyncio.create_task(client_to_guest()),
             asyncio.create_task(taken.wait())]  # fmt: skip
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        svc.release_console(name, close_cb)
        writer.close()
        with contextlib.suppress(Exception):
            await ws.close(code=4409 if taken.is_set() else 1000)
        with contextlib.suppress(WebSocketDisconnect):
            pass
