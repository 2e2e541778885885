"""Memory: setmem (virtio balloon), setmaxmem (the definition's boot memory, libvirt's
<memory>), dommemstat, and DIMM hot plug (attach-device of a memory device: QMP
object-add memory-backend-ram + device_add pc-dimm, up to max_memory_mib / slots).

Hot-plugged DIMMs are not part of the Domain model: QEMU's query-memory-devices is the
truth about them (it survives a daemon restart with the guest)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from virtkit.daemon.domains import overcommit
from virtkit.daemon.hotplug.disks import (
    live_domain,
    monitor,
    scope,
    set_config,
    set_live,
    validated,
)
from virtkit.daemon.locks import DomainKey
from virtkit.errors import ConfigError, NotFoundError, QmpError, StateError
from virtkit.model.domain import MIN_MEMORY_MIB
from virtkit.qemu.qmp import Monitor

if TYPE_CHECKING:
    from virtkit.daemon.service import Service

MIB = 1024 * 1024
BALLOON = "/machine/peripheral/balloon0"
OFFLINE_HINT = (
    "Linux releases a DIMM only when it can offline all of its memory: that needs the "
    "memory onlined as movable (kernel option memhp_default_state=online_movable, or "
    "`echo online_movable > /sys/devices/system/memory/memoryN/state` in the guest)"
)


@dataclass(frozen=True)
class Dimm:
    id: str
    size_mib: int


async def dimms(mon: Monitor) -> list[Dimm]:
    out = []
    for dev in await mon.execute("query-memory-devices"):
        data = dev.get("data", {})
        if dev.get("type") == "dimm":
            out.append(Dimm(str(data.get("id", "")), int(data.get("size", 0)) // MIB))
    return out


async def setmem(
    svc: Service, name: str, size_kib: int, *, live: bool = False, config: bool = False
) -> dict[str, Any]:
    target = size_kib // 1024
    if target < MIN_MEMORY_MIB:
        raise ConfigError(
            f"{size_kib} KiB is below the {MIN_MEMORY_MIB} MiB minimum; "
            "sizes without a unit are KiB, like virsh (write 160M for MiB)"
        )
    async with svc.locks.hold(DomainKey(name), "setmem"):
        e = svc.entry(name)
        sc = scope(e, live, config)
        if sc.live:
            mon = monitor(e)
            cur = live_domain(e)
            top = cur.memory_mib + sum(d.size_mib for d in await dimms(mon))
            if target > top:
                raise ConfigError(
                    f"the running guest of {name!r} has {top} MiB; the balloon cannot give it "
                    f"more ({target} MiB): raise memory with --config and restart, or attach a "
                    "DIMM (attach-device)"
                )
            await mon.execute("balloon", {"value": target * MIB})
            keep = None if target >= cur.memory_mib else target
            set_live(svc, e, cur.model_copy(update={"current_memory_mib": keep}))
        if sc.config:
            if target > e.domain.memory_mib:
                raise ConfigError(
                    f"{target} MiB is above the {e.domain.memory_mib} MiB domain {name!r} boots "
                    f"with; raise that first: `virtkit setmaxmem {name} {target}M --config`"
                )
            keep = None if target == e.domain.memory_mib else target
            set_config(svc, e, validated(e.domain, current_memory_mib=keep))
        svc.bus.publish(name, "memory", f"balloon target {target} MiB")
    return {"current_memory_mib": target, "live": sc.live, "config": sc.config}


async def setmaxmem(
    svc: Service, name: str, size_kib: int, *, live: bool = False, config: bool = False
) -> dict[str, Any]:
    size = size_kib // 1024
    async with svc.locks.hold(DomainKey(name), "setmaxmem"):
        e = svc.entry(name)
        if live or (not config and e.active):
            raise StateError(
                f"the memory a running guest booted with cannot change; use --config (takes "
                f"effect at the next start), `virtkit setmem {name}` to balloon, or "
                "attach-device a DIMM",
                current=str(e.state),
                required="--config",
            )
        scope(e, False, True)
        dom = e.domain
        if dom.max_memory_mib is not None and size > dom.max_memory_mib:
            raise ConfigError(
                f"{size} MiB is above max_memory_mib ({dom.max_memory_mib} MiB) "
                f"of domain {name!r}; raise that in its definition"
            )
        cur = dom.current_memory_mib
        keep = cur if cur is not None and cur < size else None
        try:
            set_config(svc, e, validated(dom, memory_mib=size, current_memory_mib=keep))
        except ConfigError as exc:
            raise ConfigError(
                f"cannot set memory of {name!r} to {size} MiB: {exc.message}"
            ) from None
    return {"memory_mib": size, "live": False, "config": True}


def _rss_kib(pid: int) -> int:
    with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


GUEST_STATS = {
    "stat-swap-in": "swap_in",
    "stat-swap-out": "swap_out",
    "stat-major-faults": "major_fault",
    "stat-minor-faults": "minor_fault",
    "stat-free-memory": "unused",
    "stat-total-memory": "available",
    "stat-available-memory": "usable",
    "stat-disk-caches": "disk_caches",
}


async def dommemstat(svc: Service, name: str, period_s: int | None = None) -> dict[str, int]:
    e = svc.entry(name)
    mon = monitor(e)
    assert e.sup is not None
    if period_s is not None:
        await mon.execute(
            "qom-set",
            {"path": BALLOON, "property": "guest-stats-polling-interval", "value": period_s},
        )
    bal = await mon.execute("query-balloon")
    out = {"actual": int(bal["actual"]) // 1024}
    with contextlib.suppress(QmpError):
        gs = await mon.execute("qom-get", {"path": BALLOON, "property": "guest-stats"})
        if int(gs.get("last-update", 0)) > 0:
            for key, label in GUEST_STATS.items():
                value = int(gs.get("stats", {}).get(key, -1))
                if value >= 0:
                    out[label] = (
                        value // 1024 if "fault" not in key and "swap" not in key else value
                    )
            out["last_update"] = int(gs["last-update"])
    out["rss"] = _rss_kib(e.sup.record.pid)
    return out


# -- DIMMs ----------------------------------------------------------------------------------


async def attach_dimm(svc: Service, name: str, size_mib: int) -> dict[str, Any]:
    """Hot-plug one DIMM of ``size_mib`` (live only: the model has no DIMM list)."""
    if size_mib <= 0 or size_mib % 2:
        raise ConfigError(
            f"a DIMM of {size_mib} MiB cannot be plugged: use a positive size "
            "in whole 2 MiB steps (Linux onlines 128 MiB blocks)"
        )
    async with svc.locks.hold(DomainKey(name), "attach-device"):
        e = svc.entry(name)
        mon = monitor(e)
        cur = live_domain(e)
        if not cur.max_memory_mib or cur.max_memory_mib <= cur.memory_mib:
            raise ConfigError(
                f"domain {name!r} was started without memory hot plug slots; set "
                "max_memory_mib (libvirt <maxMemory slots='N'>, virt-install "
                "--memory=MEM,maxmemory=MAX) above memory_mib and restart it"
            )
        have = await dimms(mon)
        total = cur.memory_mib + sum(d.size_mib for d in have)
        if total + size_mib > cur.max_memory_mib:
            raise ConfigError(
                f"domain {name!r} has {total} MiB; {size_mib} MiB more exceeds its maximum of "
                f"{cur.max_memory_mib} MiB: plug a smaller DIMM or raise max_memory_mib "
                "(takes effect at the next start)"
            )
        if len(have) >= cur.memory_slots:
            raise ConfigError(f"all {cur.memory_slots} memory slots of {name!r} are used")
        overcommit.check_grow(svc, name, memory_mib=size_mib)
        ids = {d.id for d in have}
        n = next(i for i in range(len(have) + 1) if f"dimm{i}" not in ids)
        dev, mem = f"dimm{n}", f"mem-dimm{n}"
        backend: dict[str, Any] = {"qom-type": "memory-backend-ram", "id": mem,
                                   "size": size_mib * MIB}  # fmt: skip
        if cur.numatune is not None:  # the DIMM's memory comes from the same host nodes
            from virtkit.qemu.argv_host import POLICY

            backend |= {"host-nodes": cur.numatune.nodes, "policy": POLICY[cur.numatune.mode]}
        await mon.execute("object-add", backend)
        try:
            await mon.execute("device_add", {"driver": "pc-dimm", "id": dev, "memdev": mem})
        except QmpError:
            with contextlib.suppress(QmpError):
                await mon.execute("object-del", {"id": mem})
            raise
        set_live(svc, e, cur)
        overcommit.add_dimm(e, size_mib)
        svc.bus.publish(name, "device-attached", f"memory {dev} ({size_mib} MiB)")
    return {"device": dev, "size_mib": size_mib, "total_mib": total + size_mib}


async def detach_dimm(svc: Service, name: str, size_mib: int) -> dict[str, Any]:
    """Unplug a hot-plugged DIMM of ``size_mib`` (the newest such); the guest must offline
    its memory first, which Linux does on the ACPI eject request when it can."""
    from virtkit.daemon.hotplug.disks import last_seq, wait_deleted

    async with svc.locks.hold(DomainKey(name), "detach-device"):
        e = svc.entry(name)
        mon = monitor(e)
        match = [d for d in await dimms(mon) if d.size_mib == size_mib and d.id]
        if not match:
            raise NotFoundError(
                f"the running guest of {name!r} has no hot-plugged DIMM of {size_mib} MiB; "
                f"`virtkit dommemstat {name}` and the attach-device file tell the sizes"
            )
        dev = match[-1].id
        after = last_seq(svc)
        await mon.execute("device_del", {"id": dev})
        await wait_deleted(svc, name, dev, after, hint=OFFLINE_HINT)
        with contextlib.suppress(QmpError):
            await mon.execute("object-del", {"id": f"mem-{dev}"})
        overcommit.add_dimm(e, -size_mib)
        svc.bus.publish(name, "device-detached", f"memory {dev} ({size_mib} MiB)")
    return {"device": dev, "size_mib": size_mib}
