"""libvirt domain XML <-> the host-feature fields of a Domain (model/hostfeat.py).

=====================================================  =================================
XML                                                    virtkit
=====================================================  =================================
cpu/numa/cell @id @cpus @memory @unit                  numa.cells (cpus, memory_mib)
cputune/vcpupin @vcpu @cpuset, cputune/emulatorpin     cputune.vcpupin, .emulatorpin
numatune/memory @mode strict|preferred|interleave      numatune (mode, nodeset)
  @nodeset
memoryBacking/nosharepages                             mem_merge: false
devices/hostdev mode=subsystem type=pci @managed       hostdevs (address, managed: bound
  source/address @domain @bus @slot @function          to vfio-pci at start, back at stop)
=====================================================  =================================
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from virtkit.errors import ConfigError
from virtkit.formats.libvirt_xml_node import DEVICE_NOISE, Node, mib, to_int, unsupported
from virtkit.model.domain import Domain

KIB = 1024


def _sub(parent: ET.Element, tag: str, **attrs: str) -> ET.Element:
    return ET.SubElement(parent, tag, attrs)


# -- writing ----------------------------------------------------------------------------------


def write_numa(cpu: ET.Element, dom: Domain) -> None:
    if dom.numa is None:
        return
    numa = _sub(cpu, "numa")
    for i, cell in enumerate(dom.numa.cells):
        _sub(numa, "cell", id=str(i), cpus=cell.cpus, memory=str(cell.memory_mib * KIB),
             unit="KiB")  # fmt: skip


def write_tuning(root: ET.Element, dom: Domain) -> None:
    """memoryBacking, cputune and numatune (after <vcpu>)."""
    if not dom.mem_merge:
        _sub(_sub(root, "memoryBacking"), "nosharepages")
    t = dom.cputune
    if t is not None and (t.vcpupin or t.emulatorpin):
        tune = _sub(root, "cputune")
        for pin in t.vcpupin:
            _sub(tune, "vcpupin", vcpu=str(pin.vcpu), cpuset=pin.cpuset)
        if t.emulatorpin:
            _sub(tune, "emulatorpin", cpuset=t.emulatorpin)
    if dom.numatune is not None:
        nt = _sub(root, "numatune")
        _sub(nt, "memory", mode=str(dom.numatune.mode), nodeset=dom.numatune.nodeset)


def pci_address_attrs(address: str) -> dict[str, str]:
    dom, bus, rest = address.split(":")
    slot, fn = rest.split(".")
    return {"domain": f"0x{dom}", "bus": f"0x{bus}", "slot": f"0x{slot}", "function": f"0x{fn}"}


def write_hostdevs(devs: ET.Element, dom: Domain) -> None:
    for h in dom.hostdevs:
        el = _sub(
            devs, "hostdev", mode="subsystem", type="pci", managed="yes" if h.managed else "no"
        )
        _sub(_sub(el, "source"), "address", **pci_address_attrs(h.address))


# -- reading ----------------------------------------------------------------------------------


def read_numa(cpu: Node, out: dict[str, Any]) -> None:
    numa = cpu.child("numa")
    if numa is None:
        return
    cells = []
    for i, cell in enumerate(numa.children("cell")):
        cid = to_int(cell, cell.attr("id", str(i)), "@id")
        if cid != i:
            raise ConfigError(f"domain XML: {cell.path} has id {cid}; cells must be 0, 1, 2...")
        size = ET.Element("memory", unit=cell.attr("unit", "KiB") or "KiB")
        size.text = cell.need("memory")
        cells.append({"cpus": cell.need("cpus"), "memory_mib": mib(Node(size, cell.path))})
        cell.only("memAccess", "shared", "private")
        if cell.attr("discard") is not None:
            raise unsupported(f"{cell.path}/@discard", "attribute")
    if not cells:
        raise ConfigError("domain XML: <cpu><numa> needs at least one <cell>")
    out["numa"] = {"cells": cells}


def read_tuning(root: Node, out: dict[str, Any]) -> None:
    if (mb := root.child("memoryBacking")) is not None and mb.child("nosharepages") is not None:
        out["mem_merge"] = False
    if (tune := root.child("cputune")) is not None:
        pins = [{"vcpu": to_int(p, p.need("vcpu"), "@vcpu"), "cpuset": p.need("cpuset")}
                for p in tune.children("vcpupin")]  # fmt: skip
        ct: dict[str, Any] = {"vcpupin": pins} if pins else {}
        if (emu := tune.child("emulatorpin")) is not None:
            ct["emulatorpin"] = emu.need("cpuset")
        if ct:
            out["cputune"] = ct
    if (nt := root.child("numatune")) is not None:
        mem = nt.child("memory")
        if mem is None:
            raise ConfigError("domain XML: <numatune> needs <memory mode=... nodeset=...>")
        mode = mem.only("mode", "strict", "preferred", "interleave", default="strict")
        if mem.attr("placement", "static") != "static":
            raise unsupported(f"{mem.path}/@placement={mem.attr('placement')!r}", "value")
        out["numatune"] = {"mode": mode, "nodeset": mem.need("nodeset")}


def _hex_attr(node: Node, name: str) -> int:
    raw = node.need(name)
    try:
        return int(raw, 16) if raw.lower().startswith("0x") else int(raw)
    except ValueError:
        raise ConfigError(f"domain XML: {node.path}/@{name}={raw!r} is not a number") from None


def read_hostdev(node: Node) -> dict[str, Any]:
    """<hostdev mode='subsystem' type='pci'> -> {"address": "0000:03:00.0"}."""
    node.only("mode", "subsystem")
    node.only("type", "pci")
    managed = node.only("managed", "yes", "no") == "yes"
    node.ignore(*DEVICE_NOISE, "driver", "rom")
    src = node.child("source")
    addr = src.child("address") if src is not None else None
    if addr is None:
        raise ConfigError(f"domain XML: {node.path} needs <source><address .../></source>")
    parts = [_hex_attr(addr, k) for k in ("domain", "bus", "slot", "function")]
    addr.ignore_attrs("type")
    address = "{:04x}:{:02x}:{:02x}.{:x}".format(*parts)
    return {"address": address, "managed": True} if managed else {"address": address}
