"""Lax types through the API (issue 12, finding 7): ``vcpus: true``, ``vcpus: 1.0`` and
``memory_mib: "64"`` are refused with the field and the expected type named, for
domains, networks and install requests alike; enums given as strings still work."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

import pytest

from tests.api.conftest import Api, Scenario
from virtkit.formats.virtinstall import parse_install_args

Run = Callable[[Scenario], None]


@pytest.mark.parametrize(
    ("field", "value", "expect"),
    [
        ("vcpus", True, "vcpus: expected an integer, got true"),
        ("vcpus", 1.0, "vcpus: expected an integer, got 1.0"),
        ("memory_mib", "64", 'memory_mib: expected an integer, got "64"'),
        ("serial", "yes", 'serial: expected a boolean (true or false), got "yes"'),
    ],
)
def test_domain_config_types(api: Run, field: str, value: Any, expect: str) -> None:
    async def scenario(c: Api) -> None:
        config = {"name": "t", "memory_mib": 64, field: value}
        msg = await c.error("POST", "/v1/domains", 400, "config", json_body={"config": config})
        assert expect in msg, msg
        assert await c.get("/v1/domains", params={"all": "true"}) == []
        ok = {"name": "t", "memory_mib": 64, "vcpus": 2,
              "nics": [{"type": "user", "model": "e1000"}]}  # fmt: skip
        await c.define({"config": ok})

    api(scenario)


def test_network_and_install_types(api: Run) -> None:
    async def scenario(c: Api) -> None:
        net = {"name": "n1", "mode": "nat", "address": "10.77.0.1/24", "mtu": "1500"}
        msg = await c.error("POST", "/v1/networks", 400, "config", json_body={"config": net})
        assert 'mtu: expected an integer, got "1500"' in msg, msg
        argv = "--name i --memory 64 --import --disk path=/nonexistent.img --network none"
        spec: dict[str, Any] = parse_install_args(shlex.split(argv)).spec.model_dump(mode="json")
        spec["noreboot"] = 1
        r = await c.call("POST", "/v1/install", json_body={"spec": spec, "dry_run": True})
        assert r.status_code in (400, 422), r.text
        assert "noreboot" in r.text and "boolean" in r.text, r.text

    api(scenario)
