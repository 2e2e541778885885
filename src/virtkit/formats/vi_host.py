"""virt-install's host-feature options: NUMA cells in ``--cpu`` and ``--hostdev``.

- ``--cpu host-passthrough,cell0.memory=131072,cell0.cpus=0,cell1.memory=...`` (cell
  memory in KiB, as virt-install and libvirt take it; ``numa.cellN.*`` is the same).
- ``--hostdev 0000:03:00.0`` / ``03:00.0`` / ``pci_0000_03_00_0`` (``--host-device``):
  a PCI device passed through with vfio-pci, managed (bound to vfio-pci at start). USB
  (``001.003``, ``0x1234:0x5678``) and mediated devices are refused by name.
"""

from __future__ import annotations

import re
from typing import Any

from virtkit.errors import ConfigError
from virtkit.formats.vi_draft import Draft
from virtkit.formats.vi_optstr import SubOpts, parse, to_int
from virtkit.model.hostfeat import normalize_pci

CELL_RE = re.compile(r"^(?:numa\.)?cell(\d+)\.(memory|cpus|id|unit|memAccess)$")


def take_cells(o: SubOpts, d: Draft) -> None:
    """Consume the cellN.* keys of a parsed --cpu into ``d.numa_cells`` (cpus, KiB)."""
    cells: dict[int, dict[str, str]] = {}
    for key in o.names():
        if m := CELL_RE.match(key):
            value = o.get(key)
            if value is not None:
                cells.setdefault(int(m.group(1)), {})[m.group(2)] = value
    if not cells:
        return
    if sorted(cells) != list(range(len(cells))):
        raise ConfigError(f"--cpu: NUMA cells must be numbered 0, 1, 2... (got {sorted(cells)})")
    out = []
    for i in range(len(cells)):
        c = cells[i]
        if "memory" not in c or "cpus" not in c:
            raise ConfigError(f"--cpu: cell{i} needs both cell{i}.memory=KiB and cell{i}.cpus=")
        if c.get("unit", "KiB") not in ("KiB", "k"):
            raise ConfigError(f"--cpu: cell{i}.unit must be KiB (give the memory in KiB)")
        if c.get("id") not in (None, str(i)):
            raise ConfigError(f"--cpu: cell{i}.id={c['id']} must be {i}")
        kib = to_int("--cpu", f"cell{i}.memory", c["memory"], low=1024, high=1 << 34)
        if kib % 1024:
            raise ConfigError(f"--cpu: cell{i}.memory={kib} KiB is not a whole number of MiB")
        out.append((c["cpus"], kib))
    d.numa_cells = out


def parse_hostdev(d: Draft, text: str) -> None:
    option = "--hostdev"
    keys = ("domain", "bus", "slot", "function")
    o = parse(option, text, valid=("name", "address.type", *(f"address.{k}" for k in keys)),
              first=("name",))  # fmt: skip
    name = o.get("name")
    parts = [o.get(f"address.{k}") for k in ("domain", "bus", "slot", "function")]
    kind = o.get("address.type")
    o.finish()
    if kind not in (None, "pci"):
        raise ConfigError(f"{option}: address.type={kind} is not supported; only PCI devices")
    if name is None and any(p is not None for p in parts[1:]):
        try:
            dom, bus, slot, fn = (int(p or "0", 0) for p in parts)
        except ValueError:
            raise ConfigError(f"{option}: address.* values must be numbers (0x03)") from None
        name = f"{dom:04x}:{bus:02x}:{slot:02x}.{fn:x}"
    if name is None:
        raise ConfigError(f"{option}: give a PCI address (0000:03:00.0) or a nodedev name")
    if re.fullmatch(r"\d{3}\.\d{3}|0x[0-9a-f]{4}:0x[0-9a-f]{4}|usb_.*|mdev_.*", name, re.I):
        raise ConfigError(
            f"{option} {name}: only PCI devices can be passed through by virtkit (not USB or "
            "mediated devices); give a PCI address like 0000:03:00.0"
        )
    try:
        d.hostdevs.append(normalize_pci(name))
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc}") from None


def parse_numatune(d: Draft, text: str) -> None:
    """``--numatune 0-1,mode=strict`` / ``--numatune 1,2,3`` / ``memory.nodeset=0,memory.mode=``."""
    option = "--numatune"
    o = parse(option, text, valid=("nodeset", "mode", "memory.nodeset", "memory.mode"),
              first=("nodeset",))  # fmt: skip
    nodeset = o.get("nodeset", "memory.nodeset")
    extra = o.take_bare([k for k in o.names() if k.isdigit() or re.fullmatch(r"\d+-\d+", k)])
    mode = o.get("mode", "memory.mode")
    o.finish()
    if nodeset is None:
        raise ConfigError(f"{option}: give the host NUMA nodes (--numatune 0-1,mode=strict)")
    d.tune["numatune"] = {"nodeset": ",".join([nodeset, *extra]), "mode": mode or "strict"}


def parse_cputune(d: Draft, text: str) -> None:
    """``--cputune vcpupin0.vcpu=0,vcpupin0.cpuset=1,emulatorpin.cpuset=0-1``."""
    option = "--cputune"
    o = parse(option, text, valid=("vcpupinN.vcpu", "vcpupinN.cpuset", "emulatorpin.cpuset"))
    pins: dict[int, dict[str, str]] = {}
    for key in o.names():
        if m := re.fullmatch(r"vcpupin(\d+)\.(vcpu|cpuset)", key):
            value = o.get(key)
            if value is not None:
                pins.setdefault(int(m.group(1)), {})[m.group(2)] = value
    emulator = o.get("emulatorpin.cpuset")
    o.finish()
    out: dict[str, Any] = {}
    if pins:
        for i, p in sorted(pins.items()):
            if set(p) != {"vcpu", "cpuset"}:
                raise ConfigError(f"{option}: vcpupin{i} needs vcpupin{i}.vcpu= and .cpuset=")
        out["vcpupin"] = [
            {"vcpu": to_int(option, f"vcpupin{i}.vcpu", p["vcpu"], low=0, high=1023),
             "cpuset": p["cpuset"]}
            for i, p in sorted(pins.items())
        ]  # fmt: skip
    if emulator is not None:
        out["emulatorpin"] = emulator
    d.tune["cputune"] = out


def parse_memorybacking(d: Draft, text: str) -> None:
    """``--memorybacking nosharepages=on`` (the KSM opt-out; other backings are refused)."""
    o = parse("--memorybacking", text, valid=("nosharepages",))
    share = o.flag("nosharepages")
    o.finish()
    d.tune["mem_merge"] = not share


def host_fields(d: Draft) -> dict[str, Any]:
    """Domain fields from the options above (applied by vi_build)."""
    out: dict[str, Any] = dict(d.tune)
    if d.numa_cells:
        out["numa"] = {"cells": [{"cpus": c, "memory_mib": kib // 1024} for c, kib in d.numa_cells]}
    if d.hostdevs:
        out["hostdevs"] = [{"address": a, "managed": True} for a in d.hostdevs]  # as virt-install
    return out
