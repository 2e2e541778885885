"""Network and interface routes in process, validated against the OpenAPI document.

Nothing here starts a network (that would make bridges in this namespace: see
tests/integration/test_networks.py, which runs inside its own network namespace).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.api.conftest import Api, Scenario
from virtkit.errors import HostError
from virtkit.formats.libvirt_netxml import network_from_xml
from virtkit.network import bridge as B
from virtkit.network import dnsmasq as D
from virtkit.network import firewall as F

Run = Callable[[Scenario], None]
LAN = "name: lan\nbridge: vkapi0\naddress: 10.88.0.1/24\n"
XML = """<network><name>iso</name><bridge name='vkapi1'/>
<ip address='10.89.0.1' netmask='255.255.255.0'><dhcp>
<range start='10.89.0.10' end='10.89.0.20'/></dhcp></ip></network>"""


async def define(c: Api, text: str, expect: int = 201) -> dict[str, object]:
    body = {"text": text, "source": "net.yaml"}
    resp = await c.call("POST", "/v1/networks", json_body=body, expect=expect)
    out: dict[str, object] = resp.json()
    return out


def test_define_list_info_dump_undefine(api: Run) -> None:
    async def scenario(c: Api) -> None:
        lan = await define(c, LAN)
        assert lan["active"] is False and lan["bridge"] == "vkapi0" and lan["mode"] == "nat"
        assert (lan["dhcp_start"], lan["dhcp_end"]) == ("10.88.0.2", "10.88.0.254")
        iso = await define(c, XML)
        assert iso["mode"] == "isolated" and iso["dhcp_start"] == "10.89.0.10"
        assert await c.get("/v1/networks") == []
        names = [n["name"] for n in await c.get("/v1/networks", params={"all": "true"})]
        assert names == ["iso", "lan"]
        xml = (await c.get("/v1/networks/lan/xml"))["xml"]
        assert network_from_xml(xml).address == "10.88.0.1/24"
        cfg = await c.get("/v1/networks/iso/config")
        assert cfg["mode"] == "isolated" and cfg["bridge"] == "vkapi1"
        body = {"enabled": True}
        resp = await c.call("PUT", "/v1/networks/lan/autostart", json_body=body, expect=200)
        assert resp.json()["autostart"] is True
        assert await c.get("/v1/networks/lan/leases") == []  # inactive: no leases
        # redefining keeps the uuid and the picked bridge
        again = await define(c, LAN.replace("10.88.0.1/24", "10.88.0.1/16"))
        assert again["uuid"] == lan["uuid"] and again["subnet"] == "10.88.0.0/16"
        await c.call("DELETE", "/v1/networks/lan", expect=204)
        await c.error("GET", "/v1/networks/lan", 404, "not-found")
        await c.error("POST", "/v1/networks/nosuch/start", 404, "not-found")
        await c.error("POST", "/v1/networks/iso/destroy", 409, "state")

    api(scenario)


def test_bad_networks_are_refused_and_nothing_is_stored(api: Run) -> None:
    async def scenario(c: Api) -> None:
        await define(c, LAN)
        url = "/v1/networks"

        async def bad(text: str) -> str:
            return await c.error("POST", url, 400, "config", json={"text": text})

        assert "overlaps network 'lan'" in await bad("name: b\naddress: 10.88.0.129/25\n")
        assert "bridge name 'vkapi0' is already used by network 'lan'" in await bad(
            "name: c\nbridge: vkapi0\naddress: 10.90.0.1/24\n"
        )
        assert "invalid MAC address" in await bad(
            "name: d\naddress: 10.91.0.1/24\ndhcp_hosts:\n  - {mac: '52:54:00:00:00', "
            "ip: 10.91.0.5}\n"
        )
        assert "not a private range" in await bad("name: e\naddress: 1.2.3.1/24\n")
        assert "expected a <network> document" in await bad("<domain/>")
        names = [n["name"] for n in await c.get("/v1/networks", params={"all": "true"})]
        assert names == ["lan"]
        # a picked bridge never clashes with another network's
        auto = await define(c, "name: f\naddress: 10.92.0.1/24\n")
        assert str(auto["bridge"]).startswith("virbr")

    api(scenario)


def test_domain_interfaces_and_port_forwards_in_the_definition(api: Run) -> None:
    async def scenario(c: Api) -> None:
        await c.define({"config": {"name": "web", "nics": [
            {"type": "user", "hostfwd": ["tcp::2222-:22"]},
            {"type": "network", "source": "lan"}]}})  # fmt: skip
        rows = await c.get("/v1/domains/web/interfaces")
        assert [(r["interface"], r["type"], r["source"]) for r in rows] == [
            ("-", "user", ""),
            ("-", "network", "lan"),
        ]
        assert rows[0]["hostfwd"] == ["tcp::2222-:22"] and rows[0]["mac"]
        url = "/v1/domains/web/port-forwards"
        resp = await c.call(
            "POST",
            url,
            json_body={"add": ["tcp:127.0.0.1:8080-:80"], "remove": ["tcp::2222"]},
            expect=200,
        )
        assert resp.json() == {"mac": rows[0]["mac"], "rules": ["tcp:127.0.0.1:8080-:80"],
                               "live": False, "config": True}  # fmt: skip
        cfg = await c.get("/v1/domains/web/config")
        assert cfg["nics"][0]["hostfwd"] == ["tcp:127.0.0.1:8080-:80"]
        listed = await c.call("POST", url, json_body={}, expect=200)
        assert listed.json()["rules"] == ["tcp:127.0.0.1:8080-:80"]
        msg = await c.error("POST", url, 400, "config", json={"add": ["tcp:8080-:80"]})
        assert "invalid port forward" in msg
        msg = await c.error("POST", url, 404, "not-found", json={"remove": ["tcp::9999"]})
        assert "no port forward tcp::9999" in msg
        msg = await c.error("POST", url, 400, "config", json={"add": ["tcp:127.0.0.1:8080-:81"]})
        assert "already forwarded" in msg
        await c.error("POST", url, 409, "state", json={"add": ["tcp::1-:2"], "live": True})
        await c.error("GET", "/v1/domains/web/interfaces/addresses", 409, "state")
        await c.error("GET", "/v1/domains/web/interfaces/stats", 409, "state")
        # starting needs the network: not defined, then not active (nothing is started)
        msg = await c.error("POST", "/v1/domains/web/start", 400, "config")
        assert "network 'lan' is not defined" in msg
        await define(c, LAN)
        msg = await c.error("POST", "/v1/domains/web/start", 400, "config")
        assert "network 'lan' is not active" in msg and "net-start lan" in msg
        assert (await c.get("/v1/domains/web"))["state"] == "shut off"

    api(scenario)


def test_a_failed_start_undoes_every_step(api: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every host-touching step is replaced by a recorder: nothing real is created here."""
    calls: list[str] = []

    def rec(name: str, fail: bool = False) -> Callable[..., None]:
        def fn(*args: object) -> None:
            calls.append(name)
            if fail:
                raise HostError("dnsmasq of network 'lan' failed: port 53 in use")

        return fn

    monkeypatch.setattr(B, "host_subnets", lambda *a: [])
    monkeypatch.setattr(B, "link_exists", lambda name: False)
    for fn in ("create_bridge", "delete_bridge", "enable_forwarding"):
        monkeypatch.setattr(B, fn, rec(fn))
    monkeypatch.setattr(F, "apply", rec("nft-apply"))
    monkeypatch.setattr(F, "remove", rec("nft-remove"))
    monkeypatch.setattr(D, "start", rec("dnsmasq-start", fail=True))
    monkeypatch.setattr(D, "stop", rec("dnsmasq-stop"))

    async def scenario(c: Api) -> None:
        await define(c, LAN)
        msg = await c.error("POST", "/v1/networks/lan/start", 500, "host")
        assert "port 53 in use" in msg
        assert calls == ["create_bridge", "enable_forwarding", "nft-apply", "dnsmasq-start",
                         "nft-remove", "delete_bridge"]  # fmt: skip
        info = await c.get("/v1/networks/lan")
        assert info["active"] is False
        assert not (c.svc.paths.state_dir / "networks" / "lan" / "bridge.active").exists()
        # net-create: a failed start leaves no definition behind either
        calls.clear()
        body = {"text": LAN.replace("lan", "tmp").replace("vkapi0", "vkapi9")
                .replace("10.88.", "10.87."), "start": True}  # fmt: skip
        await c.error("POST", "/v1/networks", 500, "host", json=body)
        await c.error("GET", "/v1/networks/tmp", 404, "not-found")
        assert "delete_bridge" in calls

    api(scenario)
