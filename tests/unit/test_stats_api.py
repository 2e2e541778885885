"""GET /v1/stats and GET /metrics in-process (no QEMU): shut-off domains, errors,
the request-latency histogram, and a registry of its own per app."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import jsonschema  # type: ignore[import-untyped]
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from virtkit.daemon.api.app import create_app
from virtkit.daemon.api.openapi import OPENAPI_JSON
from virtkit.daemon.service import Service
from virtkit.paths import Paths


def test_stats_and_metrics_in_process(tmp_path: Path) -> None:
    spec = json.loads(OPENAPI_JSON.read_text())
    schema = spec["paths"]["/v1/stats"]["get"]["responses"]["200"]["content"]
    schema = schema["application/json"]["schema"] | {"components": spec["components"]}

    async def main() -> None:
        paths = Paths("session", tmp_path / "state", tmp_path / "run")
        paths.ensure()
        svc = Service(paths)
        transport = httpx.ASGITransport(app=create_app(svc))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://vk") as c:
                for n in ("b", "a"):
                    r = await c.post("/v1/domains", json={"config": {"name": n}})
                    assert r.status_code == 201, r.text
                r = await c.get("/v1/stats")
                assert r.status_code == 200
                body = r.json()
                jsonschema.Draft202012Validator(schema).validate(body)
                assert [d["name"] for d in body["domains"]] == ["a", "b"]
                off = {"state.state": 5, "state.reason": 0}
                assert body["domains"][0] == {"name": "a", "id": None, "state": "shut off",
                                              "stats": off}  # fmt: skip
                r = await c.get("/v1/stats", params={"domain": ["b"], "groups": "cpu,state"})
                assert [d["name"] for d in r.json()["domains"]] == ["b"]
                r = await c.get("/v1/stats", params={"active": "true"})
                assert r.json()["domains"] == []
                r = await c.get("/v1/stats", params={"groups": "disk"})
                assert r.status_code == 400 and r.json()["error"] == "config"
                r = await c.get("/v1/stats", params={"domain": "zz"})
                assert r.status_code == 404 and r.json()["error"] == "not-found"
                await c.get("/v1/domains/a")
                r = await c.get("/metrics")
                assert r.status_code == 200
                assert r.headers["content-type"].startswith("text/plain")
                text = r.text
        finally:
            await svc.close()
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        st = {(s.labels["domain"], s.labels["state"]): s.value
              for s in fams["virtkit_domain_state"].samples}  # fmt: skip
        assert st[("a", "shut off")] == 1.0 and st[("a", "running")] == 0.0
        assert not fams["virtkit_domain_cpu_seconds"].samples  # nothing runs
        hist = fams["virtkit_api_request_seconds"].samples
        counts = {(s.labels["method"], s.labels["route"]): s.value
                  for s in hist if s.name.endswith("_count")}  # fmt: skip
        assert counts[("GET", "/v1/stats")] == 5
        assert counts[("POST", "/v1/domains")] == 2
        assert counts[("GET", "/v1/domains/{name}")] == 1  # the template, not the name

    asyncio.run(main())
    assert REGISTRY.get_sample_value("virtkit_api_request_seconds_count") is None
