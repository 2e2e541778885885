"""The web manager's routes and the browser listener's gate (login, CSRF, origin), the
event stream, VNC routes and install from argv, in process (no QEMU)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.api.conftest import Api, Scenario, check_response
from virtkit.daemon.api import eventstream
from virtkit.daemon.api.uilisten import parse_listen, start_ui
from virtkit.daemon.api.web import WebState
from virtkit.daemon.api.webgate import WebGate
from virtkit.daemon.auth.webauth import WebAuth, cookie_names, safe_next
from virtkit.errors import ConfigError

Run = Callable[[Scenario], None]
BASE = "http://127.0.0.1:8738"
CSRF_COOKIE = cookie_names(8738)[1]


def app_of(api: Api) -> Any:
    """The FastAPI app under test (what the Unix socket serves)."""
    return api.client._transport.app  # type: ignore[attr-defined]


def web(api: Api) -> WebState:
    state: WebState = app_of(api).state.web
    return state


def browser(api: Api) -> httpx.AsyncClient:
    """A client that goes through the browser listener's gate (as the TCP listener does)."""
    gate = WebGate(app_of(api), web(api).auth)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=gate), base_url=BASE)


async def login(api: Api, c: httpx.AsyncClient, next_path: str = "/ui/") -> str:
    """Log ``c`` in with a one-time link from the (Unix socket) API; its CSRF token."""
    web(api).base_url = BASE
    link = (await api.call("POST", "/v1/ui/login-link", json_body={"next": next_path},
                           expect=200)).json()  # fmt: skip
    url = urlsplit(link["url"])
    assert url.netloc == "127.0.0.1:8738" and url.path == "/ui/login"
    resp = await c.get(f"/ui/login?{url.query}")
    assert resp.status_code == 303, resp.text
    assert resp.headers["location"] == parse_qs(url.query)["next"][0]
    cookies = resp.headers.get_list("set-cookie")
    assert any(
        "vk_session_8738=" in h and "HttpOnly" in h and "SameSite=strict" in h for h in cookies
    )
    return str(c.cookies[CSRF_COOKIE])


def test_gate_wants_a_login(api: Run) -> None:
    async def scenario(a: Api) -> None:
        async with browser(a) as c:
            r = await c.get("/ui/")
            assert r.status_code == 303 and r.headers["location"] == "/ui/login?next=/ui/"
            r = await c.get("/")
            assert r.status_code == 303 and r.headers["location"] == "/ui/"
            r = await c.get("/v1/domains")
            assert r.status_code == 401 and r.json()["error"] == "auth"
            assert "virtkit ui" in r.json()["message"]
            r = await c.post("/v1/domains/x/start")
            assert r.status_code == 401
            r = await c.get("/ui/login")
            assert r.status_code == 200 and 'name="password"' in r.text
            assert r.headers["x-frame-options"] == "DENY"
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
            assert (await c.get("/ui/static/style.css")).status_code == 200  # the login's look
            assert (await c.get("/ui/static/app.js")).status_code == 303  # the rest is not

    api(scenario)


def test_one_time_link_sets_session_and_csrf_is_required(api: Run) -> None:
    async def scenario(a: Api) -> None:
        async with browser(a) as c:
            csrf = await login(a, c, "/ui/#/domain/d1/display")
            r = await c.get("/ui/")
            assert r.status_code == 200 and "app.js" in r.text
            r = await c.get("/v1/domains")
            assert r.status_code == 200 and r.json() == []
            r = await c.get("/ui/static/vendor/novnc/core/rfb.js")
            assert r.status_code == 200 and "javascript" in r.headers["content-type"]
            r = await c.get("/ui/static/vendor/xterm/xterm.mjs")
            assert r.status_code == 200
            # state-changing requests need the CSRF header ...
            r = await c.post("/v1/domains/nosuch/start")
            assert r.status_code == 403 and r.json()["error"] == "forbidden"
            r = await c.post("/v1/domains/nosuch/start", headers={"X-Virtkit-CSRF": "x" * 32})
            assert r.status_code == 403
            r = await c.post("/v1/domains/nosuch/start", headers={"X-Virtkit-CSRF": csrf})
            assert r.status_code == 404 and r.json()["error"] == "not-found"
            # ... and must come from our own origin
            evil = {"X-Virtkit-CSRF": csrf, "Origin": "http://evil.example"}
            r = await c.post("/v1/domains/nosuch/start", headers=evil)
            assert r.status_code == 403
            r = await c.post("/v1/domains/nosuch/start",
                             headers={"X-Virtkit-CSRF": csrf, "Origin": BASE})  # fmt: skip
            assert r.status_code == 404
        async with browser(a) as c2:  # a one-time link works once
            link = (await a.call("POST", "/v1/ui/login-link", json_body={}, expect=200)).json()
            q = urlsplit(link["url"]).query
            assert (await c2.get(f"/ui/login?{q}")).status_code == 303
        async with browser(a) as c3:
            r = await c3.get(f"/ui/login?{q}")
            assert r.status_code == 200 and "expired" in r.text
            assert (await c3.get("/v1/domains")).status_code == 401

    api(scenario)


def test_password_login_and_logout(api: Run) -> None:
    async def scenario(a: Api) -> None:
        password = web(a).auth.password_file.read_text().strip()
        assert oct(web(a).auth.password_file.stat().st_mode & 0o777) == "0o600"
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        async with browser(a) as c:
            r = await c.post("/ui/login", content="password=wrong&next=/ui/", headers=form)
            assert r.status_code == 401 and "Wrong password" in r.text
            r = await c.post("/ui/login", content="password=x", headers=form | {
                "Origin": "http://evil.example"})  # fmt: skip
            assert r.status_code == 403
            r = await c.post("/ui/login", content=f"password={password}&next=//evil/",
                             headers=form)  # fmt: skip
            assert r.status_code == 303 and r.headers["location"] == "/ui/"
            assert (await c.get("/v1/domains")).status_code == 200
            csrf = c.cookies[CSRF_COOKIE]
            r = await c.post("/ui/logout", headers={"X-Virtkit-CSRF": csrf})
            assert r.status_code == 303
            c.cookies.clear()
            assert (await c.get("/v1/domains")).status_code == 401

    api(scenario)


def test_login_form_origin_rules(api: Run) -> None:
    """The login page makes the browser send its Origin; only our own may log in (OWASP)."""

    async def scenario(a: Api) -> None:
        password = web(a).auth.password_file.read_text().strip()
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        body = f"password={password}&next=/ui/"
        async with browser(a) as c:
            r = await c.get("/ui/login")
            # no-referrer would make Chromium send "Origin: null" on the form's POST
            assert r.headers["referrer-policy"] == "same-origin"
            assert "form-action 'self'" in r.headers["content-security-policy"]
            assert (await c.get("/v1/domains")).headers["referrer-policy"] == "same-origin"
            ours = {"Origin": BASE, "Sec-Fetch-Site": "same-origin",
                    "Referer": f"{BASE}/ui/login?next=/ui/"}  # fmt: skip
            r = await c.post("/ui/login", content="password=wrong&next=/ui/",
                             headers=form | ours)  # fmt: skip
            assert r.status_code == 401 and "text/html" in r.headers["content-type"]
            assert "Wrong password" in r.text and 'name="password"' in r.text
            assert "web-password" in r.text
            foreign = [
                {"Origin": "null"},  # sandboxed frame, data: URL, a no-referrer page
                {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
                {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
                {"Origin": "http://127.0.0.1:8739"},  # another port is another origin
                {"Origin": BASE, "Sec-Fetch-Site": "same-site"},
                {"Sec-Fetch-Site": "cross-site"},
                {"Referer": "http://evil.example/login.html"},
            ]
            for headers in foreign:
                r = await c.post("/ui/login", content=body, headers=form | headers)
                assert r.status_code == 403, headers
                assert "text/html" in r.headers["content-type"], headers
                assert "refused" in r.text and 'name="password"' in r.text, headers
                assert "set-cookie" not in r.headers, headers
            assert (await c.get("/v1/domains")).status_code == 401
            for headers in ({"Referer": f"{BASE}/ui/login"}, {"Sec-Fetch-Site": "none"}, ours):
                c.cookies.clear()
                r = await c.post("/ui/login", content=body, headers=form | headers)
                assert r.status_code == 303 and r.headers["location"] == "/ui/", headers
                assert (await c.get("/v1/domains")).status_code == 200
            # the rest of the API: Origin "null" is foreign there too
            csrf = c.cookies[CSRF_COOKIE]
            r = await c.post("/v1/domains/nosuch/start",
                             headers={"X-Virtkit-CSRF": csrf, "Origin": "null"})  # fmt: skip
            assert r.status_code == 403

    api(scenario)


def test_websockets_need_session_and_origin(api: Run) -> None:
    async def scenario(a: Api) -> None:
        gate = WebGate(app_of(a), web(a).auth)
        session, _ = web(a).auth.new_session()

        async def ws(headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
            sent: list[dict[str, Any]] = []
            scope = {
                "type": "websocket",
                "path": "/v1/domains/x/console",
                "scheme": "ws",
                "server": ("127.0.0.1", 8738),
                "headers": [(b"host", b"127.0.0.1:8738"), *headers],
                "query_string": b"",
            }

            async def receive() -> dict[str, Any]:
                return {"type": "websocket.connect"}

            async def send(msg: MutableMapping[str, Any]) -> None:
                sent.append(dict(msg))

            await gate(scope, receive, send)
            return sent

        cookie = (b"cookie", f"vk_session_8738={session}".encode())
        assert (await ws([]))[0] == {"type": "websocket.close", "code": 4401}
        assert (await ws([cookie]))[0]["code"] == 4401  # no Origin: not a browser of ours
        evil = (b"origin", b"http://evil.example")
        assert (await ws([cookie, evil]))[0]["code"] == 4401
        ours = (b"origin", BASE.encode())
        out = await ws([cookie, ours])  # through the gate: the console refuses (no domain x)
        assert out[0]["type"] == "websocket.accept"

    api(scenario)


def test_ui_info_and_login_link_without_listener(api: Run) -> None:
    async def scenario(a: Api) -> None:
        info = await a.get("/v1/ui")
        assert info["listening"] is False and "--ui-listen" in info["message"]
        assert info["password_file"].endswith("web-password")
        msg = await a.error("POST", "/v1/ui/login-link", 409, "state", json={})
        assert "--ui-listen" in msg
        web(a).base_url = BASE
        info = await a.get("/v1/ui")
        assert info == info | {"listening": True, "url": f"{BASE}/ui/"}

    api(scenario)


def test_vnc_routes(api: Run) -> None:
    async def scenario(a: Api) -> None:
        await a.define_yaml("name: v1\nmemory_mib: 64\ngraphics: {type: vnc}\n")
        msg = await a.error("GET", "/v1/domains/v1/vncdisplay", 409, "state")
        assert "not running" in msg
        await a.error("POST", "/v1/domains/v1/vnc/session", 409, "state")
        await a.error("GET", "/v1/domains/nosuch/vncdisplay", 404, "not-found")
        # the proxy refuses a connection without a valid token before touching VNC
        sent: list[dict[str, Any]] = []
        scope = {"type": "websocket", "path": "/v1/domains/v1/vnc", "headers": [],
                 "query_string": b"token=bogus", "scheme": "ws"}  # fmt: skip

        async def receive() -> dict[str, Any]:
            return {"type": "websocket.connect"}

        async def send(msg: MutableMapping[str, Any]) -> None:
            sent.append(dict(msg))

        await app_of(a)(scope, receive, send)
        assert sent[0]["type"] == "websocket.close" and sent[0]["code"] == 4401

    api(scenario)


def test_vnc_tokens_are_single_use_and_bound() -> None:
    import tempfile
    from pathlib import Path

    now = [1000.0]
    auth = WebAuth(Path(tempfile.mkdtemp()), clock=lambda: now[0])
    t = auth.vnc_token("a")
    assert not auth.use_vnc_token(t, "b")
    assert auth.use_vnc_token(t, "a")
    assert not auth.use_vnc_token(t, "a")
    t2 = auth.vnc_token("a")
    now[0] += 61
    assert not auth.use_vnc_token(t2, "a")
    s, csrf = auth.new_session()
    nonce = auth.session_nonce(s)
    assert nonce is not None and auth.check_csrf(nonce, csrf)
    assert auth.session_nonce(s[:-1] + ("0" if s[-1] != "0" else "1")) is None
    now[0] += 13 * 3600
    assert auth.session_nonce(s) is None
    for bad in ("//evil.example/", "https://x/", "/other", "/ui/\\x"):
        assert safe_next(bad) == "/ui/"
    assert safe_next("/ui/#/domain/x") == "/ui/#/domain/x"


def test_event_stream_format_and_resume(api: Run) -> None:
    async def scenario(a: Api) -> None:
        bus = a.svc.bus
        first = bus.publish("d1", "started", "booted")
        bus.publish("d2", "started", "booted")
        third = bus.publish("d1", "stopped", "shutdown")
        gen = eventstream._events(a.svc, first - 1, "d1", 0.05)
        hello = await anext(gen)
        assert hello.startswith("retry: ")
        chunk = await anext(gen)
        msgs = [m for m in chunk.split("\n\n") if m]
        assert [m.split("\n")[0] for m in msgs] == [f"id: {first}", f"id: {third}"]
        data = json.loads(msgs[1].split("\n")[1][len("data: ") :])
        assert data == data | {"seq": third, "domain": "d1", "type": "stopped"}
        assert await anext(gen) == ": keepalive\n\n"
        later = asyncio.get_running_loop().call_later(0.02, bus.publish, "d1", "reboot", "")
        chunk = await anext(gen)
        assert chunk.startswith(f"id: {third + 1}\n")
        later.cancel()
        await gen.aclose()
        assert bus.last_seq() == third + 1

    api(scenario)


def test_install_from_argv(api: Run) -> None:
    async def scenario(a: Api) -> None:
        kernel, initrd = a.image("vmlinuz"), a.image("initrd.img")
        argv = ["--name", "w1", "--memory", "128", "--vcpus", "1", "--boot",
                f"kernel={kernel},initrd={initrd},kernel_args=\"console=ttyS0 quiet\"",
                "--graphics", "vnc", "--network", "user", "--noautoconsole"]  # fmt: skip
        r = await a.call("POST", "/v1/install/argv", json_body={"argv": argv, "dry_run": True},
                         expect=200)  # fmt: skip
        assert r.json()["domain"]["name"] == "w1" and r.json()["created"] == []
        assert (await a.get("/v1/domains?all=true")) == []  # a dry run creates nothing
        msg = await a.error("POST", "/v1/install/argv", 400, "config",
                            json={"argv": ["--name", "w2", "--hvm-bogus"]})  # fmt: skip
        assert "bogus" in msg
        await a.error("POST", "/v1/install/argv", 400, "config",
                      json={"argv": [*argv, "--print-xml"]})  # fmt: skip

    api(scenario)


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:8738") == ("127.0.0.1", 8738)
    assert parse_listen("8738") == ("127.0.0.1", 8738)
    assert parse_listen("[::1]:0") == ("::1", 0)
    assert parse_listen("localhost:9000") == ("127.0.0.1", 9000)
    assert parse_listen("none") is None and parse_listen("") is None
    for bad in ("127.0.0.1", "host.example:80", "127.0.0.1:99999", "[::1]8738"):
        with pytest.raises(ConfigError):
            parse_listen(bad)


def test_tcp_listener_serves_the_gated_app(api: Run) -> None:
    async def scenario(a: Api) -> None:
        app = app_of(a)
        ui = await start_ui(app, "127.0.0.1:0")
        assert ui is not None
        try:
            state = web(a)
            assert state.base_url == ui.base_url and ui.port > 0
            async with httpx.AsyncClient(base_url=ui.base_url) as c:
                r = await c.get("/v1/domains")
                assert r.status_code == 401
                check_response("GET", "/v1/domains", r)
                r = await c.get("/ui/")
                assert r.status_code == 303
            busy = await start_ui(app, f"127.0.0.1:{ui.port}")  # taken: a warning, no crash
            assert busy is None and "cannot listen" in state.ui_error
            assert await start_ui(app, "example.org:80") is None  # a bad setting: no UI
            assert "give an IP address" in state.ui_error
            assert state.base_url == ui.base_url
        finally:
            await ui.stop()

    api(scenario)
