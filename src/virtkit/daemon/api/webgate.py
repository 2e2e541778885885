"""The gate in front of the browser (TCP) listener: login, CSRF, origin, headers.

Wraps the same ASGI app the Unix socket serves. Every request needs a valid
session cookie (daemon/auth/webauth.py) except the login page itself; requests that
change state also need the ``X-Virtkit-CSRF`` header (a custom header a
cross-site form or fetch cannot send without a CORS preflight we never answer),
and websockets must come from our own origin (browsers do not apply CORS to
them). The login form itself is checked as OWASP's CSRF cheat sheet says: Fetch
Metadata (``Sec-Fetch-Site``) when the browser sends it, then Origin (``null`` is
foreign), then Referer when there is no Origin. The pages are served with
``Referrer-Policy: same-origin`` so the browser does send our Origin on our own form
(``no-referrer`` makes Chromium send ``Origin: null``) and nothing to other sites.
The Unix socket for the CLI does not pass through here.
"""

from __future__ import annotations

import json
from urllib.parse import quote, urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from virtkit.daemon.auth.webauth import CSRF_HEADER, WebAuth, cookie_names, listener_port

LOGIN_FIRST = (
    "log in first: run `virtkit ui` on the host for a login link, or use the password "
    "in the daemon's state directory (web-password)"
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC = frozenset({"/ui/login", "/ui/static/style.css"})  # the login page and its look
CSP = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data: blob:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)


REFERRER_POLICY = "same-origin"  # our Origin on our forms; no referrer to other sites
FOREIGN_LOGIN = (
    "This login was refused: it was sent from another page or site. Open the login page "
    "at this address and log in there."
)


def own_origin(scope: Scope) -> str:
    """This listener's origin as the browser names it: scheme://Host."""
    scheme = str(scope.get("scheme", "http"))
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    return f"{scheme}://{Headers(scope=scope).get('host', '')}"


def same_origin(scope: Scope) -> bool:
    """The Origin header (if any) names this very listener (scheme + Host)."""
    origin = Headers(scope=scope).get("origin")
    if origin is None:
        return bool(scope["type"] != "websocket")  # browsers always send it on websockets
    return origin == own_origin(scope)


def login_from_us(scope: Scope) -> bool:
    """A login POST comes from our own login page (or from no browser at all).

    ``Sec-Fetch-Site`` other than same-origin / none (typed by the user) is refused; an
    Origin must be ours (``null``, from sandboxed frames, data: URLs or ``no-referrer``
    pages, is not); without an Origin, a Referer must be ours. A client that sends none
    of these is not a browser, so no session of a victim can be planted through it.
    """
    headers = Headers(scope=scope)
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    if headers.get("origin") is not None:
        return same_origin(scope)
    referer = headers.get("referer")
    if referer is None:
        return True
    ref = urlsplit(referer)
    return f"{ref.scheme}://{ref.netloc}" == own_origin(scope)


class WebGate:
    def __init__(self, app: ASGIApp, auth: WebAuth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        conn = HTTPConnection(scope)
        session_cookie, _ = cookie_names(listener_port(scope))
        nonce = self.auth.session_nonce(conn.cookies.get(session_cookie))
        if scope["type"] == "websocket":
            if nonce is None or not same_origin(scope):
                await send({"type": "websocket.close", "code": 4401})
                return
            await self.app(scope, receive, send)
            return
        send = _with_headers(send, path)
        method = scope.get("method", "GET")
        if path == "/":
            await _redirect(send, "/ui/")
            return
        if path in PUBLIC:
            if method not in SAFE_METHODS and not login_from_us(scope):
                await _foreign_login(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if nonce is None:
            if method in SAFE_METHODS and (path == "/ui" or path.startswith("/ui/")):
                await _redirect(send, "/ui/login?next=" + quote(path, safe="/"))
                return
            await _deny(send, 401, LOGIN_FIRST)
            return
        if method not in SAFE_METHODS and (
            not self.auth.check_csrf(nonce, conn.headers.get(CSRF_HEADER)) or not same_origin(scope)
        ):
            await _deny(
                send,
                403,
                "missing or wrong X-Virtkit-CSRF header, or a foreign Origin (reload the page)",
                "forbidden",
            )
            return
        await self.app(scope, receive, send)


def _with_headers(send: Send, path: str) -> Send:
    async def wrapped(msg: Message) -> None:
        if msg["type"] == "http.response.start":
            h = MutableHeaders(scope=msg)
            h.setdefault("x-frame-options", "DENY")
            h.setdefault("x-content-type-options", "nosniff")
            h.setdefault("referrer-policy", REFERRER_POLICY)
            if path.startswith("/ui"):
                h.setdefault("content-security-policy", CSP)
        await send(msg)

    return wrapped


async def _redirect(send: Send, location: str) -> None:
    headers = [(b"location", location.encode()), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def _foreign_login(scope: Scope, receive: Receive, send: Send) -> None:
    """The login page again (403), saying why: a person should not get a JSON error."""
    from virtkit.daemon.api.web import login_page

    await login_page("/ui/", FOREIGN_LOGIN, status=403)(scope, receive, send)


async def _deny(send: Send, status: int, message: str, code: str = "auth") -> None:
    body = json.dumps({"error": code, "message": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
