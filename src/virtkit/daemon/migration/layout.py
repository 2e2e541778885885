"""Read a running guest's device layout from QEMU (QOM) for its migration destination:
the bus and slot of every PCI device with an id, and the hot-plugged DIMMs.
See qemu/layout.py for how the destination applies it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from virtkit.errors import QmpError
from virtkit.qemu.layout import Dimm, Layout

if TYPE_CHECKING:
    from virtkit.qemu.qmp import Monitor

PERIPHERAL = "/machine/peripheral"
# defaults that follow the vCPU count at plug time: a disk plugged before setvcpus has
# fewer queues than the same disk on a command line with the new count
SIZED_BY_VCPUS = ("num-queues", "num_queues", "vectors")


async def _get(mon: Monitor, path: str, prop: str) -> Any:
    """A QOM property, or None if the object has no such property."""
    try:
        return await mon.execute("qom-get", {"path": path, "property": prop})
    except QmpError:
        return None


async def _device(mon: Monitor, name: str, kind: str) -> dict[str, str] | None:
    path = f"{PERIPHERAL}/{name}"
    props = ("addr", "parent_bus", *(SIZED_BY_VCPUS if "virtio" in kind else ()))
    values = await asyncio.gather(*(_get(mon, path, p) for p in props))  # one round trip
    got = dict(zip(props, values, strict=True))
    devfn, bus = got.pop("addr"), got.pop("parent_bus")
    if not isinstance(devfn, int) or devfn < 0 or not bus:
        return None  # not a PCI device (serial port, SCSI/IDE disk, ...)
    out = {"bus": str(bus).rstrip("/").rsplit("/", 1)[-1], "addr": f"{devfn >> 3:02x}.{devfn & 7}"}
    return out | {k: str(v) for k, v in got.items() if v is not None}


async def describe(mon: Monitor) -> Layout:
    items = [(str(i.get("name", "")), str(i.get("type", "")))
             for i in await mon.execute("qom-list", {"path": PERIPHERAL})]  # fmt: skip
    items = [(n, k) for n, k in items
             if k.startswith("child<") and "dimm" not in k and "cpu" not in k]  # fmt: skip
    found = await asyncio.gather(*(_device(mon, n, k) for n, k in items))
    pci = {n: props for (n, _), props in zip(items, found, strict=True) if props is not None}
    dimms = []
    for m in await mon.execute("query-memory-devices"):
        d = m.get("data", {})
        if m.get("type") == "dimm" and d.get("id"):
            dimms.append(Dimm(str(d["id"]), str(d["memdev"]).rsplit("/", 1)[-1], int(d["size"]),
                              int(d["addr"]), int(d["slot"]), int(d.get("node", 0))))  # fmt: skip
    return Layout(pci, dimms)


def replug(plugs: list[dict[str, Any]]) -> Callable[[Monitor], Awaitable[None]] | None:
    """A launch step for a migration destination: device_add what the source hot-plugged
    (qemu/layout.py ``hotplugged``), before the incoming state is loaded."""
    if not plugs:
        return None

    async def setup(mon: Monitor) -> None:
        for args in plugs:
            try:
                await mon.execute("device_add", args)
            except QmpError as exc:
                raise QmpError(f"cannot re-create hot-plugged device {args.get('id')!r} for "
                               f"the incoming migration: {exc.message}") from None  # fmt: skip

    return setup
