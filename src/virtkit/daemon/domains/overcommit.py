"""Overcommit accounting: vCPUs and memory promised to guests vs what the host has.

As OpenStack's placement does: capacity = host online CPUs x ``cpu_allocation_ratio``
and MemTotal x ``memory_allocation_ratio`` (daemon settings, VIRTKIT_* environment).
A guest promises its vCPUs (live count) and its boot memory plus hot-plugged DIMMs
(the balloon does not lower the promise: the guest may take the memory back). Guests
being started right now count too, so two concurrent starts cannot both squeeze in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from virtkit.daemon.locks import DomainKey
from virtkit.errors import StateError, VirtkitError
from virtkit.formats.domfile import domain_from_mapping
from virtkit.host import facts

if TYPE_CHECKING:
    from virtkit.daemon.service import Entry, Service
    from virtkit.model.domain import Domain

DIMM_KEY = "overcommit.dimm_mib"  # Entry.extra: (runtime record id, MiB of plugged DIMMs)


@dataclass(frozen=True)
class Usage:
    vcpus: int
    memory_mib: int
    host_cpus: int
    host_memory_mib: int
    cpu_ratio: float
    memory_ratio: float
    guests: int

    @property
    def vcpu_limit(self) -> int:
        return int(self.host_cpus * self.cpu_ratio)

    @property
    def memory_limit_mib(self) -> int:
        return int(self.host_memory_mib * self.memory_ratio)

    def to_dict(self) -> dict[str, Any]:
        return {
            "vcpus_promised": self.vcpus,
            "vcpus_limit": self.vcpu_limit,
            "host_cpus": self.host_cpus,
            "cpu_allocation_ratio": self.cpu_ratio,
            "memory_promised_mib": self.memory_mib,
            "memory_limit_mib": self.memory_limit_mib,
            "host_memory_mib": self.host_memory_mib,
            "memory_allocation_ratio": self.memory_ratio,
            "guests": self.guests,
        }


def dimm_mib(e: Entry) -> int:
    if e.sup is None:
        return 0
    rec_id, mib = e.extra.get(DIMM_KEY, (None, 0))
    return int(mib) if rec_id == e.sup.record.id else 0


def add_dimm(e: Entry, size_mib: int) -> None:
    """Hot-plugged (negative: unplugged) DIMM memory of the running guest."""
    if e.sup is not None:
        e.extra[DIMM_KEY] = (e.sup.record.id, max(0, dimm_mib(e) + size_mib))


def _promise(e: Entry) -> tuple[int, int]:
    if e.sup is not None and e.sup.alive:
        try:
            dom = domain_from_mapping(e.sup.record.domain, "runtime record")
        except VirtkitError:
            dom = e.domain
        return dom.vcpus, dom.memory_mib + dimm_mib(e)
    return e.domain.vcpus, e.domain.memory_mib


def usage(svc: Service, exclude: str | None = None) -> Usage:
    vcpus = mem = guests = 0
    for name, e in svc.entries.items():
        if name == exclude:
            continue
        if e.active or svc.locks.holder(DomainKey(name)) == "start":
            v, m = _promise(e)
            vcpus, mem, guests = vcpus + v, mem + m, guests + 1
    return Usage(
        vcpus=vcpus,
        memory_mib=mem,
        host_cpus=facts.online_cpus(svc.host) or 1,
        host_memory_mib=facts.memory_mib(svc.host),
        cpu_ratio=svc.settings.cpu_allocation_ratio,
        memory_ratio=svc.settings.memory_allocation_ratio,
        guests=guests,
    )


def _check(u: Usage, name: str, vcpus: int, memory_mib: int, doing: str) -> None:
    how = "stop a running guest, or raise the ratio in the daemon's environment ({}=N) " \
          "and restart the daemon (guests keep running)"  # fmt: skip
    if vcpus > 0 and u.vcpus + vcpus > u.vcpu_limit:
        raise StateError(
            f"cannot {doing} domain {name!r}: it needs {vcpus} more vCPUs, but {u.vcpus} are "
            f"already promised to running guests and the host allows {u.vcpu_limit} "
            f"({u.host_cpus} online CPUs x cpu_allocation_ratio {u.cpu_ratio:g}); "
            + how.format("VIRTKIT_CPU_ALLOCATION_RATIO"),
            current=f"{u.vcpus}/{u.vcpu_limit} vCPUs promised",
            required=f"{vcpus} vCPUs free",
        )
    known = u.host_memory_mib > 0  # no /proc/meminfo: the capacity is unknown, not zero
    if known and memory_mib > 0 and u.memory_mib + memory_mib > u.memory_limit_mib:
        raise StateError(
            f"cannot {doing} domain {name!r}: it needs {memory_mib} MiB more memory, but "
            f"{u.memory_mib} MiB are already promised to running guests and the host allows "
            f"{u.memory_limit_mib} MiB ({u.host_memory_mib} MiB MemTotal x "
            f"memory_allocation_ratio {u.memory_ratio:g}); "
            + how.format("VIRTKIT_MEMORY_ALLOCATION_RATIO"),
            current=f"{u.memory_mib}/{u.memory_limit_mib} MiB promised",
            required=f"{memory_mib} MiB free",
        )


def check_start(svc: Service, name: str, dom: Domain) -> None:
    """Refuse to start ``dom`` when its vCPUs or memory would exceed the allowance."""
    _check(usage(svc, exclude=name), name, dom.vcpus, dom.memory_mib, "start")


def check_grow(svc: Service, name: str, *, vcpus: int = 0, memory_mib: int = 0) -> None:
    """Refuse a hot plug (more vCPUs, a DIMM) beyond the allowance."""
    _check(usage(svc), name, vcpus, memory_mib, "hot-plug into")
