"""Host-feature routes: nodeinfo, capabilities (NUMA), KSM, node devices (PCI, vfio-pci,
SR-IOV), and per-domain CPU pinning (vcpupin, emulatorpin) and numatune."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from virtkit.daemon.domains import tuning
from virtkit.daemon.host import nodedev
from virtkit.daemon.service import Service
from virtkit.errors import ConfigError

CPULIST = r"^[0-9^,\- ]{1,1024}$"


class _Req(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Overcommit(BaseModel):
    vcpus_promised: int
    vcpus_limit: int
    host_cpus: int
    cpu_allocation_ratio: float
    memory_promised_mib: int
    memory_limit_mib: int
    host_memory_mib: int
    memory_allocation_ratio: float
    guests: int


class NodeInfo(BaseModel):
    cpu_model: str
    model_name: str
    cpus: int
    cpu_mhz: int
    sockets: int
    cores_per_socket: int
    threads_per_core: int
    numa_cells: int
    memory_kib: int
    overcommit: Overcommit


class HostCpu(BaseModel):
    id: int
    socket_id: int
    die_id: int
    core_id: int
    siblings: str


class Distance(BaseModel):
    id: int
    value: int


class HugePages(BaseModel):
    size_kib: int
    count: int


class HostCell(BaseModel):
    id: int
    memory_kib: int
    free_kib: int
    cpus: list[HostCpu]
    distances: list[Distance]
    hugepages: list[HugePages]


class Capabilities(BaseModel):
    arch: str
    vendor: str
    model_name: str
    sockets: int
    cores_per_socket: int
    threads_per_core: int
    memory_kib: int
    cells: list[HostCell]
    iommu: bool
    overcommit: Overcommit


class KsmState(BaseModel):
    available: bool
    values: dict[str, int]


class KsmRequest(_Req):
    pages_to_scan: int | None = Field(default=None, ge=0, le=1 << 31)
    sleep_millisecs: int | None = Field(default=None, ge=0, le=1 << 31)
    merge_across_nodes: int | None = Field(default=None, ge=0, le=1)
    run: int | None = Field(default=None, ge=0, le=2)


class NodeDev(BaseModel):
    name: str
    address: str
    path: str
    parent: str
    vendor: int
    device: int
    subsystem_vendor: int
    subsystem_device: int
    class_code: int
    driver: str | None
    driver_override: str | None
    iommu_group: int | None
    iommu_group_devices: list[str]
    numa_node: int
    sriov_totalvfs: int | None
    sriov_numvfs: int | None
    physfn: str | None
    virtfns: list[str]
    used_by: list[str]


class SriovRequest(_Req):
    numvfs: int = Field(ge=0, le=4096)


class Pin(BaseModel):
    vcpu: int
    cpuset: str


class VcpuPinResult(BaseModel):
    vcpus: list[Pin]
    live: bool
    config: bool


class VcpuPinRequest(_Req):
    vcpu: int = Field(ge=0, le=1023)
    cpulist: str = Field(pattern=CPULIST)
    live: bool = False
    config: bool = False


class EmulatorPin(BaseModel):
    cpuset: str
    live: bool
    config: bool


class EmulatorPinRequest(_Req):
    cpulist: str = Field(pattern=CPULIST)
    live: bool = False
    config: bool = False


class NumaTune(BaseModel):
    mode: str
    nodeset: str
    live: bool
    config: bool


class NumaTuneRequest(_Req):
    nodeset: str | None = Field(default=None, pattern=r"^[0-9^,\- ]{0,1024}$")
    mode: str | None = Field(default=None, pattern=r"^(strict|preferred|interleave)$")
    live: bool = False
    config: bool = False


def router(svc: Service) -> APIRouter:
    r = APIRouter(tags=["host"])

    @r.get("/v1/host/nodeinfo", response_model=NodeInfo)
    async def nodeinfo() -> dict[str, Any]:
        return nodedev.nodeinfo(svc)

    @r.get("/v1/host/capabilities", response_model=Capabilities)
    async def capabilities() -> dict[str, Any]:
        return nodedev.capabilities(svc)

    @r.get("/v1/host/ksm", response_model=KsmState)
    async def ksm_get() -> dict[str, Any]:
        return nodedev.ksm_state(svc)

    @r.put("/v1/host/ksm", response_model=KsmState)
    async def ksm_put(body: KsmRequest) -> dict[str, Any]:
        return nodedev.ksm_set(svc, body.model_dump(exclude_none=True))

    @r.get("/v1/host/nodedevs", response_model=list[NodeDev])
    async def nodedev_list(cap: str | None = Query(None, max_length=32)) -> list[dict[str, Any]]:
        return nodedev.nodedev_list(svc, cap)

    @r.get("/v1/host/nodedevs/{dev}", response_model=NodeDev)
    async def nodedev_get(dev: str) -> dict[str, Any]:
        return nodedev.nodedev_get(svc, dev)

    @r.post("/v1/host/nodedevs/{dev}/detach", response_model=NodeDev)
    async def nodedev_detach(dev: str) -> dict[str, Any]:
        return nodedev.nodedev_detach(svc, dev)

    @r.post("/v1/host/nodedevs/{dev}/reattach", response_model=NodeDev)
    async def nodedev_reattach(dev: str) -> dict[str, Any]:
        return nodedev.nodedev_reattach(svc, dev)

    @r.put("/v1/host/nodedevs/{dev}/sriov", response_model=NodeDev)
    async def nodedev_sriov(dev: str, body: SriovRequest) -> dict[str, Any]:
        return nodedev.nodedev_sriov(svc, dev, body.numvfs)

    base = "/v1/domains/{name}"

    @r.get(base + "/vcpupin", response_model=VcpuPinResult, tags=["domains"])
    async def vcpupin_get(
        name: str, vcpu: int | None = Query(None, ge=0, le=1023), live: bool = False,
        config: bool = False,
    ) -> dict[str, Any]:  # fmt: skip
        return await tuning.vcpupin(svc, name, vcpu, None, live=live, config=config)

    @r.put(base + "/vcpupin", response_model=VcpuPinResult, tags=["domains"])
    async def vcpupin_put(name: str, body: VcpuPinRequest) -> dict[str, Any]:
        return await tuning.vcpupin(
            svc, name, body.vcpu, body.cpulist, live=body.live, config=body.config
        )

    @r.get(base + "/emulatorpin", response_model=EmulatorPin, tags=["domains"])
    async def emulatorpin_get(name: str, live: bool = False, config: bool = False) -> Any:
        return await tuning.emulatorpin(svc, name, None, live=live, config=config)

    @r.put(base + "/emulatorpin", response_model=EmulatorPin, tags=["domains"])
    async def emulatorpin_put(name: str, body: EmulatorPinRequest) -> dict[str, Any]:
        return await tuning.emulatorpin(svc, name, body.cpulist, live=body.live, config=body.config)

    @r.get(base + "/numatune", response_model=NumaTune, tags=["domains"])
    async def numatune_get(name: str, config: bool = False) -> dict[str, Any]:
        return await tuning.numatune(svc, name, config=config)

    @r.put(base + "/numatune", response_model=NumaTune, tags=["domains"])
    async def numatune_put(name: str, body: NumaTuneRequest) -> dict[str, Any]:
        if body.nodeset is None and body.mode is None:
            raise ConfigError('give nodeset ("" removes the binding) and/or mode')
        return await tuning.numatune(
            svc, name, body.nodeset, body.mode, live=body.live, config=body.config
        )

    return r
