"""The device layout a migration destination must reproduce exactly. PURE (no I/O).

A migration stream only loads into a QEMU whose devices sit where the source's do.
A cold-booted command line puts every PCI device on the root bus in argv order, but a
guest that lived for a while has devices hot-plugged into root ports (and maybe cold
ones unplugged, moving nothing else) and DIMMs plugged. The source reads the layout
from QOM (daemon/migration/layout.py); ``apply_layout`` pins each PCI device of the
destination's argv to the same bus and slot and adds the DIMMs with the same ids,
sizes, addresses and slots.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from virtkit.qemu.argv import opts

_SPLIT = re.compile(r"(?<!,),(?!,)")  # QEMU option separators (a doubled comma is data)


@dataclass(frozen=True)
class Dimm:
    id: str
    memdev: str
    size_bytes: int
    addr: int
    slot: int
    node: int = 0


@dataclass(frozen=True)
class Layout:
    # id: {"bus": .., "addr": "ss.f", and properties that follow the vCPU count when the
    # device was plugged (virtio num-queues, MSI-X vectors)}
    pci: dict[str, dict[str, str]] = field(default_factory=dict)
    dimms: list[Dimm] = field(default_factory=list)

    def to_mapping(self) -> dict[str, Any]:
        return {"pci": {k: dict(v) for k, v in self.pci.items()},
                "dimms": [d.__dict__ for d in self.dimms]}  # fmt: skip

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> Layout:
        pci = {str(k): {str(p): str(x) for p, x in dict(v).items()}
               for k, v in dict(data.get("pci", {})).items()}  # fmt: skip
        dimms = [Dimm(str(d["id"]), str(d["memdev"]), int(d["size_bytes"]), int(d["addr"]),
                      int(d["slot"]), int(d.get("node", 0)))
                 for d in data.get("dimms", [])]  # fmt: skip
        return cls(pci, dimms)


def _pin(device: str, props: dict[str, str]) -> str:
    keys = tuple(f"{k}=" for k in props)
    parts = [p for p in _SPLIT.split(device) if not p.startswith(keys)]
    return ",".join([*parts, *(f"{k}={v.replace(',', ',,')}" for k, v in props.items())])


def _device_id(device: str) -> str | None:
    for p in _SPLIT.split(device):
        if p.startswith("id="):
            return p[3:]
    return None


def hotplugged(argv: list[str], layout: Layout) -> tuple[list[str], list[dict[str, Any]]]:
    """Split ``argv``: the PCI devices the source has behind a hot-plug port leave the
    command line and come back as device_add arguments, to be plugged the way the
    source got them (a hot-plugged PCIe device's link state differs from a cold one's)."""
    out: list[str] = []
    plugs: list[dict[str, Any]] = []
    i = 0
    while i < len(argv):
        if argv[i] == "-device" and i + 1 < len(argv):
            dev = argv[i + 1]
            dev_id = _device_id(dev)
            if dev_id in layout.pci:
                dev = _pin(dev, layout.pci[dev_id])
                if any(_device_id(a) == layout.pci[dev_id].get("bus") for a in argv):
                    plugs.append(_as_args(dev))
                    i += 2
                    continue
            out += ["-device", dev]
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out, plugs


def _as_args(device: str) -> dict[str, Any]:
    driver, *props = _SPLIT.split(device)
    args: dict[str, Any] = {"driver": driver}
    for p in props:
        key, _, value = p.partition("=")
        value = value.replace(",,", ",")
        args[key] = int(value) if re.fullmatch(r"-?\d+", value) else value
    return args


def apply_layout(argv: list[str], layout: Layout) -> list[str]:
    """Pin every PCI device to the source's bus and slot, add the DIMMs. Devices behind
    hot-plug ports must have been split off with ``hotplugged`` first."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        if i and argv[i - 1] == "-device":
            dev_id = _device_id(arg)
            if dev_id in layout.pci:
                arg = _pin(arg, layout.pci[dev_id])
        out.append(arg)
    extra: list[str] = []
    for d in layout.dimms:
        extra += ["-object", opts("memory-backend-ram", id=d.memdev, size=d.size_bytes),
                  "-device", opts("pc-dimm", id=d.id, memdev=d.memdev, addr=d.addr,
                                  slot=d.slot, node=d.node)]  # fmt: skip
    if extra and "-incoming" in out:  # keep -incoming last, where readers expect it
        at = out.index("-incoming")
        return out[:at] + extra + out[at:]
    return out + extra
