"""libvirt's host documents, from the daemon's answers (pure): ``virsh capabilities``
(host CPU and NUMA topology) and ``virsh nodedev-dumpxml`` (a PCI device)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def _text(root: ET.Element) -> str:
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"


def capabilities_xml(caps: dict[str, Any]) -> str:
    root = ET.Element("capabilities")
    host = _sub(root, "host")
    cpu = _sub(host, "cpu")
    _sub(cpu, "arch", caps["arch"])
    vendor = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}.get(caps["vendor"], caps["vendor"])
    if vendor:
        _sub(cpu, "vendor", vendor)
    _sub(cpu, "topology", sockets=str(caps["sockets"]), dies="1",
         cores=str(caps["cores_per_socket"]), threads=str(caps["threads_per_core"]))  # fmt: skip
    _sub(host, "iommu", support="yes" if caps["iommu"] else "no")
    topo = _sub(host, "topology")
    cells = _sub(topo, "cells", num=str(len(caps["cells"])))
    for c in caps["cells"]:
        cell = _sub(cells, "cell", id=str(c["id"]))
        _sub(cell, "memory", str(c["memory_kib"]), unit="KiB")
        for hp in c["hugepages"]:
            _sub(cell, "pages", str(hp["count"]), unit="KiB", size=str(hp["size_kib"]))
        dist = _sub(cell, "distances")
        for d in c["distances"]:
            _sub(dist, "sibling", id=str(d["id"]), value=str(d["value"]))
        cpus = _sub(cell, "cpus", num=str(len(c["cpus"])))
        for p in c["cpus"]:
            _sub(cpus, "cpu", id=str(p["id"]), socket_id=str(p["socket_id"]),
                 die_id=str(p["die_id"]), core_id=str(p["core_id"]),
                 siblings=p["siblings"])  # fmt: skip
    guest = _sub(root, "guest")
    _sub(guest, "os_type", "hvm")
    arch = _sub(guest, "arch", name="x86_64")
    _sub(arch, "wordsize", "64")
    _sub(arch, "domain", type="qemu")
    _sub(arch, "domain", type="kvm")
    return _text(root)


def _address(parent: ET.Element, address: str) -> None:
    dom, bus, rest = address.split(":")
    slot, fn = rest.split(".")
    _sub(parent, "address", domain=f"0x{dom}", bus=f"0x{bus}", slot=f"0x{slot}",
         function=f"0x{fn}")  # fmt: skip


def nodedev_xml(dev: dict[str, Any]) -> str:
    """virsh nodedev-dumpxml of a PCI device (as ``GET /v1/host/nodedevs/NAME`` returns it)."""
    root = ET.Element("device")
    _sub(root, "name", dev["name"])
    _sub(root, "path", dev["path"])
    _sub(root, "parent", dev["parent"])
    if dev["driver"]:
        _sub(_sub(root, "driver"), "name", dev["driver"])
    cap = _sub(root, "capability", type="pci")
    _sub(cap, "class", f"0x{dev['class_code']:06x}")
    dom, bus, rest = dev["address"].split(":")
    slot, fn = rest.split(".")
    _sub(cap, "domain", str(int(dom, 16)))
    _sub(cap, "bus", str(int(bus, 16)))
    _sub(cap, "slot", str(int(slot, 16)))
    _sub(cap, "function", str(int(fn, 16)))
    _sub(cap, "product", id=f"0x{dev['device']:04x}")
    _sub(cap, "vendor", id=f"0x{dev['vendor']:04x}")
    if dev["physfn"]:
        _address(_sub(cap, "capability", type="phys_function"), dev["physfn"])
    if dev["sriov_totalvfs"] is not None:
        vfs = _sub(cap, "capability", type="virt_functions", maxCount=str(dev["sriov_totalvfs"]))
        for vf in dev["virtfns"]:
            _address(vfs, vf)
    if dev["iommu_group"] is not None:
        group = _sub(cap, "iommuGroup", number=str(dev["iommu_group"]))
        for member in dev["iommu_group_devices"]:
            _address(group, member)
    if dev["numa_node"] >= 0:  # -1: the platform does not say
        _sub(cap, "numa", node=str(dev["numa_node"]))
    return _text(root)
