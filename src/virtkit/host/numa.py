"""Host CPU and NUMA topology from sysfs (/sys/devices/system/{node,cpu}), read-only.

Readers are tolerant like facts.py: a host without /sys/devices/system/node (no
CONFIG_NUMA) is one cell holding every online CPU and all of MemTotal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from virtkit.host.facts import HostRoot, cpu_info, memory_mib, parse_cpu_list

NODE_DIR = "/sys/devices/system/node"
CPU_DIR = "/sys/devices/system/cpu"


@dataclass(frozen=True)
class HostCpu:
    id: int
    socket_id: int
    die_id: int
    core_id: int
    siblings: str  # thread siblings, sysfs list syntax ("0,2")


@dataclass(frozen=True)
class HostCell:
    id: int
    memory_kib: int
    free_kib: int
    cpus: list[HostCpu]
    distances: dict[int, int] = field(default_factory=dict)  # node id -> relative distance
    hugepages: dict[int, int] = field(default_factory=dict)  # page size KiB -> count


@dataclass(frozen=True)
class HostTopology:
    cells: list[HostCell]
    online_cpus: list[int]
    sockets: int
    cores_per_socket: int
    threads_per_core: int
    cpu_mhz: int
    model_name: str
    memory_kib: int

    @property
    def node_ids(self) -> list[int]:
        return [c.id for c in self.cells]


def _int(text: str | None, default: int = 0) -> int:
    try:
        return int((text or "").strip())
    except ValueError:
        return default


def _cpu(root: HostRoot, n: int) -> HostCpu:
    base = f"{CPU_DIR}/cpu{n}/topology"
    return HostCpu(
        id=n,
        socket_id=_int(root.read_text(f"{base}/physical_package_id")),
        die_id=_int(root.read_text(f"{base}/die_id")),
        core_id=_int(root.read_text(f"{base}/core_id"), n),
        siblings=(root.read_text(f"{base}/thread_siblings_list") or str(n)).strip(),
    )


def _meminfo_kib(text: str | None, key: str) -> int:
    m = re.search(rf"{key}:\s+(\d+)\s*kB", text or "")
    return int(m.group(1)) if m else 0


def online(root: HostRoot) -> list[int]:
    cpus = parse_cpu_list(root.read_text(f"{CPU_DIR}/online") or "")
    if cpus:
        return cpus
    text = root.read_text("/proc/cpuinfo") or ""
    return list(range(sum(1 for line in text.splitlines() if re.match(r"processor\s*:", line))))


def node_ids(root: HostRoot) -> list[int]:
    found = (re.fullmatch(r"node(\d+)", n) for n in root.listdir(NODE_DIR))
    return sorted(int(m.group(1)) for m in found if m)


def cells(root: HostRoot) -> list[HostCell]:
    on = set(online(root))
    ids = node_ids(root)
    if not ids:
        total = memory_mib(root) * 1024
        return [HostCell(0, total, total, [_cpu(root, n) for n in sorted(on)], {0: 10})]
    out = []
    for nid in ids:
        base = f"{NODE_DIR}/node{nid}"
        meminfo = root.read_text(f"{base}/meminfo")
        cpus = [n for n in parse_cpu_list(root.read_text(f"{base}/cpulist") or "") if n in on]
        dist = [_int(d) for d in (root.read_text(f"{base}/distance") or "").split()]
        huge: dict[int, int] = {}
        for entry in root.listdir(f"{base}/hugepages"):
            if m := re.fullmatch(r"hugepages-(\d+)kB", entry):
                huge[int(m.group(1))] = _int(
                    root.read_text(f"{base}/hugepages/{entry}/nr_hugepages")
                )
        out.append(
            HostCell(
                id=nid,
                memory_kib=_meminfo_kib(meminfo, "MemTotal"),
                free_kib=_meminfo_kib(meminfo, "MemFree"),
                cpus=[_cpu(root, n) for n in cpus],
                distances=dict(zip(ids, dist, strict=False)),
                hugepages=huge,
            )
        )
    return out


def _mhz(root: HostRoot) -> int:
    m = re.search(r"cpu MHz\s*:\s*([\d.]+)", root.read_text("/proc/cpuinfo") or "")
    return int(float(m.group(1))) if m else 0


def topology(root: HostRoot) -> HostTopology:
    """Cells, CPUs and virsh nodeinfo's socket/core/thread counts."""
    cs = cells(root)
    cpus = [c for cell in cs for c in cell.cpus]
    sockets = len({c.socket_id for c in cpus}) or 1
    cores = len({(c.socket_id, c.die_id, c.core_id) for c in cpus}) or 1
    threads = max(1, len(cpus) // cores)
    return HostTopology(
        cells=cs,
        online_cpus=sorted(c.id for c in cpus),
        sockets=sockets,
        cores_per_socket=max(1, cores // sockets),
        threads_per_core=threads,
        cpu_mhz=_mhz(root),
        model_name=cpu_info(root).model_name,
        memory_kib=memory_mib(root) * 1024 or sum(c.memory_kib for c in cs),
    )
