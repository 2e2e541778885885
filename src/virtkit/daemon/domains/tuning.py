"""virsh vcpupin, emulatorpin and numatune: show or change a domain's CPU pinning and
host memory binding, live (sched_setaffinity on QEMU's threads, recorded in the runtime
record) and/or in the definition (applied at every start, see hoststart.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from virtkit.daemon.domains.hoststart import (
    check_cpus,
    emulator_tids,
    get_affinity,
    set_affinity,
    tgid,
    vcpu_threads,
)
from virtkit.daemon.hotplug.disks import (
    live_domain,
    monitor,
    scope,
    set_config,
    set_live,
    validated,
)
from virtkit.daemon.locks import DomainKey
from virtkit.errors import ConfigError, StateError, VirtkitError
from virtkit.formats.domfile import domain_to_mapping
from virtkit.host import numa
from virtkit.model.hostfeat import CpuTune, VcpuPin, format_cpuset, parse_cpuset

if TYPE_CHECKING:
    from virtkit.daemon.service import Entry, Service
    from virtkit.model.domain import Domain


def _cpus(text: str, what: str) -> list[int]:
    try:
        return parse_cpuset(text, what)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _all_host(svc: Service) -> str:
    return format_cpuset(numa.online(svc.host)) or "0"


def _with_pin(dom: Domain, vcpu: int | None, cpus: str | None) -> dict[str, Any]:
    """``dom``'s cputune mapping with vCPU ``vcpu`` pinned (or the emulator, vcpu None)."""
    tune = dom.cputune or CpuTune()
    if vcpu is None:
        new = tune.model_copy(update={"emulatorpin": cpus})
    else:
        pins = [p for p in tune.vcpupin if p.vcpu != vcpu]
        if cpus is not None:
            pins = sorted([*pins, VcpuPin(vcpu=vcpu, cpuset=cpus)], key=lambda p: p.vcpu)
        new = tune.model_copy(update={"vcpupin": pins})
    return new.model_dump(mode="json", exclude_defaults=True)


def _store_live(svc: Service, e: Entry, vcpu: int | None, cpus: str | None) -> None:
    cur = live_domain(e)
    set_live(svc, e, validated(cur, cputune=_with_pin(cur, vcpu, cpus)))


async def _thread_ids(svc: Service, e: Entry) -> dict[int, int]:
    return await vcpu_threads(monitor(e))


async def vcpupin(
    svc: Service,
    name: str,
    vcpu: int | None = None,
    cpulist: str | None = None,
    *,
    live: bool = False,
    config: bool = False,
) -> dict[str, Any]:
    """Without ``cpulist``: every vCPU's affinity. With it: pin ``vcpu`` to those CPUs."""
    e = svc.entry(name)
    if cpulist is None:
        sc = scope(e, live, config)
        rows = []
        if sc.live:
            for v, tid in sorted((await _thread_ids(svc, e)).items()):
                rows.append({"vcpu": v, "cpuset": get_affinity(tid)})
        else:
            tune = e.domain.cputune
            for v in range(e.domain.effective_max_vcpus):
                pin = tune.pin_of(v) if tune else None
                rows.append({"vcpu": v, "cpuset": pin or _all_host(svc)})
        if vcpu is not None:
            rows = [r for r in rows if r["vcpu"] == vcpu]
            if not rows:
                raise ConfigError(f"domain {name!r} has no vCPU {vcpu}")
        return {"vcpus": rows, "live": sc.live, "config": sc.config}
    if vcpu is None:
        raise ConfigError("give the vCPU number before the CPU list: vcpupin DOM VCPU CPULIST")
    cpus = _cpus(cpulist, "vcpupin CPU list")
    check_cpus(svc.host, cpus, f"vcpupin of vCPU {vcpu}")
    text = format_cpuset(cpus)
    async with svc.locks.hold(DomainKey(name), "vcpupin"):
        e = svc.entry(name)
        sc = scope(e, live, config)
        if sc.config and vcpu >= e.domain.effective_max_vcpus:
            raise ConfigError(
                f"domain {name!r} has {e.domain.effective_max_vcpus} vCPUs (0-"
                f"{e.domain.effective_max_vcpus - 1}); there is no vCPU {vcpu} to pin"
            )
        if sc.live:
            threads = await _thread_ids(svc, e)
            if vcpu not in threads:
                raise StateError(
                    f"the running guest of {name!r} has no vCPU {vcpu} (it runs "
                    f"{len(threads)}); pin it with --config, or plug it first (setvcpus)",
                    current=f"{len(threads)} vCPUs",
                    required=f"vCPU {vcpu} present",
                )
            set_affinity(threads[vcpu], cpus)
            _store_live(svc, e, vcpu, text)
        if sc.config:
            set_config(svc, e, validated(e.domain, cputune=_with_pin(e.domain, vcpu, text)))
        svc.bus.publish(name, "tuned", f"vCPU {vcpu} pinned to {text}")
    return {"vcpus": [{"vcpu": vcpu, "cpuset": text}], "live": sc.live, "config": sc.config}


async def emulatorpin(
    svc: Service, name: str, cpulist: str | None = None, *, live: bool = False,
    config: bool = False,
) -> dict[str, Any]:  # fmt: skip
    e = svc.entry(name)
    if cpulist is None:
        sc = scope(e, live, config)
        if sc.live:
            threads = await _thread_ids(svc, e)
            assert e.sup is not None
            tids = emulator_tids(e.sup.record.pid, set(threads.values()))
            shown = get_affinity(tids[0]) if tids else ""
        else:
            tune = e.domain.cputune
            shown = (tune.emulatorpin if tune else None) or _all_host(svc)
        return {"cpuset": shown, "live": sc.live, "config": sc.config}
    cpus = _cpus(cpulist, "emulatorpin CPU list")
    check_cpus(svc.host, cpus, "emulatorpin")
    text = format_cpuset(cpus)
    async with svc.locks.hold(DomainKey(name), "emulatorpin"):
        e = svc.entry(name)
        sc = scope(e, live, config)
        if sc.live:
            threads = await _thread_ids(svc, e)
            assert e.sup is not None
            pid = tgid(next(iter(threads.values()))) if threads else e.sup.record.pid
            for tid in emulator_tids(pid, set(threads.values())):
                set_affinity(tid, cpus)
            _store_live(svc, e, None, text)
        if sc.config:
            set_config(svc, e, validated(e.domain, cputune=_with_pin(e.domain, None, text)))
        svc.bus.publish(name, "tuned", f"emulator pinned to {text}")
    return {"cpuset": text, "live": sc.live, "config": sc.config}


async def numatune(
    svc: Service,
    name: str,
    nodeset: str | None = None,
    mode: str | None = None,
    *,
    live: bool = False,
    config: bool = False,
) -> dict[str, Any]:
    """Show, or (in the definition) change, the host NUMA nodes guest memory comes from."""
    e = svc.entry(name)
    if nodeset is None and mode is None:
        dom = live_domain(e) if (e.active and not config) else e.domain
        t = dom.numatune
        return {
            "mode": str(t.mode) if t else "strict",
            "nodeset": t.nodeset if t else "",
            "live": e.active and not config,
            "config": not (e.active and not config),
        }
    if live:
        raise ConfigError(
            "the host memory binding of a running guest cannot be changed (its memory is "
            "already placed); use --config and restart the domain"
        )
    async with svc.locks.hold(DomainKey(name), "numatune"):
        e = svc.entry(name)
        if not e.persistent:
            raise StateError(f"domain {name!r} is transient; it has no definition to change",
                             current="transient", required="persistent")  # fmt: skip
        cur = domain_to_mapping(e.domain).get("numatune") or {}
        if nodeset == "":
            new: dict[str, Any] | None = None
        else:
            new = cur | {k: v for k, v in (("nodeset", nodeset), ("mode", mode)) if v}
            if "nodeset" not in new:
                raise ConfigError("give --nodeset too: the domain has no numatune yet")
        try:
            set_config(svc, e, validated(e.domain, numatune=new))
        except VirtkitError as exc:
            raise ConfigError(exc.message.split("\n", 1)[-1].strip()) from None
        t = e.domain.numatune
        shown = f"{t.mode} {t.nodeset}" if t else "none"
        svc.bus.publish(name, "tuned", f"numatune {shown}")
    return {"mode": str(t.mode) if t else "strict", "nodeset": t.nodeset if t else "",
            "live": False, "config": True}  # fmt: skip
