"""Hot-plug routes: disks, devices (DIMMs), vCPUs and memory of a domain.

--live/--config/--persistent travel as the body fields ``live``, ``config``,
``persistent`` (none set: live if the domain runs, else config — virsh's default).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from virtkit.daemon.hotplug import cpu as hp_cpu
from virtkit.daemon.hotplug import device as hp_device
from virtkit.daemon.hotplug import disks as hotplug
from virtkit.daemon.hotplug import memory as hp_mem
from virtkit.daemon.hotplug import nic as hp_net
from virtkit.daemon.service import Service


class _Req(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Flags(_Req):
    live: bool = False
    config: bool = False
    persistent: bool = False


class AttachDiskRequest(Flags):
    source: str = Field(min_length=1, max_length=4096)
    target: str = Field(pattern=r"^(vd|sd|hd)[a-z]{1,2}$")
    subdriver: str | None = Field(default=None, pattern=r"^(qcow2|raw)$")
    bus: str = Field(default="virtio", pattern=r"^(virtio|sata|scsi)$")
    readonly: bool = False


class AttachDeviceRequest(Flags):
    text: str = Field(min_length=1, max_length=1 << 16)


class AttachInterfaceRequest(Flags):
    type: str = Field(pattern=r"^(user|bridge|network)$")
    source: str | None = Field(
        default=None,
        max_length=64,
        description="bridge (type bridge) or network name (type network)",
    )
    model: str = Field(default="virtio", pattern=r"^(virtio|e1000|e1000e|rtl8139)$")
    mac: str | None = Field(default=None, max_length=17)


class HotplugResult(BaseModel):
    live: bool = False
    config: bool = False
    target: str | None = None
    source: str | None = None
    device: str | None = None
    mac: str | None = None
    type: str | None = None
    size_mib: int | None = None
    total_mib: int | None = None


class VcpusRequest(_Req):
    count: int = Field(ge=1, le=1024)
    live: bool = False
    config: bool = False
    maximum: bool = False


class VcpusResult(BaseModel):
    vcpus: int
    max_vcpus: int
    live: bool
    config: bool


class VcpuCount(BaseModel):
    maximum_config: int
    current_config: int
    maximum_live: int | None
    current_live: int | None


class VcpuInfo(BaseModel):
    vcpu: int
    cpu: int
    state: str
    cpu_time_s: float
    thread_id: int
    affinity: str = ""  # host CPUs the vCPU thread may run on (sched_getaffinity)


class MemoryRequest(_Req):
    size_kib: int = Field(ge=1, le=1 << 34)
    live: bool = False
    config: bool = False


class MemoryResult(BaseModel):
    live: bool
    config: bool
    current_memory_mib: int | None = None
    memory_mib: int | None = None


def router(svc: Service) -> APIRouter:
    r = APIRouter(tags=["hotplug"])
    base = "/v1/domains/{name}"

    @r.post(base + "/disks", response_model=HotplugResult)
    async def attach_disk(name: str, body: AttachDiskRequest) -> dict[str, Any]:
        return await hotplug.attach_disk(
            svc,
            name,
            body.source,
            body.target,
            subdriver=body.subdriver,
            bus=body.bus,
            readonly=body.readonly,
            live=body.live,
            config=body.config,
            persistent=body.persistent,
        )

    @r.delete(base + "/disks/{target}", response_model=HotplugResult)
    async def detach_disk(
        name: str,
        target: str,
        live: bool = False,
        config: bool = False,
        persistent: bool = False,
        timeout_s: float = Query(10.0, gt=0, le=300),
    ) -> dict[str, Any]:
        return await hotplug.detach_disk(
            svc, name, target, live=live, config=config, persistent=persistent, timeout_s=timeout_s
        )

    @r.post(base + "/devices", response_model=HotplugResult)
    async def attach_device(name: str, body: AttachDeviceRequest) -> dict[str, Any]:
        return await hp_device.attach_device(
            svc, name, body.text, live=body.live, config=body.config, persistent=body.persistent
        )

    @r.post(base + "/devices/detach", response_model=HotplugResult)
    async def detach_device(name: str, body: AttachDeviceRequest) -> dict[str, Any]:
        return await hp_device.detach_device(
            svc, name, body.text, live=body.live, config=body.config, persistent=body.persistent
        )

    @r.post(base + "/interfaces", response_model=HotplugResult)
    async def attach_interface(name: str, body: AttachInterfaceRequest) -> dict[str, Any]:
        return await hp_net.attach_interface(
            svc,
            name,
            body.type,
            body.source,
            model=body.model,
            mac=body.mac,
            live=body.live,
            config=body.config,
            persistent=body.persistent,
        )

    @r.delete(base + "/interfaces/{type_}", response_model=HotplugResult)
    async def detach_interface(
        name: str,
        type_: str,
        mac: str | None = None,
        live: bool = False,
        config: bool = False,
        persistent: bool = False,
    ) -> dict[str, Any]:
        return await hp_net.detach_interface(
            svc, name, type_, mac=mac, live=live, config=config, persistent=persistent
        )

    @r.put(base + "/vcpus", response_model=VcpusResult)
    async def setvcpus(name: str, body: VcpusRequest) -> dict[str, Any]:
        return await hp_cpu.setvcpus(
            svc, name, body.count, live=body.live, config=body.config, maximum=body.maximum
        )

    @r.get(base + "/vcpus", response_model=VcpuCount)
    async def vcpucount(name: str) -> dict[str, Any]:
        return await hp_cpu.vcpucount(svc, name)

    @r.get(base + "/vcpus/info", response_model=list[VcpuInfo])
    async def vcpuinfo(name: str) -> list[dict[str, Any]]:
        return await hp_cpu.vcpuinfo(svc, name)

    @r.put(base + "/memory", response_model=MemoryResult)
    async def setmem(name: str, body: MemoryRequest) -> dict[str, Any]:
        return await hp_mem.setmem(svc, name, body.size_kib, live=body.live, config=body.config)

    @r.put(base + "/memory/max", response_model=MemoryResult)
    async def setmaxmem(name: str, body: MemoryRequest) -> dict[str, Any]:
        return await hp_mem.setmaxmem(svc, name, body.size_kib, live=body.live, config=body.config)

    @r.get(base + "/memory/stats", response_model=dict[str, int])
    async def dommemstat(
        name: str, period_s: int | None = Query(None, ge=0, le=3600)
    ) -> dict[str, int]:
        return await hp_mem.dommemstat(svc, name, period_s)

    return r
