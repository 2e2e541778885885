"""HTTP API of managed networks (virsh net-*) and of a domain's interfaces (domif*,
port-forward)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from virtkit.daemon.api import schemas as s
from virtkit.daemon.domains import domif
from virtkit.daemon.network.service import NetworkManager, manager
from virtkit.daemon.service import Service
from virtkit.formats.libvirt_netxml import network_to_xml
from virtkit.formats.netfile import network_to_mapping

N = "/v1/networks/{net}"
D = "/v1/domains/{name}"


class _Req(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NetworkDefineRequest(_Req):
    text: str | None = Field(default=None, max_length=1 << 20)  # YAML, JSON or network XML
    config: dict[str, Any] | None = None
    source: str = Field(default="network", max_length=256)
    start: bool = False  # net-create: a transient network, started at once


class NetAutostartRequest(_Req):
    enabled: bool


class NetworkInfo(BaseModel):
    name: str
    uuid: str
    active: bool
    autostart: bool
    persistent: bool
    mode: str
    bridge: str | None
    address: str
    subnet: str
    dhcp: bool
    dhcp_start: str | None
    dhcp_end: str | None
    dnsmasq_pid: int | None
    users: list[str]
    note: str = ""


class NetworkXml(BaseModel):
    xml: str


class Lease(BaseModel):
    expiry: int
    mac: str
    type: str
    address: str
    prefix: int
    hostname: str | None
    client_id: str | None
    interface: str | None


class Interface(BaseModel):
    interface: str
    type: str
    source: str
    model: str
    mac: str
    hostfwd: list[str]


class IfAddr(BaseModel):
    name: str
    mac: str
    type: str
    address: str
    prefix: int


class IfStat(BaseModel):
    interface: str
    mac: str | None
    rx_bytes: int
    rx_packets: int
    rx_errs: int
    rx_drop: int
    tx_bytes: int
    tx_packets: int
    tx_errs: int
    tx_drop: int


class PortForwardRequest(_Req):
    add: list[str] = Field(default_factory=list, max_length=64)
    remove: list[str] = Field(default_factory=list, max_length=64)
    mac: str | None = Field(default=None, max_length=17)
    live: bool = False
    config: bool = False
    persistent: bool = False


class PortForwards(BaseModel):
    mac: str | None
    rules: list[str]
    live: bool
    config: bool


def router(svc: Service) -> APIRouter:
    r = APIRouter(responses={"default": {"model": s.ErrorBody, "description": "error"}})

    def m() -> NetworkManager:
        return manager(svc)

    @r.get("/v1/networks", response_model=list[NetworkInfo], tags=["networks"])
    async def list_networks(all: bool = False) -> list[dict[str, Any]]:
        mgr = m()
        return [mgr.view(n) for n in mgr.db.all() if all or n.active]

    @r.post("/v1/networks", response_model=NetworkInfo, status_code=201, tags=["networks"])
    async def define_network(body: NetworkDefineRequest) -> dict[str, Any]:
        mgr = m()
        net = await mgr.define(body.text, body.config, body.source, persistent=not body.start)
        if body.start:
            try:
                return await mgr.start(net.name)
            except BaseException:
                await mgr.undefine(net.name)  # net-create: nothing half-created
                raise
        return mgr.view(mgr.stored(net.name))

    @r.get(N, response_model=NetworkInfo, tags=["networks"])
    async def network_info(net: str) -> dict[str, Any]:
        mgr = m()
        return mgr.view(await mgr.lookup(net))

    @r.get(N + "/config", response_model=dict[str, Any], tags=["networks"])
    async def network_config(net: str) -> dict[str, Any]:
        mgr = m()
        return network_to_mapping(mgr.network(await mgr.lookup(net)))

    @r.get(N + "/xml", response_model=NetworkXml, tags=["networks"])
    async def network_xml(net: str) -> dict[str, Any]:
        mgr = m()
        return {"xml": network_to_xml(mgr.network(await mgr.lookup(net)))}

    @r.delete(N, status_code=204, tags=["networks"])
    async def undefine_network(net: str) -> None:
        await m().undefine(net)

    @r.post(N + "/start", response_model=NetworkInfo, tags=["networks"])
    async def network_start(net: str) -> dict[str, Any]:
        return await m().start(net)

    @r.post(N + "/destroy", response_model=NetworkInfo, tags=["networks"])
    async def network_destroy(net: str) -> dict[str, Any]:
        return await m().destroy(net)

    @r.put(N + "/autostart", response_model=NetworkInfo, tags=["networks"])
    async def network_autostart(net: str, body: NetAutostartRequest) -> dict[str, Any]:
        mgr = m()
        await mgr.lookup(net)
        mgr.set_autostart(net, body.enabled)
        return mgr.view(mgr.stored(net))

    @r.get(N + "/leases", response_model=list[Lease], tags=["networks"])
    async def network_leases(net: str, mac: str | None = Query(None, max_length=17)
                             ) -> list[dict[str, Any]]:  # fmt: skip
        mgr = m()
        await mgr.lookup(net)
        return mgr.leases(net, mac)

    @r.get(D + "/interfaces", response_model=list[Interface], tags=["networks"])
    async def domiflist(name: str) -> list[dict[str, Any]]:
        return domif.iflist(svc, name)

    @r.get(D + "/interfaces/addresses", response_model=list[IfAddr], tags=["networks"])
    async def domifaddr(name: str, source: str = Query("lease", pattern="^(lease|arp|agent)$")
                        ) -> list[dict[str, Any]]:  # fmt: skip
        return await domif.ifaddr(svc, name, source)

    @r.get(D + "/interfaces/stats", response_model=list[IfStat], tags=["networks"])
    async def domifstat(name: str, interface: str | None = Query(None, max_length=17)
                        ) -> list[dict[str, Any]]:  # fmt: skip
        return domif.ifstat(svc, name, interface)

    @r.post(D + "/port-forwards", response_model=PortForwards, tags=["networks"])
    async def port_forward(name: str, body: PortForwardRequest) -> dict[str, Any]:
        return await domif.port_forward(svc, name, body.add, body.remove, mac=body.mac,
                                        live=body.live, config=body.config,
                                        persistent=body.persistent)  # fmt: skip

    return r
