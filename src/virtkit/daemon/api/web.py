"""The web manager's routes: its pages, login, login links, and install from argv.

  GET  /ui/, /ui/static/...      the single-page app (virtkit/web/static)
  GET  /ui/login[?token=T]       a one-time link (sets the session) or the password form
  POST /ui/login, /ui/logout     password login / logout (browser listener only matters)
  GET  /v1/ui                    where the browser listener is (for `virtkit ui`)
  POST /v1/ui/login-link         a one-time login URL (ask over the Unix socket)
  POST /v1/install/argv          virt-install's argv, parsed and run by the daemon

The pages call the same /v1 API as the CLI; over the TCP listener the WebGate
(webgate.py) checks the session and CSRF header first.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from virtkit.daemon.api import schemas as s
from virtkit.daemon.auth.webauth import (
    LOGIN_TOKEN_TTL_S,
    SESSION_TTL_S,
    WebAuth,
    cookie_names,
    listener_port,
    safe_next,
)
from virtkit.daemon.service import Service
from virtkit.errors import ConfigError, StateError


def static_dir() -> Path:
    """The built front end, shipped as package data of virtkit.web."""
    import virtkit.web

    return Path(virtkit.web.__file__).parent / "static"


@dataclass
class WebState:
    auth: WebAuth
    base_url: str | None = None  # http://127.0.0.1:8738 once the browser listener runs
    ui_error: str = "the daemon was started without a browser listener (--ui-listen none)"


class UiInfo(BaseModel):
    listening: bool
    url: str | None = Field(None, description="the web UI's address (without a login token)")
    message: str = ""
    password_file: str


class LoginLinkRequest(BaseModel):
    next: str = Field("/ui/", max_length=1024, description="a page of the UI to land on")


class LoginLink(BaseModel):
    url: str
    expires_s: float


class InstallArgvRequest(BaseModel):
    argv: list[str] = Field(max_length=256, description="virt-install's options, one per item")
    dry_run: bool = False


def install(app: FastAPI, svc: Service) -> WebState:
    """Add the web routes (and the VNC proxy) to ``app``; its state is ``app.state.web``."""
    from virtkit.daemon.api import eventstream
    from virtkit.daemon.api import vnc as vnc_api

    web = WebState(WebAuth(svc.paths.state_dir))
    app.state.web = web
    app.include_router(api_router(svc, web))
    app.include_router(eventstream.router(svc))
    app.include_router(vnc_api.router(svc, web.auth))
    app.include_router(page_router(web))
    app.mount("/ui/static", StaticFiles(directory=static_dir()), name="ui-static")
    return web


def api_router(svc: Service, web: WebState) -> APIRouter:
    r = APIRouter(tags=["ui"])

    @r.get("/v1/ui", response_model=UiInfo)
    async def ui_info() -> dict[str, Any]:
        url = f"{web.base_url}/ui/" if web.base_url else None
        return {"listening": url is not None, "url": url,
                "message": "" if url else web.ui_error,
                "password_file": str(web.auth.password_file)}  # fmt: skip

    @r.post("/v1/ui/login-link", response_model=LoginLink)
    async def login_link(body: LoginLinkRequest) -> dict[str, Any]:
        if web.base_url is None:
            raise StateError(f"the web UI is not available: {web.ui_error}; start the daemon "
                             "with --ui-listen 127.0.0.1:8738 (or VIRTKIT_UI_LISTEN)",
                             current="no browser listener", required="listening")  # fmt: skip
        token = web.auth.login_token(body.next)
        nxt = quote(safe_next(body.next), safe="/")
        return {"url": f"{web.base_url}/ui/login?token={token}&next={nxt}",
                "expires_s": LOGIN_TOKEN_TTL_S}  # fmt: skip

    @r.post("/v1/install/argv", response_model=s.InstallResponse, tags=["lifecycle"])
    async def install_argv(body: InstallArgvRequest) -> dict[str, Any]:
        from virtkit.daemon.domains.install import run_install
        from virtkit.formats.virtinstall import parse_install_args

        if any(len(a) > 4096 for a in body.argv):
            raise ConfigError("an install option is longer than 4096 characters")
        parsed = parse_install_args(body.argv, unprivileged=os.geteuid() != 0)
        if parsed.print_xml:
            raise ConfigError("--print-xml is for the command line (`virtkit install`)")
        from virtkit.daemon.auth.roles import check_install

        check_install(svc, parsed.spec)  # the same role checks as POST /v1/install
        res = await run_install(svc, parsed.spec, dry_run=body.dry_run or parsed.dry_run)
        out = dict(res.__dict__)
        out["warnings"] = [*parsed.warnings, *out.get("warnings", [])]
        return out

    return r


def page_router(web: WebState) -> APIRouter:
    r = APIRouter(include_in_schema=False)

    @r.get("/ui")
    async def ui_bare() -> Response:
        return RedirectResponse("/ui/", 303)

    @r.get("/ui/")
    async def index() -> Response:
        return FileResponse(static_dir() / "index.html", headers={"Cache-Control": "no-store"})

    @r.get("/ui/login")
    async def login_get(request: Request, token: str = "", next: str = "/ui/") -> Response:
        if token:
            dest = web.auth.use_login_token(token)
            if dest is None:
                return login_page(next, EXPIRED)
            return _logged_in(web.auth, request, dest)  # where the link was made for
        return login_page(next, "")

    @r.post("/ui/login")
    async def login_post(request: Request) -> Response:
        form = parse_qs((await request.body()).decode(errors="replace"))
        password = form.get("password", [""])[0]
        nxt = form.get("next", ["/ui/"])[0]
        if not web.auth.check_password(password):
            return login_page(nxt, WRONG_PASSWORD, status=401)
        return _logged_in(web.auth, request, safe_next(nxt))

    @r.post("/ui/logout")
    async def logout(request: Request) -> Response:
        resp = RedirectResponse("/ui/login", 303)
        for name in cookie_names(listener_port(request.scope)):
            resp.delete_cookie(name, path="/")
        return resp

    return r


def _logged_in(auth: WebAuth, request: Request, dest: str) -> Response:
    session, csrf = auth.new_session()
    secure = request.url.scheme == "https"
    session_cookie, csrf_cookie = cookie_names(listener_port(request.scope))
    resp = RedirectResponse(dest, 303)
    resp.set_cookie(session_cookie, session, max_age=int(SESSION_TTL_S), path="/",
                    httponly=True, samesite="strict", secure=secure)  # fmt: skip
    resp.set_cookie(csrf_cookie, csrf, max_age=int(SESSION_TTL_S), path="/",
                    httponly=False, samesite="strict", secure=secure)  # fmt: skip
    resp.headers["Cache-Control"] = "no-store"
    return resp


WRONG_PASSWORD = (
    "Wrong password. It is the line in web-password in the daemon's state directory "
    "(`virtkit ui --no-login` on the host says where)."
)
EXPIRED = "This login link was used already or has expired. Run `virtkit ui` for a new one."
LOGIN_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>virtkit: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/ui/static/style.css"></head>
<body class="login"><main class="card">
<h1>virtkit</h1>
<p>Run <code>virtkit ui</code> on the host for a one-time login link, or enter the password
from the file <code>web-password</code> in the daemon's state directory
(<code>virtkit ui --no-login</code> says where).</p>
{error}
<form method="post" action="/ui/login">
<input type="hidden" name="next" value="{next}">
<label>Password <input type="password" name="password" autofocus autocomplete="off"></label>
<button type="submit">Log in</button>
</form></main></body></html>
"""


def login_page(next_path: str, error: str, status: int = 200) -> HTMLResponse:
    err = f'<p class="error">{html.escape(error)}</p>' if error else ""
    body = LOGIN_HTML.format(error=err, next=html.escape(safe_next(next_path)))
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})
