"""domblklist, domblkinfo, blockresize: a domain's disks, for running and shut-off guests.

A running guest is asked through QMP (its format node is ``drive-<target>``);
a shut-off guest's images are read and resized with ``qemu-img`` (explicit format).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from virtkit.daemon.locks import DomainKey
from virtkit.errors import ConfigError, NotFoundError
from virtkit.formats.domfile import domain_from_mapping
from virtkit.model.domain import Disk, DiskDevice
from virtkit.storage import disks as diskmod
from virtkit.storage import images

if TYPE_CHECKING:
    from virtkit.daemon.service import Entry, Service

SECTOR = 512


def current_disks(e: Entry) -> list[Disk]:
    """The disks the guest has now: as booted while it runs, else as defined."""
    if e.sup is not None and e.sup.alive:
        return list(domain_from_mapping(e.sup.record.domain, "runtime record").disks)
    return list(e.domain.disks)


def find_disk(e: Entry, target: str) -> Disk:
    found = current_disks(e)
    for d in found:
        if target in (d.target, d.path):
            return d
    known = ", ".join(d.target or d.path for d in found) or "none"
    raise NotFoundError(
        f"domain {e.domain.name!r} has no disk {target!r} (its disks: {known}); "
        f"`virtkit domblklist {e.domain.name}` lists them"
    )


def block_list(svc: Service, name: str) -> list[dict[str, Any]]:
    out = []
    for d in current_disks(svc.entry(name)):
        out.append({"type": "file", "device": str(d.device), "target": d.target or "",
                    "source": d.path, "format": str(d.format), "readonly": d.readonly})  # fmt: skip
    return out


async def _query_block(e: Entry, disk: Disk) -> dict[str, Any]:
    assert e.sup is not None
    node = f"drive-{disk.target}"
    for dev in await e.sup._require_monitor().execute("query-block"):
        inserted = dev.get("inserted") or {}
        if inserted.get("node-name") == node:
            image: dict[str, Any] = inserted.get("image") or {}
            return image
    raise NotFoundError(f"QEMU has no block node {node} for disk {disk.target}")


def _physical(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


async def block_info(svc: Service, name: str, target: str) -> dict[str, Any]:
    """virsh domblkinfo: Capacity (guest-visible), Allocation (on the host), Physical."""
    e = svc.entry(name)
    disk = find_disk(e, target)
    fmt = str(disk.format)
    if e.active:
        image = await _query_block(e, disk)
        capacity = int(image.get("virtual-size", 0))
        allocation = int(image.get("actual-size", 0))
    else:
        loop = asyncio.get_running_loop()
        info = await loop.run_in_executor(None, diskmod.image_info, Path(disk.path), fmt)
        capacity, allocation = info.virtual_size, info.actual_size
    return {"target": disk.target or "", "source": disk.path, "capacity": capacity,
            "allocation": allocation, "physical": _physical(disk.path)}  # fmt: skip


async def block_resize(svc: Service, name: str, target: str, size_bytes: int,
                       shrink: bool = False) -> dict[str, Any]:  # fmt: skip
    """Grow (or with ``shrink``, shrink) a disk; ``size_bytes`` is rounded up to 512."""
    size = -(-size_bytes // SECTOR) * SECTOR
    async with svc.locks.hold(DomainKey(name), "blockresize"):
        e = svc.entry(name)
        disk = find_disk(e, target)
        if disk.readonly or disk.device is DiskDevice.CDROM:
            raise ConfigError(f"disk {disk.target} of domain {name!r} is read-only; not resized")
        current = (await block_info(svc, name, disk.target or disk.path))["capacity"]
        if size < current and not shrink:
            raise ConfigError(
                f"{size} bytes is smaller than disk {disk.target}'s {current} bytes: shrinking "
                "loses the data at its end; pass --shrink if that is really meant"
            )
        if e.active:
            assert e.sup is not None
            await e.sup._require_monitor().execute(
                "block_resize", {"node-name": f"drive-{disk.target}", "size": size}
            )
        else:
            await asyncio.get_running_loop().run_in_executor(
                None, images.resize_image, Path(disk.path), str(disk.format), size, size < current
            )
    svc.bus.publish(name, "block-resized", f"{disk.target}: {current} -> {size} bytes")
    return await block_info(svc, name, disk.target or disk.path)
