"""What a start checks against the host and does to it before the guest runs.

``host_checks`` (before QEMU is spawned): the overcommit allowance, numatune host nodes
and pinned CPUs that exist, and for every hostdev (managed ones are bound to vfio-pci
first, and given back if the start is refused) an IOMMU group wholly bound to vfio-pci,
its /dev/vfio/GROUP present and a locked-memory limit for all guest RAM. ``with_pins``
wraps the pre-``cont`` setup so vCPU threads (QMP query-cpus-fast thread ids) and the
emulator threads get their affinity before the first guest instruction.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from virtkit.daemon.domains import overcommit
from virtkit.errors import ConfigError, HostError, StateError, VirtkitError
from virtkit.host import numa, pci
from virtkit.model.hostfeat import format_cpuset, parse_cpuset
from virtkit.qemu.qmp import Monitor

if TYPE_CHECKING:
    from virtkit.daemon.service import Service
    from virtkit.host.facts import HostRoot
    from virtkit.model.domain import Domain

Setup = Callable[[Monitor], Awaitable[None]]


def check_cpus(root: HostRoot, cpus: list[int], what: str) -> None:
    online = set(numa.online(root))
    missing = sorted(set(cpus) - online)
    if missing:
        raise ConfigError(
            f"{what} names host CPUs {format_cpuset(missing)}, which are not online on this "
            f"host (online: {format_cpuset(sorted(online)) or 'none'}); fix the CPU list"
        )


def claim_managed(svc: Service, name: str, dom: Domain, moved: list[str]) -> None:
    """Managed host devices: refuse one another running guest has, bind the rest to vfio-pci
    (appending to ``moved`` the addresses this call bound)."""
    for dev in dom.hostdevs:
        for other, e in svc.entries.items():
            if other != name and e.sup is not None and e.sup.alive:
                booted = e.sup.record.domain.get("hostdevs", [])
                if any(h.get("address") == dev.address for h in booted):
                    raise StateError(
                        f"host device {dev.address} is given to running domain {other!r}; "
                        "a PCI device serves one guest at a time",
                        current=f"used by {other}",
                        required="free",
                    )
        if dev.managed and pci.read_device(svc.host, dev.address).driver != pci.VFIO:
            pci.detach(svc.host, dev.address, svc.sysfs_write)
            moved.append(dev.address)


def release_managed(svc: Service, dom: Domain) -> None:
    """Give managed host devices back to their host drivers (the guest stopped)."""
    for dev in dom.hostdevs:
        if dev.managed:
            try:
                pci.reattach(svc.host, dev.address, svc.sysfs_write)
            except VirtkitError as exc:
                svc.bus.publish(dom.name, "nodedev", f"reattach of {dev.address} failed: {exc}")


def check_hostdevs(root: HostRoot, dom: Domain) -> None:
    for dev in dom.hostdevs:
        info = pci.read_device(root, dev.address)
        if info.iommu_group is None:
            raise HostError(
                f"cannot give {info.name} to domain {dom.name!r}: it is in no IOMMU group, so "
                "the IOMMU is off; enable VT-d/AMD-Vi in the firmware and boot the host with "
                "intel_iommu=on (or amd_iommu=on)"
            )
        unready = pci.vfio_unready(root, dev.address)
        if unready:
            raise StateError(
                f"cannot give {info.name} to domain {dom.name!r}: every device of its IOMMU "
                f"group {info.iommu_group} must be bound to vfio-pci, and these are not: "
                f"{', '.join(unready)}; "
                "run `virtkit nodedev-detach NAME` for each",
                current="group not detached",
                required="all group devices bound to vfio-pci",
            )
        node = f"/dev/vfio/{info.iommu_group}"
        if not root.path(node).exists():
            raise HostError(
                f"cannot give {info.name} to domain {dom.name!r}: {node} does not exist, so "
                "QEMU cannot open the device's IOMMU group; load vfio-pci (modprobe vfio-pci) "
                "and check that the IOMMU is on (intel_iommu=on / amd_iommu=on)"
            )


def memlock_bytes(dom: Domain) -> int:
    """What QEMU must be allowed to lock for vfio: all guest RAM (DMA pins it) + 1 GiB."""
    return (max(dom.memory_mib, dom.max_memory_mib or 0) + 1024) << 20


def allow_memlock(need: int, pid: int = 0) -> None:
    """Raise RLIMIT_MEMLOCK of ``pid`` (0: the daemon, whose QEMUs inherit it) to ``need``."""
    import resource

    soft, hard = resource.prlimit(pid, resource.RLIMIT_MEMLOCK)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return
    new_hard = hard if hard == resource.RLIM_INFINITY or hard >= need else need
    try:
        resource.prlimit(pid, resource.RLIMIT_MEMLOCK, (need, new_hard))
    except (OSError, ValueError):
        raise HostError(
            f"QEMU must lock {need >> 20} MiB of guest memory for PCI passthrough, but the "
            f"locked-memory limit is {soft >> 20} MiB and cannot be raised here; run the "
            "system daemon as root or raise its limit (LimitMEMLOCK=infinity in its unit)"
        ) from None


def host_checks(svc: Service, name: str, dom: Domain, *, dry_run: bool = False) -> None:
    """Refuse a start this host cannot give (``dry_run``: check only, bind no device)."""
    overcommit.check_start(svc, name, dom)
    if dom.numatune is not None:
        have = numa.node_ids(svc.host) or [0]
        missing = sorted(set(dom.numatune.nodes) - set(have))
        if missing:
            raise ConfigError(
                f"numatune nodeset {dom.numatune.nodeset!r} of domain {name!r} names host NUMA "
                f"nodes {format_cpuset(missing)} that this host does not have (it has "
                f"{format_cpuset(have)}; `virtkit capabilities` shows them); fix it with "
                f"`virtkit numatune {name} --nodeset LIST --config`"
            )
    if dom.cputune is not None:
        for pin in dom.cputune.vcpupin:
            check_cpus(svc.host, parse_cpuset(pin.cpuset), f"vcpupin of vCPU {pin.vcpu}")
        if dom.cputune.emulatorpin:
            check_cpus(svc.host, parse_cpuset(dom.cputune.emulatorpin), "emulatorpin")
    if dry_run:  # managed devices are bound to vfio-pci by the start itself: exist is enough
        for dev in dom.hostdevs:
            if dev.managed:
                pci.read_device(svc.host, dev.address)
        unmanaged = [h for h in dom.hostdevs if not h.managed]
        check_hostdevs(svc.host, dom.model_copy(update={"hostdevs": unmanaged}))
        return
    moved: list[str] = []
    try:
        claim_managed(svc, name, dom, moved)
        check_hostdevs(svc.host, dom)
        if dom.hostdevs:
            allow_memlock(memlock_bytes(dom))
    except VirtkitError:
        for address in moved:  # refused: undo what this start did
            pci.reattach(svc.host, address, svc.sysfs_write)
        raise


def set_affinity(tid: int, cpus: list[int]) -> None:
    try:
        os.sched_setaffinity(tid, cpus)
    except OSError as exc:
        raise HostError(
            f"cannot pin QEMU thread {tid} to CPUs {format_cpuset(cpus)}: {exc.strerror}"
        ) from None


def get_affinity(tid: int) -> str:
    try:
        return format_cpuset(sorted(os.sched_getaffinity(tid)))
    except OSError:
        return ""


def tgid(tid: int) -> int:
    """The process a thread belongs to (/proc/TID/status Tgid)."""
    try:
        with open(f"/proc/{tid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Tgid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return tid


def emulator_tids(pid: int, vcpu_tids: set[int]) -> list[int]:
    """QEMU's threads that are not vCPUs (main loop, I/O, workers)."""
    try:
        tasks = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return [pid]
    return sorted(t for t in tasks if t not in vcpu_tids)


async def vcpu_threads(mon: Monitor) -> dict[int, int]:
    """vCPU index -> host thread id."""
    return {int(c["cpu-index"]): int(c["thread-id"]) for c in await mon.query_cpus_fast()}


async def apply_pins(mon: Monitor, dom: Domain, unpinned: list[int] | None = None) -> None:
    """Pin vCPU and emulator threads; ``unpinned``: CPUs for vCPUs without a pin (after a
    hot plug, whose new thread inherits the emulator's affinity)."""
    if dom.cputune is None:
        return
    threads = await vcpu_threads(mon)
    for vcpu, tid in threads.items():
        pin = dom.cputune.pin_of(vcpu)
        if pin is not None:
            set_affinity(tid, parse_cpuset(pin))
        elif unpinned and dom.cputune.emulatorpin:
            set_affinity(tid, unpinned)
    if dom.cputune.emulatorpin and threads:
        pid = tgid(next(iter(threads.values())))
        cpus = parse_cpuset(dom.cputune.emulatorpin)
        for tid in emulator_tids(pid, set(threads.values())):
            set_affinity(tid, cpus)


def with_pins(dom: Domain, setup: Setup | None) -> Setup | None:
    """``setup`` followed by the domain's CPU pinning (None if neither is needed)."""
    if dom.cputune is None or not (dom.cputune.vcpupin or dom.cputune.emulatorpin):
        return setup

    async def both(mon: Monitor) -> None:
        if setup is not None:
            await setup(mon)
        await apply_pins(mon, dom)

    return both
