"""Host-facing parts of a domain: guest NUMA cells, host memory binding (numatune),
vCPU/emulator pinning (cputune), KSM opt-out and PCI host devices. Pure data, no I/O.

The domain format::

    numa:
      cells: [{cpus: "0", memory_mib: 128}, {cpus: "1", memory_mib: 128}]
    numatune: {nodeset: "0-1", mode: strict}        # strict | preferred | interleave
    cputune:
      vcpupin: [{vcpu: 0, cpuset: "1"}]
      emulatorpin: "0-1"
    mem_merge: false                                 # KSM may not merge this guest's pages
    hostdevs: [{address: "0000:03:00.0", managed: true}]   # PCI passthrough (vfio-pci)
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import ConfigDict, Field, field_validator, model_validator

from virtkit.model.strict import StrictModel

if TYPE_CHECKING:
    from virtkit.model.domain import Domain

MAX_HOST_CPU = 8191  # sched_setaffinity masks beyond this are no host virtkit runs on
MAX_HOST_NODE = 1023
CPUSET_RE = re.compile(r"^\^?\d+(-\d+)?(,\^?\d+(-\d+)?)*$")
PCI_RE = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")


def parse_cpuset(text: str, what: str = "CPU list", high: int = MAX_HOST_CPU) -> list[int]:
    """libvirt/sysfs list syntax: ``0-3,8``, ``0-7,^2`` (exclusion) -> sorted numbers.

    Raises ValueError naming ``what`` and the rule.
    """
    text = str(text).strip().replace(" ", "")
    if not CPUSET_RE.fullmatch(text):
        raise ValueError(
            f"invalid {what} {text!r}: use numbers and ranges like 0-3,8 (^N excludes N)"
        )
    keep: set[int] = set()
    drop: set[int] = set()
    for part in text.split(","):
        target = drop if part.startswith("^") else keep
        lo_s, _, hi_s = part.lstrip("^").partition("-")
        lo, hi = int(lo_s), int(hi_s or lo_s)
        if lo > hi:
            raise ValueError(f"invalid {what} {text!r}: range {lo}-{hi} goes backwards")
        if hi > high:
            raise ValueError(f"invalid {what} {text!r}: {hi} is above the limit of {high}")
        target.update(range(lo, hi + 1))
    out = sorted(keep - drop)
    if not out:
        raise ValueError(f"invalid {what} {text!r}: it selects nothing")
    return out


def format_cpuset(numbers: list[int] | set[int]) -> str:
    """[0, 1, 2, 5] -> "0-2,5" (the inverse of parse_cpuset)."""
    items = sorted(set(numbers))
    parts: list[str] = []
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1] == items[j] + 1:
            j += 1
        parts.append(str(items[i]) if i == j else f"{items[i]}-{items[j]}")
        i = j + 1
    return ",".join(parts)


def ranges(numbers: list[int]) -> list[str]:
    """[0, 1, 2, 5] -> ["0-2", "5"]: QEMU repeats a key once per range (cpus=0-2,cpus=5)."""
    return format_cpuset(numbers).split(",") if numbers else []


class _Strict(StrictModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class NumaMode(StrEnum):
    """libvirt's numatune memory modes (QEMU memory-backend policy bind/preferred/interleave)."""

    STRICT = "strict"
    PREFERRED = "preferred"
    INTERLEAVE = "interleave"


class NumaCell(_Strict):
    cpus: str = Field(min_length=1, max_length=1024)
    memory_mib: int = Field(ge=1, le=16 * 1024 * 1024)

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, v: str) -> str:
        return format_cpuset(parse_cpuset(v, "NUMA cell cpus"))


class Numa(_Strict):
    cells: list[NumaCell] = Field(min_length=1, max_length=64)


class NumaTune(_Strict):
    nodeset: str = Field(min_length=1, max_length=1024)
    mode: NumaMode = NumaMode.STRICT

    @field_validator("nodeset")
    @classmethod
    def _nodeset(cls, v: str) -> str:
        return format_cpuset(parse_cpuset(v, "NUMA nodeset", MAX_HOST_NODE))

    @model_validator(mode="after")
    def _preferred_one(self) -> NumaTune:
        if self.mode is NumaMode.PREFERRED and len(parse_cpuset(self.nodeset)) != 1:
            raise ValueError(
                f"numatune mode preferred takes one host node (got {self.nodeset!r}); "
                "use strict or interleave for several"
            )
        return self

    @property
    def nodes(self) -> list[int]:
        return parse_cpuset(self.nodeset, "NUMA nodeset", MAX_HOST_NODE)


class VcpuPin(_Strict):
    vcpu: int = Field(ge=0, le=1023)
    cpuset: str = Field(min_length=1, max_length=1024)

    @field_validator("cpuset")
    @classmethod
    def _cpuset(cls, v: str) -> str:
        return format_cpuset(parse_cpuset(v, "vcpupin cpuset"))


class CpuTune(_Strict):
    vcpupin: list[VcpuPin] = Field(default_factory=list, max_length=1024)
    emulatorpin: str | None = Field(default=None, min_length=1, max_length=1024)

    @field_validator("emulatorpin")
    @classmethod
    def _emulatorpin(cls, v: str | None) -> str | None:
        return None if v is None else format_cpuset(parse_cpuset(v, "emulatorpin cpuset"))

    @model_validator(mode="after")
    def _unique(self) -> CpuTune:
        seen = [p.vcpu for p in self.vcpupin]
        if len(seen) != len(set(seen)):
            raise ValueError(f"cputune.vcpupin names a vCPU twice (got {seen})")
        return self

    def pin_of(self, vcpu: int) -> str | None:
        return next((p.cpuset for p in self.vcpupin if p.vcpu == vcpu), None)


def normalize_pci(text: str) -> str:
    """``03:00.0``, ``0000:03:00.0``, ``pci_0000_03_00_0`` -> ``0000:03:00.0``.

    Raises ValueError with the accepted spellings.
    """
    t = str(text).strip().lower()
    m = re.fullmatch(r"pci_([0-9a-f]{4})_([0-9a-f]{2})_([0-9a-f]{2})_([0-7])", t)
    if m:
        t = f"{m[1]}:{m[2]}:{m[3]}.{m[4]}"
    elif re.fullmatch(r"[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]", t):
        t = "0000:" + t
    elif t.startswith("0x"):
        raise ValueError(f"PCI address {text!r}: use 0000:03:00.0, not hex-prefixed numbers")
    if not PCI_RE.fullmatch(t):
        raise ValueError(
            f"invalid PCI address {text!r}: use DDDD:BB:SS.F (0000:03:00.0), BB:SS.F "
            "or a nodedev name (pci_0000_03_00_0)"
        )
    return t


def nodedev_name(address: str) -> str:
    """0000:03:00.0 -> pci_0000_03_00_0 (libvirt's node device name)."""
    return "pci_" + address.replace(":", "_").replace(".", "_")


class Hostdev(_Strict):
    """A host PCI device given to the guest (libvirt <hostdev mode='subsystem' type='pci'>)."""

    address: str
    # managed (libvirt managed='yes', virt-install's default): bound to vfio-pci at start
    # and given back to its host driver when the guest stops
    managed: bool = False

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        return normalize_pci(v)


def check_domain(dom: Domain) -> None:
    """Cross-field rules between these parts and the rest of the domain (ValueError)."""
    top = dom.effective_max_vcpus
    if dom.numa is not None:
        seen: dict[int, int] = {}
        for i, cell in enumerate(dom.numa.cells):
            for cpu in parse_cpuset(cell.cpus):
                if cpu >= top:
                    raise ValueError(
                        f"NUMA cell {i} has vCPU {cpu}, but the domain has {top} vCPUs "
                        f"(0-{top - 1}); fix the cell's cpus or raise max_vcpus"
                    )
                if cpu in seen:
                    raise ValueError(f"vCPU {cpu} is in NUMA cells {seen[cpu]} and {i}")
                seen[cpu] = i
        missing = sorted(set(range(top)) - set(seen))
        if missing:
            raise ValueError(
                f"vCPUs {format_cpuset(missing)} are in no NUMA cell; every vCPU "
                f"(0-{top - 1}) must be in exactly one cell"
            )
        total = sum(c.memory_mib for c in dom.numa.cells)
        if total != dom.memory_mib:
            raise ValueError(
                f"the NUMA cells have {total} MiB in all, but memory_mib is {dom.memory_mib}; "
                "make the cells' memory add up to memory_mib"
            )
    if dom.cputune is not None:
        for pin in dom.cputune.vcpupin:
            if pin.vcpu >= top:
                raise ValueError(
                    f"cputune.vcpupin pins vCPU {pin.vcpu}, but the domain has {top} vCPUs"
                )
    addresses = [h.address for h in dom.hostdevs]
    if len(addresses) != len(set(addresses)):
        raise ValueError(f"a host device can be given once (got {addresses})")
