"""Hot plug of disks, virsh's way (attach-disk / detach-disk), and what every hot-plug
verb shares: the --live/--config/--persistent scope and keeping the runtime record true.

--config changes the persistent definition; --live changes the running guest AND the
runtime record's domain (so the one-writer check, a daemon restart and migration see
the device); --persistent is both. Without flags: live if the domain runs, else config.
vCPUs: hp_cpu.py; memory (balloon, DIMMs): hp_mem.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from virtkit.daemon import intents
from virtkit.daemon.locks import DomainKey
from virtkit.errors import ConfigError, NotFoundError, QmpError, StateError
from virtkit.formats.domfile import domain_from_mapping, domain_to_mapping
from virtkit.model.domain import Disk, DiskBus, DiskDevice, Domain
from virtkit.qemu import ids
from virtkit.qemu.devices import disk_records
from virtkit.qemu.qmp import Monitor

if TYPE_CHECKING:
    from virtkit.daemon.service import Entry, Service

DETACH_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Scope:
    live: bool
    config: bool


def scope(e: Entry, live: bool, config: bool, persistent: bool = False) -> Scope:
    """virsh's flags -> what to change. Refuses --live on a domain that is not running."""
    running = e.active
    if persistent:
        return Scope(live=running, config=True)
    if not live and not config:
        return Scope(live=running, config=not running)
    if live and not running:
        raise StateError(
            f"domain {e.domain.name!r} is not running, so there is no live guest to change; "
            "use --config to change its definition (or start it first)",
            current=str(e.state),
            required="running",
        )
    if config and not e.persistent:
        raise StateError(
            f"domain {e.domain.name!r} is transient: it has no persistent definition to "
            "change; use --live",
            current="transient",
            required="persistent",
        )
    return Scope(live=live, config=config)


def monitor(e: Entry) -> Monitor:
    if e.sup is None or not e.sup.alive or e.sup.monitor is None:
        raise StateError(
            f"domain {e.domain.name!r} is not running (state: {e.state}); "
            f"start it with `virtkit start {e.domain.name}` or use --config",
            current=str(e.state),
            required="running",
        )
    return e.sup.monitor


def live_domain(e: Entry) -> Domain:
    """The domain as the running guest has it (the runtime record)."""
    if e.sup is None:
        return e.domain
    return domain_from_mapping(e.sup.record.domain, "runtime record")


def validated(dom: Domain, **changes: Any) -> Domain:
    """``dom`` with ``changes``, validated again (model_copy would not check them)."""
    data = domain_to_mapping(dom)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return domain_from_mapping(data, dom.name)


def set_config(svc: Service, e: Entry, dom: Domain) -> None:
    e.domain = dom
    if e.persistent:
        svc.store.update_domain(dom.name, domain_to_mapping(dom))


def set_live(svc: Service, e: Entry, dom: Domain) -> None:
    """Record what the running guest now has; a transient domain's definition follows."""
    if e.sup is None:
        return
    rec = e.sup.record
    rec.domain = domain_to_mapping(dom)
    svc.store.put_runtime(dom.name, rec.to_json(), e.state, e.reason)
    if not e.persistent:
        e.domain = dom


PORT_TYPES = ("child<pcie-root-port>", "child<ioh3420>")


async def free_port(mon: Monitor) -> str | None:
    """The id of an empty PCIe root port: where a hot-plugged device goes on q35 (its pcie.0
    root bus takes none). None if there is none: plug on the root bus (pc hot-plugs there).
    Asked of QOM, not query-pci: the latter hides devices behind ports the guest has not
    numbered yet."""
    for item in await mon.execute("qom-list", {"path": "/machine/peripheral"}):
        if item.get("type") not in PORT_TYPES:
            continue
        port = str(item["name"])
        bus = await mon.execute("qom-list", {"path": f"/machine/peripheral/{port}/{port}"})
        if not any(str(p.get("name", "")).startswith("child[") for p in bus):
            return port
    return None


async def device_add_pci(mon: Monitor, dom: Domain, args: dict[str, Any]) -> None:
    """device_add of a PCI device, into an empty root port if the machine has one."""
    port = await free_port(mon)
    try:
        await mon.execute("device_add", args if port is None else {**args, "bus": port})
    except QmpError as exc:
        raise pci_hint(exc, dom) from None


def pci_hint(exc: QmpError, dom: Domain) -> QmpError | ConfigError:
    if "does not support hotplugging" in exc.message:
        return ConfigError(
            f"machine {dom.machine!r} of domain {dom.name!r} has no free hot-pluggable PCI "
            f"slot ({exc.message}): q35 hot-plugs only into empty pcie-root-port devices; "
            "define the domain with machine: pc (i440fx hot-plugs on its root bus), or "
            "attach with --config and restart the guest"
        )
    return exc


GENERIC_HINT = (
    "it must acknowledge the unplug request: is its OS up, with ACPI/PCI hot plug support?"
)


def not_released(name: str, dev_id: str, timeout_s: float, hint: str = GENERIC_HINT) -> StateError:
    return StateError(
        f"the guest of domain {name!r} did not release device {dev_id!r} within "
        f"{timeout_s:g} s ({hint}); the request stays pending: try again later, or "
        "detach with --config and restart the guest",
        current="device still present",
        required="released by the guest",
    )


async def wait_deleted(
    svc: Service,
    name: str,
    dev_id: str,
    after: int,
    timeout_s: float = DETACH_TIMEOUT_S,
    hint: str = GENERIC_HINT,
) -> None:
    """Wait for QEMU's DEVICE_DELETED for ``dev_id`` (published on the bus after ``after``)."""
    deadline = time.monotonic() + timeout_s
    needle = f"'device': '{dev_id}'"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise not_released(name, dev_id, timeout_s, hint)
        for ev in await svc.bus.wait(after, name, remaining):
            after = max(after, ev.seq)
            if ev.type == "device-removed" and needle in ev.detail:
                return


def last_seq(svc: Service) -> int:
    row = svc.store.db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
    return int(row[0])


# -- disks ----------------------------------------------------------------------------------


def _targets(dom: Domain) -> set[str]:
    return {d.target for d in dom.disks if d.target}


async def attach_disk(
    svc: Service,
    name: str,
    source: str,
    target: str,
    *,
    subdriver: str | None = None,
    bus: str = "virtio",
    readonly: bool = False,
    live: bool = False,
    config: bool = False,
    persistent: bool = False,
) -> dict[str, Any]:
    try:
        disk = Disk(path=source, target=target, format=subdriver, bus=bus, readonly=readonly)
    except ValueError as exc:
        raise ConfigError(f"bad disk for attach-disk: {exc}") from None
    from virtkit.daemon.auth.roles import allowed_dirs, check_paths

    check_paths([source], allowed_dirs(svc))  # remote callers: only images in pools
    async with svc.locks.hold(DomainKey(name), "attach-disk"):
        e = svc.entry(name)
        sc = scope(e, live, config, persistent)
        if not os.path.exists(source):
            raise ConfigError(
                f"source {source} does not exist; create the image first "
                "(virtkit vol-create-as, or qemu-img create)"
            )
        if sc.config and target in _targets(e.domain):
            raise ConfigError(
                f"target {target} is already used by a disk of domain {name!r} "
                "(see `virtkit domblklist`); pick another target"
            )
        new_cfg = validated(
            e.domain,
            disks=[
                *domain_to_mapping(e.domain).get("disks", []),
                disk.model_dump(mode="json", exclude_defaults=True),
            ],
        )
        if sc.live:
            cur = live_domain(e)
            if target in _targets(cur):
                raise ConfigError(
                    f"target {target} is already used by the running guest of "
                    f"domain {name!r}; pick another target"
                )
            if disk.bus is not DiskBus.VIRTIO:
                raise ConfigError(
                    "only virtio disks can be hot plugged (--targetbus virtio); "
                    "use --config for sata/scsi and restart the guest"
                )
            probe = cur.model_copy(update={"disks": [disk]})
            svc._check_files(probe)  # the path may be given to a guest (host/diskpaths)
            svc._check_disk_users(name, probe)
            await asyncio.get_running_loop().run_in_executor(None, svc._check_chains, probe)
            await svc.confiner.expose(e, disk.path, write=not disk.readonly)
            plan = {"disk": disk.model_dump(mode="json", exclude_defaults=True),
                    "config": sc.config}  # fmt: skip
            with intents.recorded(svc, name, "attach-disk", plan):
                await _plug_disk(monitor(e), disk, cur)
                intents.crash_point("attach-disk:plugged")
                set_live(svc, e, cur.model_copy(update={"disks": [*cur.disks, disk]}))
                if sc.config:
                    set_config(svc, e, new_cfg)
        elif sc.config:
            set_config(svc, e, new_cfg)
        svc.bus.publish(name, "device-attached", f"disk {target} ({source})")
    return {"target": target, "source": source, "live": sc.live, "config": sc.config}


async def _plug_disk(mon: Monitor, disk: Disk, dom: Domain) -> None:
    """The disk's records (qemu/devices.py, as on a command line) over QMP."""
    nodes, dev = disk_records(len(dom.disks), disk)
    await mon.execute("blockdev-add", nodes[0].qmp())
    try:
        await mon.execute("blockdev-add", nodes[1].qmp())
    except QmpError:
        with contextlib.suppress(QmpError):
            await mon.execute("blockdev-del", {"node-name": nodes[0].id})
        raise
    intents.crash_point("attach-disk:nodes")
    try:
        await device_add_pci(mon, dom, dev.qmp())
    except BaseException:
        for n in reversed(nodes):
            with contextlib.suppress(QmpError):
                await mon.execute("blockdev-del", {"node-name": n.id})
        raise


async def detach_disk(
    svc: Service,
    name: str,
    target: str,
    *,
    live: bool = False,
    config: bool = False,
    persistent: bool = False,
    timeout_s: float = DETACH_TIMEOUT_S,
) -> dict[str, Any]:
    async with svc.locks.hold(DomainKey(name), "detach-disk"):
        e = svc.entry(name)
        sc = scope(e, live, config, persistent)
        if sc.config and target not in _targets(e.domain):
            raise NotFoundError(
                f"domain {name!r} has no disk with target {target} in its "
                "definition; `virtkit domblklist` lists them"
            )
        if sc.live:
            cur = live_domain(e)
            disk = next((d for d in cur.disks if d.target == target), None)
            if disk is None:
                raise NotFoundError(
                    f"the running guest of domain {name!r} has no disk with "
                    f"target {target}; `virtkit domblklist` lists them"
                )
            if disk.bus is not DiskBus.VIRTIO or disk.device is not DiskDevice.DISK:
                raise ConfigError(
                    f"disk {target} is on bus {disk.bus}: only virtio disks can "
                    "be hot unplugged; use --config and restart the guest"
                )
            mon = monitor(e)
            after = last_seq(svc)
            await mon.execute("device_del", {"id": target})
            await wait_deleted(svc, name, target, after, timeout_s)
            for n in (ids.disk_node(target), ids.disk_file_node(target)):
                with contextlib.suppress(QmpError):
                    await mon.execute("blockdev-del", {"node-name": n})
            set_live(
                svc,
                e,
                cur.model_copy(update={"disks": [d for d in cur.disks if d.target != target]}),
            )
        if sc.config:
            set_config(
                svc,
                e,
                e.domain.model_copy(
                    update={"disks": [d for d in e.domain.disks if d.target != target]}
                ),
            )
        svc.bus.publish(name, "device-detached", f"disk {target}")
    return {"target": target, "live": sc.live, "config": sc.config}


async def recover_attach_disk(svc: Service, e: Entry, plan: dict[str, Any]) -> str:
    """A daemon crash cut an attach-disk short (intents.py). QEMU has the device: the
    guest may use it already, so the attach is completed; otherwise its nodes go."""
    disk = Disk.model_validate(plan["disk"])
    target = disk.target or ""
    if e.sup is None or not e.sup.alive or e.sup.monitor is None:
        return "the guest is no longer running: nothing was attached"
    mon = e.sup.monitor
    present = {
        str(x["name"]) for x in await mon.execute("qom-list", {"path": "/machine/peripheral"})
    }
    if target in present:
        cur = live_domain(e)
        if target not in _targets(cur):
            set_live(svc, e, cur.model_copy(update={"disks": [*cur.disks, disk]}))
        if plan.get("config") and target not in _targets(e.domain):
            set_config(svc, e, validated(e.domain, disks=[
                *domain_to_mapping(e.domain).get("disks", []),
                disk.model_dump(mode="json", exclude_defaults=True),
            ]))  # fmt: skip
        svc.bus.publish(e.domain.name, "device-attached", f"disk {target} ({disk.path})")
        return f"completed: disk {target} is attached"
    for node in (ids.disk_node(target), ids.disk_file_node(target)):
        with contextlib.suppress(QmpError):
            await mon.execute("blockdev-del", {"node-name": node})
    return f"rolled back: disk {target} is not attached"
