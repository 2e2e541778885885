"""In-process API tests: the FastAPI app over httpx's ASGI transport, every response
validated against the checked-in OpenAPI document (and request bodies of calls that
are expected to succeed, too).

pytest has no asyncio plugin here: each test hands an ``async def`` scenario to the
``api`` fixture, which runs it with ``asyncio.run`` against a fresh daemon service in
a private state directory. No QEMU is needed.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from virtkit.daemon.api.app import create_app
from virtkit.daemon.api.openapi import OPENAPI_JSON
from virtkit.daemon.service import Service
from virtkit.paths import Paths

SPEC_URI = "urn:virtkit:openapi"
UUIDS = [f"00000000-0000-4000-8000-{i:012x}" for i in range(1, 1000)]
MACS = [f"52:54:00:00:{i >> 8:02x}:{i & 0xFF:02x}" for i in range(1, 1000)]


@cache
def spec() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(OPENAPI_JSON.read_text())
    return doc


@cache
def registry() -> Registry[Any]:
    reg: Registry[Any] = Registry().with_resource(SPEC_URI, DRAFT202012.create_resource(spec()))
    return reg


def pointer(*parts: str) -> str:
    escaped = (quote(p.replace("~", "~0").replace("/", "~1"), safe="~") for p in parts)
    return "/" + "/".join(escaped)


def validate(instance: Any, *parts: str) -> None:
    """Validate ``instance`` against the schema at /parts... of the OpenAPI document."""
    ref = {"$ref": f"{SPEC_URI}#{pointer(*parts)}"}
    jsonschema.Draft202012Validator(ref, registry=registry()).validate(instance)


def path_template(path: str) -> str:
    for template in spec()["paths"]:
        rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(rx, path):
            return str(template)
    raise AssertionError(f"{path} is not in the OpenAPI document")


def check_response(method: str, url: str, resp: httpx.Response) -> None:
    """The response must be one the OpenAPI document describes for this operation."""
    template = path_template(urlsplit(url).path)
    op = spec()["paths"][template].get(method.lower())
    assert op is not None, f"{method} {template} is not in the OpenAPI document"
    status = str(resp.status_code)
    if status in op["responses"]:
        key = status
    else:
        assert resp.status_code >= 400, f"{method} {url}: undocumented status {status}"
        key = "default"
    content = op["responses"][key].get("content")
    if content is None:
        assert resp.content == b"", f"{method} {url}: {status} must have no body"
        return
    assert resp.headers["content-type"].startswith("application/json")
    validate(
        resp.json(),
        "paths",
        template,
        method.lower(),
        "responses",
        key,
        "content",
        "application/json",
        "schema",
    )


def check_request(method: str, url: str, body: Any) -> None:
    template = path_template(urlsplit(url).path)
    op = spec()["paths"][template][method.lower()]
    assert "requestBody" in op, f"{method} {template} takes no body"
    validate(
        body,
        "paths",
        template,
        method.lower(),
        "requestBody",
        "content",
        "application/json",
        "schema",
    )


@dataclass
class Api:
    """An httpx client whose every response is checked against the OpenAPI document."""

    client: httpx.AsyncClient
    svc: Service
    files: Path

    async def call(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        expect: int | None = None,
        **kw: Any,
    ) -> httpx.Response:
        if json_body is not None and expect is not None and expect < 400:
            check_request(method, url, json_body)
        if json_body is not None:
            kw["json"] = json_body
        resp = await self.client.request(method, url, **kw)
        check_response(method, url, resp)
        if expect is not None:
            assert resp.status_code == expect, (resp.status_code, resp.text[:2000])
        return resp

    async def get(self, url: str, expect: int | None = 200, **kw: Any) -> Any:
        resp = await self.call("GET", url, expect=expect, **kw)
        return resp.json()

    async def define(self, body: dict[str, Any], expect: int = 201) -> Any:
        resp = await self.call("POST", "/v1/domains", json_body=body, expect=expect)
        return resp.json()

    async def define_yaml(self, text: str, expect: int = 201) -> Any:
        return await self.define({"text": text, "source": "test.yaml"}, expect)

    async def error(self, method: str, url: str, status: int, code: str, **kw: Any) -> str:
        """Make a call that must fail with ``status`` and error code ``code``; its message."""
        resp = await self.call(method, url, expect=status, **kw)
        body = resp.json()
        assert body["error"] == code, body
        assert body["message"], body
        return str(body["message"])

    def image(self, name: str) -> str:
        p = self.files / name
        p.write_bytes(b"\0" * 512)
        return str(p)


Scenario = Callable[[Api], Awaitable[None]]


@pytest.fixture
def api(tmp_path: Path) -> Callable[[Scenario], None]:
    """Run an async scenario against a fresh in-process daemon."""

    def run(scenario: Scenario) -> None:
        async def main() -> None:
            paths = Paths("session", tmp_path / "state", tmp_path / "run")
            paths.ensure()
            files = tmp_path / "files"
            files.mkdir(exist_ok=True)
            uuids, macs = iter(UUIDS), iter(MACS)
            svc = Service(paths, new_uuid=lambda: next(uuids), new_mac=lambda: next(macs))
            svc.locks.wait_s = 0.2  # a busy domain answers 409 quickly
            app = create_app(svc)
            transport = httpx.ASGITransport(app=app)
            try:
                async with httpx.AsyncClient(transport=transport, base_url="http://virtkit") as c:
                    await scenario(Api(c, svc, files))
            finally:
                await svc.close()

        asyncio.run(main())

    return run
