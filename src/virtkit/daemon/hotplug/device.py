"""attach-device / detach-device FILE: a device in our YAML/JSON format or in libvirt
XML, routed to the disk or DIMM hot plug. Supported: ``memory: {size_mib: N}`` /
``<memory model='dimm'>`` and ``disk: {path, target, format, readonly}`` /
``<disk type='file' device='disk'>``."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

from virtkit.errors import ConfigError
from virtkit.formats.domfile import parse_mapping
from virtkit.formats.libvirt_xml_node import Node, mib

if TYPE_CHECKING:
    from virtkit.daemon.service import Service


@dataclass(frozen=True)
class DeviceSpec:
    kind: str  # "memory" | "disk" | "hostdev"
    size_mib: int = 0
    address: str = ""  # hostdev: PCI address
    managed: bool = False  # hostdev: bound to vfio-pci when the guest gets it
    disk: dict[str, Any] = field(default_factory=dict)


def _parse(text: str) -> ET.Element:
    try:
        el = DET.fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise ConfigError(
            f"device XML refused: {type(exc).__name__} (remove the <!DOCTYPE ...> block)"
        ) from None
    except ET.ParseError as exc:
        raise ConfigError(f"device XML is not well-formed: {exc}") from None
    return el  # type: ignore[no-any-return]


def _from_xml(text: str) -> DeviceSpec:
    root = Node(_parse(text), "/device")
    tag = root.el.tag.rsplit("}", 1)[-1]
    if tag == "memory":
        root.only("model", "dimm")
        target = root.child("target")
        size = target.child("size") if target is not None else None
        if size is None:
            raise ConfigError("memory device XML needs <target><size unit='MiB'>N</size></target>")
        return DeviceSpec("memory", size_mib=mib(size))
    if tag == "disk":
        root.only("type", "file")
        root.only("device", "disk")
        src, tgt, drv = root.child("source"), root.child("target"), root.child("driver")
        if src is None or tgt is None:
            raise ConfigError("disk device XML needs <source file='...'/> and <target dev='...'/>")
        disk: dict[str, Any] = {
            "path": src.need("file"),
            "target": tgt.need("dev"),
            "bus": tgt.attr("bus", "virtio"),
        }
        if drv is not None and drv.attr("type"):
            disk["format"] = drv.attr("type")
        disk["readonly"] = root.child("readonly") is not None
        return DeviceSpec("disk", disk=disk)
    if tag == "hostdev":
        from virtkit.formats.libvirt_xml_tune import read_hostdev

        dev = read_hostdev(root)
        return DeviceSpec("hostdev", address=str(dev["address"]), managed="managed" in dev)
    raise ConfigError(
        f"attach-device supports <memory model='dimm'>, <disk> and <hostdev>, not <{tag}>"
    )


def parse_device(text: str) -> DeviceSpec:
    if text.lstrip().startswith("<"):
        return _from_xml(text)
    data = parse_mapping(text, "device file")
    if set(data) == {"memory"} and isinstance(data["memory"], dict):
        size = data["memory"].get("size_mib")
        if not isinstance(size, int) or set(data["memory"]) != {"size_mib"}:
            raise ConfigError("a memory device is `memory: {size_mib: N}` (a whole MiB count)")
        return DeviceSpec("memory", size_mib=size)
    if set(data) == {"disk"} and isinstance(data["disk"], dict):
        return DeviceSpec("disk", disk=dict(data["disk"]))
    if set(data) == {"hostdev"} and isinstance(data["hostdev"], dict):
        h = data["hostdev"]
        if "address" not in h or not set(h) <= {"address", "managed"}:
            raise ConfigError("a host device is `hostdev: {address: 0000:03:00.0, managed: true}`")
        return DeviceSpec("hostdev", address=str(h["address"]), managed=h.get("managed") is True)
    raise ConfigError(
        "a device file holds one device: `memory: {size_mib: N}` or "
        "`disk: {path: ..., target: vdX}` (or libvirt XML)"
    )


async def attach_device(
    svc: Service,
    name: str,
    text: str,
    *,
    live: bool = False,
    config: bool = False,
    persistent: bool = False,
) -> dict[str, Any]:
    from virtkit.daemon.hotplug import disks as hotplug
    from virtkit.daemon.hotplug import memory as hp_mem

    spec = parse_device(text)
    if spec.kind == "hostdev":
        from virtkit.daemon.host import nodedev

        return await nodedev.attach_hostdev(
            svc, name, spec.address, managed=spec.managed, live=live, config=config,
            persistent=persistent,
        )  # fmt: skip
    if spec.kind == "memory":
        if config or persistent:
            raise ConfigError(
                "DIMMs are hot plugged live only; for more memory at boot use "
                f"`virtkit setmaxmem {name} SIZE --config`"
            )
        return await hp_mem.attach_dimm(svc, name, spec.size_mib)
    d = spec.disk
    if not d.get("path") or not d.get("target"):
        raise ConfigError("a disk device needs path and target")
    return await hotplug.attach_disk(
        svc,
        name,
        str(d["path"]),
        str(d["target"]),
        subdriver=d.get("format"),
        bus=str(d.get("bus", "virtio")),
        readonly=bool(d.get("readonly", False)),
        live=live,
        config=config,
        persistent=persistent,
    )


async def detach_device(
    svc: Service,
    name: str,
    text: str,
    *,
    live: bool = False,
    config: bool = False,
    persistent: bool = False,
) -> dict[str, Any]:
    from virtkit.daemon.hotplug import disks as hotplug
    from virtkit.daemon.hotplug import memory as hp_mem

    spec = parse_device(text)
    if spec.kind == "hostdev":
        from virtkit.daemon.host import nodedev

        return await nodedev.detach_hostdev(
            svc, name, spec.address, live=live, config=config, persistent=persistent
        )
    if spec.kind == "memory":
        if config or persistent:
            raise ConfigError("DIMMs are hot plugged live only: detach them with --live")
        return await hp_mem.detach_dimm(svc, name, spec.size_mib)
    if not spec.disk.get("target"):
        raise ConfigError("a disk device to detach needs its target (vdb, ...)")
    return await hotplug.detach_disk(
        svc, name, str(spec.disk["target"]), live=live, config=config, persistent=persistent
    )
