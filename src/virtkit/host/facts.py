"""Facts about the host, read from /proc, /sys and /dev under an injectable root.

Every reader is pure (no writes, no subprocesses) and tolerant: a missing or
unreadable file yields an empty/"absent" answer, never an exception. Tests
build a fake tree in a temporary directory and pass ``HostRoot(tmp_path)``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

CGROUP_CONTROLLERS = ("cpu", "memory", "pids", "io", "cpuset")
# cgroup v1 names of the v2 controllers above (io was blkio in v1)
_V1_NAMES = {"cpu": "cpu", "memory": "memory", "pids": "pids", "io": "blkio", "cpuset": "cpuset"}
KVM_VENDOR_MODULES = ("kvm_intel", "kvm_amd")


@dataclass(frozen=True)
class HostRoot:
    """Where the host's /proc, /sys and /dev are (``/`` except in tests)."""

    root: Path = Path("/")

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def read_text(self, absolute: str) -> str | None:
        try:
            return self.path(absolute).read_text(errors="replace")
        except OSError:
            return None

    def listdir(self, absolute: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(absolute)))
        except OSError:
            return []


HOST = HostRoot()  # the real host


@dataclass(frozen=True)
class CpuInfo:
    vendor: str  # "GenuineIntel", "AuthenticAMD", "" if unknown
    model_name: str
    flags: frozenset[str]

    @property
    def virt_flag(self) -> str | None:
        """The virtualization flag: vmx (Intel VT-x), svm (AMD-V) or None."""
        return next((f for f in ("vmx", "svm") if f in self.flags), None)

    @property
    def under_hypervisor(self) -> bool:
        """True when this host is itself a virtual machine."""
        return "hypervisor" in self.flags


@dataclass(frozen=True)
class KvmModules:
    loaded: frozenset[str]  # every loaded module whose name is kvm or starts with kvm_

    @property
    def core(self) -> bool:
        return "kvm" in self.loaded

    @property
    def vendor(self) -> tuple[str, ...]:
        """Modules that drive the hardware: kvm_intel, kvm_amd, kvm_pvm, ..."""
        return tuple(sorted(m for m in self.loaded if m != "kvm"))

    @property
    def paravirtual(self) -> tuple[str, ...]:
        return tuple(m for m in self.vendor if m not in KVM_VENDOR_MODULES)


@dataclass(frozen=True)
class DeviceNode:
    path: str
    exists: bool
    readable: bool
    writable: bool

    @property
    def accessible(self) -> bool:
        return self.exists and self.readable and self.writable


class CgroupVersion(StrEnum):
    V2 = "v2"  # unified hierarchy only
    HYBRID = "hybrid"  # v1 controllers plus a (usually empty) v2 mount
    V1 = "v1"
    NONE = "none"


@dataclass(frozen=True)
class CgroupInfo:
    version: CgroupVersion
    v2_mount: str | None
    v2_controllers: frozenset[str]
    v1_controllers: frozenset[str]

    def has(self, controller: str) -> bool:
        """Is ``controller`` (v2 name: cpu, memory, pids, io, cpuset) usable?"""
        v1 = _V1_NAMES.get(controller, controller)
        return controller in self.v2_controllers or v1 in self.v1_controllers


@dataclass(frozen=True)
class IommuInfo:
    units: tuple[str, ...]  # /sys/class/iommu entries (dmar0, ivhd0, ...)
    groups: int  # /sys/kernel/iommu_groups count
    acpi_table: str | None  # "DMAR" (Intel) / "IVRS" (AMD) when the firmware has one
    cmdline: tuple[str, ...]  # intel_iommu=... / amd_iommu=... / iommu=... options

    @property
    def supported(self) -> bool:
        return bool(self.units) or self.acpi_table is not None

    @property
    def enabled(self) -> bool:
        return self.groups > 0


@dataclass(frozen=True)
class HostFacts:
    kernel_release: str
    cpu: CpuInfo
    online_cpus: int
    memory_mib: int
    kvm_modules: KvmModules
    kvm: DeviceNode
    tun: DeviceNode
    vhost_net: DeviceNode
    cgroups: CgroupInfo
    iommu: IommuInfo
    numa_nodes: int


def kernel_release(root: HostRoot) -> str:
    text = root.read_text("/proc/sys/kernel/osrelease")
    return text.strip() if text else os.uname().release


def cpu_info(root: HostRoot) -> CpuInfo:
    """Vendor, model name and flags of the first processor in /proc/cpuinfo."""
    fields: dict[str, str] = {}
    for line in (root.read_text("/proc/cpuinfo") or "").splitlines():
        if not line.strip():
            if fields:
                break  # first processor block is enough
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return CpuInfo(
        vendor=fields.get("vendor_id", ""),
        model_name=fields.get("model name", ""),
        flags=frozenset(fields.get("flags", "").split()),
    )


def parse_cpu_list(text: str) -> list[int]:
    """Parse a sysfs CPU list: 0-3,8 -> [0, 1, 2, 3, 8]; garbage parts are ignored."""
    out: list[int] = []
    for part in text.strip().split(","):
        lo, _, hi = part.partition("-")
        try:
            out.extend(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            continue
    return out


def online_cpus(root: HostRoot) -> int:
    text = root.read_text("/sys/devices/system/cpu/online")
    if text and (cpus := parse_cpu_list(text)):
        return len(cpus)
    cpuinfo = root.read_text("/proc/cpuinfo") or ""
    return sum(1 for line in cpuinfo.splitlines() if re.match(r"processor\s*:", line))


def memory_mib(root: HostRoot) -> int:
    for line in (root.read_text("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            try:
                return int(line.split()[1]) // 1024
            except (IndexError, ValueError):
                return 0
    return 0


def kvm_modules(root: HostRoot) -> KvmModules:
    """KVM modules from /proc/modules and /sys/module (built-ins only show there)."""
    names = {line.split()[0] for line in (root.read_text("/proc/modules") or "").splitlines()
             if line.strip()}  # fmt: skip
    names.update(root.listdir("/sys/module"))
    return KvmModules(frozenset(n for n in names if n == "kvm" or n.startswith("kvm_")))


def device_node(root: HostRoot, absolute: str) -> DeviceNode:
    p = root.path(absolute)
    exists = p.exists()
    return DeviceNode(
        path=absolute,
        exists=exists,
        readable=exists and os.access(p, os.R_OK),
        writable=exists and os.access(p, os.W_OK),
    )


def cgroups(root: HostRoot) -> CgroupInfo:
    v2_mount: str | None = None
    v1: set[str] = set()
    for line in (root.read_text("/proc/mounts") or "").splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        if parts[2] == "cgroup2" and v2_mount is None:
            v2_mount = parts[1]
        elif parts[2] == "cgroup":
            v1.update(o for o in parts[3].split(",") if o in _V1_NAMES.values())
    if v2_mount is None and not v1 and root.path("/sys/fs/cgroup/cgroup.controllers").exists():
        v2_mount = "/sys/fs/cgroup"  # no /proc/mounts, but the unified hierarchy is there
    v2: frozenset[str] = frozenset()
    if v2_mount is not None:
        v2 = frozenset((root.read_text(f"{v2_mount}/cgroup.controllers") or "").split())
    if v1:
        version = CgroupVersion.HYBRID if v2_mount else CgroupVersion.V1
    else:
        version = CgroupVersion.V2 if v2_mount else CgroupVersion.NONE
    return CgroupInfo(version, v2_mount, v2, frozenset(v1))


def iommu(root: HostRoot) -> IommuInfo:
    table = next((t for t in ("DMAR", "IVRS")
                  if root.path(f"/sys/firmware/acpi/tables/{t}").exists()), None)  # fmt: skip
    opts = tuple(o for o in (root.read_text("/proc/cmdline") or "").split()
                 if o.split("=", 1)[0] in ("intel_iommu", "amd_iommu", "iommu"))  # fmt: skip
    return IommuInfo(
        units=tuple(root.listdir("/sys/class/iommu")),
        groups=len(root.listdir("/sys/kernel/iommu_groups")),
        acpi_table=table,
        cmdline=opts,
    )


def numa_nodes(root: HostRoot) -> int:
    """Number of NUMA nodes (1 when sysfs does not say: every host has one)."""
    nodes = [n for n in root.listdir("/sys/devices/system/node") if re.fullmatch(r"node\d+", n)]
    return len(nodes) or 1


def gather(root: HostRoot) -> HostFacts:
    return HostFacts(
        kernel_release=kernel_release(root),
        cpu=cpu_info(root),
        online_cpus=online_cpus(root),
        memory_mib=memory_mib(root),
        kvm_modules=kvm_modules(root),
        kvm=device_node(root, "/dev/kvm"),
        tun=device_node(root, "/dev/net/tun"),
        vhost_net=device_node(root, "/dev/vhost-net"),
        cgroups=cgroups(root),
        iommu=iommu(root),
        numa_nodes=numa_nodes(root),
    )


def tsc_khz(root: HostRoot) -> int | None:
    """The host's TSC frequency in kHz: sysfs where the kernel exports it, else the rated
    speed in the model name (Intel's ``@ 2.70GHz``), else /proc/cpuinfo's ``cpu MHz``."""
    text = root.read_text("/sys/devices/system/cpu/cpu0/tsc_freq_khz")
    if text and text.strip().isdigit():
        return int(text.strip())
    info = cpu_info(root)
    if "constant_tsc" not in info.flags and "tsc" not in info.flags:
        return None
    m = re.search(r"@\s*(\d+(?:\.\d+)?)\s*GHz", info.model_name)
    if m:
        return round(float(m.group(1)) * 1_000_000)
    for line in (root.read_text("/proc/cpuinfo") or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "cpu MHz":
            try:
                return round(float(value) * 1000)
            except ValueError:
                return None
    return None
