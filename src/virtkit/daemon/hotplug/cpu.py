"""vCPUs: setvcpus (live hot plug/unplug via QMP device_add/device_del of the CPU type
QEMU reports in query-hotpluggable-cpus), vcpucount and vcpuinfo (virsh's views)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import TYPE_CHECKING, Any

from virtkit.daemon.domains.hoststart import apply_pins, get_affinity
from virtkit.daemon.hotplug.disks import (
    DETACH_TIMEOUT_S,
    live_domain,
    monitor,
    not_released,
    scope,
    set_config,
    set_live,
    validated,
)
from virtkit.daemon.locks import DomainKey
from virtkit.errors import ConfigError, StateError
from virtkit.host.numa import online
from virtkit.qemu.qmp import Monitor

if TYPE_CHECKING:
    from virtkit.daemon.service import Service

PERIPHERAL = "/machine/peripheral/"


async def setvcpus(
    svc: Service,
    name: str,
    count: int,
    *,
    live: bool = False,
    config: bool = False,
    maximum: bool = False,
) -> dict[str, Any]:
    if count < 1:
        raise ConfigError("the vCPU count must be at least 1")
    async with svc.locks.hold(DomainKey(name), "setvcpus"):
        e = svc.entry(name)
        if maximum:
            if live:
                raise ConfigError("--maximum changes the definition only: use it with --config")
            if not e.persistent:
                raise StateError(
                    f"domain {name!r} is transient; --maximum needs a definition",
                    current="transient",
                    required="persistent",
                )
            set_config(
                svc, e, validated(e.domain, max_vcpus=count, vcpus=min(e.domain.vcpus, count))
            )
            return {"vcpus": e.domain.vcpus, "max_vcpus": count, "live": False, "config": True}
        sc = scope(e, live, config)
        if sc.live:
            cur = live_domain(e)
            if count > cur.effective_max_vcpus:
                raise ConfigError(
                    f"domain {name!r} was started with at most {cur.effective_max_vcpus} vCPUs; "
                    f"{count} needs a larger maximum: `virtkit setvcpus {name} {count} "
                    "--maximum --config`, then restart the guest"
                )
            if count > cur.vcpus:
                from virtkit.daemon.domains.overcommit import check_grow

                check_grow(svc, name, vcpus=count - cur.vcpus)
            await _set_live(svc, name, count)
            if count > cur.vcpus and cur.cputune is not None:  # pins for the new vCPU threads
                await apply_pins(monitor(e), cur, online(svc.host))
            set_live(svc, e, cur.model_copy(update={"vcpus": count}))
        if sc.config:
            if count > e.domain.effective_max_vcpus:
                raise ConfigError(
                    f"{count} vCPUs exceed the maximum of {e.domain.effective_max_vcpus} in the "
                    f"definition of {name!r}; raise it with `--maximum --config` first"
                )
            set_config(svc, e, validated(e.domain, vcpus=count))
        svc.bus.publish(name, "vcpus", f"{count} vCPUs ({'live' if sc.live else 'config'})")
    return {
        "vcpus": count,
        "max_vcpus": e.domain.effective_max_vcpus,
        "live": sc.live,
        "config": sc.config,
    }


async def _set_live(svc: Service, name: str, count: int) -> None:
    mon = monitor(svc.entry(name))
    slots: list[dict[str, Any]] = list(await mon.execute("query-hotpluggable-cpus"))
    plugged = [s for s in slots if "qom-path" in s]
    free = [s for s in slots if "qom-path" not in s]
    free.sort(key=lambda s: sorted(s.get("props", {}).items()))
    if count > len(plugged):
        for slot in free[: count - len(plugged)]:
            props = {k: v for k, v in slot["props"].items() if k.endswith("-id")}
            dev_id = "vcpu" + "-".join(str(props[k]) for k in sorted(props))
            await mon.execute("device_add", {"driver": slot["type"], "id": dev_id, **props})
        return
    removable = sorted(
        (s for s in plugged if str(s["qom-path"]).startswith(PERIPHERAL)),
        key=lambda s: str(s["qom-path"]),
        reverse=True,
    )
    need = len(plugged) - count
    if need > len(removable):
        raise StateError(
            f"only hot-plugged vCPUs can be unplugged: domain {name!r} booted with "
            f"{len(plugged) - len(removable)}; lower the count with --config and restart it",
            current=f"{len(plugged)} vCPUs",
            required=f"{count} vCPUs",
        )
    for slot in removable[:need]:
        dev_id = str(slot["qom-path"])[len(PERIPHERAL) :]
        await mon.execute("device_del", {"id": dev_id})
        await _wait_gone(mon, name, str(slot["qom-path"]), dev_id)


async def _wait_gone(mon: Monitor, name: str, qom_path: str, dev_id: str) -> None:
    """A CPU is gone when its slot is free again (QEMU 7.2 reports DEVICE_DELETED only for
    the CPU's lapic child, not reliably for the CPU itself)."""
    deadline = time.monotonic() + DETACH_TIMEOUT_S
    while time.monotonic() < deadline:
        slots = await mon.execute("query-hotpluggable-cpus")
        if not any(s.get("qom-path") == qom_path for s in slots):
            return
        await asyncio.sleep(0.2)
    raise not_released(name, dev_id, DETACH_TIMEOUT_S)


async def vcpucount(svc: Service, name: str) -> dict[str, Any]:
    e = svc.entry(name)
    out: dict[str, Any] = {
        "maximum_config": e.domain.effective_max_vcpus,
        "current_config": e.domain.vcpus,
        "maximum_live": None,
        "current_live": None,
    }
    if e.active:
        cur = live_domain(e)
        cpus = await monitor(e).query_cpus_fast()
        out.update(maximum_live=cur.effective_max_vcpus, current_live=len(cpus))
    return out


def _task_stat(pid: int, tid: int) -> tuple[int, float]:
    """(host CPU last run on, CPU seconds) of one QEMU thread."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/task/{tid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[36]), (int(fields[11]) + int(fields[12])) / tick
    return -1, 0.0


async def vcpuinfo(svc: Service, name: str) -> list[dict[str, Any]]:
    e = svc.entry(name)
    mon = monitor(e)
    assert e.sup is not None
    pid = e.sup.record.pid
    state = "running" if str(e.state) == "running" else str(e.state)
    out = []
    for c in sorted(await mon.query_cpus_fast(), key=lambda c: int(c["cpu-index"])):
        tid = int(c["thread-id"])
        cpu, secs = _task_stat(pid, tid)
        out.append(
            {
                "vcpu": int(c["cpu-index"]),
                "cpu": cpu,
                "state": state,
                "cpu_time_s": round(secs, 1),
                "thread_id": tid,
                "affinity": get_affinity(tid),
            }
        )
    return out
