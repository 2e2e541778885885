"""The host as virsh shows it: nodeinfo, capabilities (NUMA topology), node-memory-tune
(KSM), nodedev-* (PCI devices, vfio-pci binding, SR-IOV), and PCI host devices of domains
(hostdevs in the definition; live attach/detach over QMP)."""

from __future__ import annotations

import dataclasses
import os
import re
from typing import TYPE_CHECKING, Any

from virtkit.daemon.domains import overcommit
from virtkit.daemon.domains.hoststart import allow_memlock, check_hostdevs, memlock_bytes
from virtkit.daemon.hotplug.disks import (
    device_add_pci,
    last_seq,
    live_domain,
    monitor,
    scope,
    set_config,
    set_live,
    validated,
)
from virtkit.daemon.locks import DomainKey
from virtkit.errors import ConfigError, NotFoundError, StateError
from virtkit.host import facts, ksm, numa, pci
from virtkit.model.hostfeat import nodedev_name

if TYPE_CHECKING:
    from virtkit.daemon.service import Service
    from virtkit.model.domain import Domain


# -- nodeinfo, capabilities, KSM --------------------------------------------------------------


def nodeinfo(svc: Service) -> dict[str, Any]:
    t = numa.topology(svc.host)
    return {
        "cpu_model": "x86_64",
        "model_name": t.model_name,
        "cpus": len(t.online_cpus),
        "cpu_mhz": t.cpu_mhz,
        "sockets": t.sockets,
        "cores_per_socket": t.cores_per_socket,
        "threads_per_core": t.threads_per_core,
        "numa_cells": len(t.cells),
        "memory_kib": t.memory_kib,
        "overcommit": overcommit.usage(svc).to_dict(),
    }


def capabilities(svc: Service) -> dict[str, Any]:
    t = numa.topology(svc.host)
    cpu = facts.cpu_info(svc.host)
    cells = []
    for c in t.cells:
        d = dataclasses.asdict(c)
        d["distances"] = [{"id": k, "value": v} for k, v in sorted(c.distances.items())]
        d["hugepages"] = [{"size_kib": k, "count": v} for k, v in sorted(c.hugepages.items())]
        cells.append(d)
    return {
        "arch": "x86_64",
        "vendor": cpu.vendor,
        "model_name": t.model_name,
        "sockets": t.sockets,
        "cores_per_socket": t.cores_per_socket,
        "threads_per_core": t.threads_per_core,
        "memory_kib": t.memory_kib,
        "cells": cells,
        "iommu": facts.iommu(svc.host).enabled,
        "overcommit": overcommit.usage(svc).to_dict(),
    }


def ksm_state(svc: Service) -> dict[str, Any]:
    s = ksm.read(svc.host)
    return {"available": s.available, "values": s.values}


def ksm_set(svc: Service, changes: dict[str, int]) -> dict[str, Any]:
    s = ksm.write(svc.host, changes)
    svc.bus.publish("", "host", "KSM " + ", ".join(f"{k}={v}" for k, v in changes.items()))
    return {"available": s.available, "values": s.values}


# -- node devices -----------------------------------------------------------------------------


def _users(svc: Service, address: str) -> list[str]:
    """Running domains that have ``address`` passed through."""
    out = []
    for name, e in svc.entries.items():
        if e.active and address in [h.address for h in live_domain(e).hostdevs]:
            out.append(name)
    return out


def device_dict(svc: Service, dev: pci.PciDevice) -> dict[str, Any]:
    d = dataclasses.asdict(dev)
    parent = os.path.basename(os.path.dirname(dev.path))
    d["name"] = dev.name
    upstream = re.fullmatch(pci.PCI_DIR_RE, parent)
    d["parent"] = "pci_" + re.sub(r"[:.]", "_", parent) if upstream else "computer"
    d["iommu_group_devices"] = (
        [] if dev.iommu_group is None else pci.group_members(svc.host, dev.iommu_group)
    )
    d["used_by"] = _users(svc, dev.address)
    return d


def nodedev_list(svc: Service, cap: str | None = None) -> list[dict[str, Any]]:
    if cap not in (None, "pci", "pci_dev"):
        raise ConfigError(f"capability {cap!r} is not supported; virtkit lists pci devices only")
    return [device_dict(svc, d) for d in pci.list_devices(svc.host)]


def nodedev_get(svc: Service, name: str) -> dict[str, Any]:
    return device_dict(svc, pci.read_device(svc.host, pci.address_of(name)))


def nodedev_detach(svc: Service, name: str) -> dict[str, Any]:
    dev = pci.detach(svc.host, pci.address_of(name), svc.sysfs_write)
    svc.bus.publish("", "nodedev", f"{dev.name} detached (vfio-pci)")
    return device_dict(svc, dev)


def nodedev_reattach(svc: Service, name: str) -> dict[str, Any]:
    address = pci.address_of(name)
    if users := _users(svc, address):
        raise StateError(
            f"{nodedev_name(address)} is assigned to running domain(s) {', '.join(users)}; "
            "detach it from the guest (detach-device) or stop the guest first",
            current=f"used by {', '.join(users)}",
            required="not assigned",
        )
    dev = pci.reattach(svc.host, address, svc.sysfs_write)
    svc.bus.publish("", "nodedev", f"{dev.name} reattached ({dev.driver or 'no driver'})")
    return device_dict(svc, dev)


def nodedev_sriov(svc: Service, name: str, numvfs: int) -> dict[str, Any]:
    address = pci.address_of(name)
    before = pci.read_device(svc.host, address)
    if numvfs < len(before.virtfns):
        busy = [u for vf in before.virtfns for u in _users(svc, vf)]
        if busy:
            raise StateError(
                f"virtual functions of {before.name} are assigned to running domain(s) "
                f"{', '.join(sorted(set(busy)))}; detach them first",
                current="VFs in use",
                required="VFs free",
            )
    dev = pci.set_numvfs(svc.host, address, numvfs, svc.sysfs_write)
    svc.bus.publish("", "nodedev", f"{dev.name}: {numvfs} virtual functions")
    return device_dict(svc, dev)


# -- host devices of domains ------------------------------------------------------------------


def _devs(dom: Domain) -> list[dict[str, Any]]:
    return [h.model_dump(mode="json", exclude_defaults=True) for h in dom.hostdevs]


def _with(dom: Domain, devs: list[dict[str, Any]]) -> Domain:
    return validated(dom, hostdevs=devs or None)


def _without(dom: Domain, address: str) -> Domain:
    return _with(dom, [d for d in _devs(dom) if d["address"] != address])


async def attach_hostdev(
    svc: Service, name: str, address: str, *, managed: bool = False, live: bool = False,
    config: bool = False, persistent: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Give a host PCI device to a domain; ``managed``: bind it to vfio-pci when the guest
    gets it (now, if live; at start otherwise) and back to its host driver afterwards."""
    address = pci.address_of(address)
    entry = {"address": address, "managed": True} if managed else {"address": address}
    async with svc.locks.hold(DomainKey(name), "attach-device"):
        e = svc.entry(name)
        sc = scope(e, live, config, persistent)
        dev = pci.read_device(svc.host, address)  # NotFoundError names nodedev-list
        if sc.config:
            if address in [h.address for h in e.domain.hostdevs]:
                raise ConfigError(f"domain {name!r} already has host device {address}")
            new_cfg = _with(e.domain, [*_devs(e.domain), entry])
        if sc.live:
            if users := _users(svc, address):
                raise StateError(
                    f"host device {address} is already given to running domain {users[0]!r}",
                    current=f"used by {users[0]}",
                    required="free",
                )
            cur = live_domain(e)
            moved = managed and dev.driver != pci.VFIO
            if moved:
                pci.detach(svc.host, address, svc.sysfs_write)
            try:
                check_hostdevs(svc.host, _with(cur, [entry]))
                if e.sup is not None and e.sup.record.pid > 0:  # vfio pins all guest RAM
                    allow_memlock(memlock_bytes(cur), e.sup.record.pid)
                group = pci.read_device(svc.host, address).iommu_group
                for node in ("/dev/vfio/vfio", f"/dev/vfio/{group}"):  # a confined QEMU opens
                    if svc.host.path(node).exists():
                        await svc.confiner.expose(e, str(svc.host.path(node)), write=True)
                await device_add_pci(
                    monitor(e), cur, {"driver": "vfio-pci", "host": address,
                                      "id": _plugged_id(address)}
                )  # fmt: skip
            except BaseException:
                if moved:
                    pci.reattach(svc.host, address, svc.sysfs_write)
                raise
            set_live(svc, e, _with(cur, [*_devs(cur), entry]))
        if sc.config:
            set_config(svc, e, new_cfg)
        svc.bus.publish(name, "device-attached", f"hostdev {address}")
    return {"device": address, "type": "hostdev", "live": sc.live, "config": sc.config}


async def detach_hostdev(
    svc: Service, name: str, address: str, *, live: bool = False, config: bool = False,
    persistent: bool = False,
) -> dict[str, Any]:  # fmt: skip
    from virtkit.daemon.hotplug.disks import wait_deleted

    address = pci.address_of(address)
    async with svc.locks.hold(DomainKey(name), "detach-device"):
        e = svc.entry(name)
        sc = scope(e, live, config, persistent)
        if sc.config and address not in [h.address for h in e.domain.hostdevs]:
            raise NotFoundError(f"domain {name!r} has no host device {address} in its definition")
        if sc.live:
            cur = live_domain(e)
            found = next((h for h in cur.hostdevs if h.address == address), None)
            if found is None:
                raise NotFoundError(f"the running guest of {name!r} has no host device {address}")
            argv = e.sup.record.argv if e.sup else []
            dev_id = _live_id(argv, address) or _plugged_id(address)
            after = last_seq(svc)
            await monitor(e).execute("device_del", {"id": dev_id})
            await wait_deleted(svc, name, dev_id, after)
            set_live(svc, e, _without(cur, address))
            if found.managed:
                pci.reattach(svc.host, address, svc.sysfs_write)
        if sc.config:
            set_config(svc, e, _without(e.domain, address))
        svc.bus.publish(name, "device-detached", f"hostdev {address}")
    return {"device": address, "type": "hostdev", "live": sc.live, "config": sc.config}


def _plugged_id(address: str) -> str:
    return "hostdev-" + re.sub(r"[:.]", "-", address)


def _live_id(argv: list[str], address: str) -> str | None:
    """The id QEMU knows the device by, when it was on the command line."""
    for arg in argv:
        if arg.startswith(f"vfio-pci,host={address},id="):
            return arg.rsplit("=", 1)[1]
    return None
