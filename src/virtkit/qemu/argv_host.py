"""The host-feature parts of the QEMU command line (pure, like argv.py, which calls these):
guest NUMA nodes with their memory backends and host binding, KSM opt-out, vfio-pci.

- ``numa.cells``: one ``-object memory-backend-ram,id=ramN,size=..M`` and one
  ``-numa node,nodeid=N,cpus=..,memdev=ramN`` per cell (cpus repeated once per range).
- ``numatune``: ``host-nodes=..,policy=bind|preferred|interleave`` on every backend;
  without guest cells the whole RAM is one backend, ``-machine memory-backend=ram0``.
- ``mem_merge: false``: ``-machine mem-merge=off`` (QEMU does not madvise MADV_MERGEABLE).
- ``hostdevs``: ``-device vfio-pci,host=DDDD:BB:SS.F,id=hostdevN``.
"""

from __future__ import annotations

from virtkit.model.domain import Domain
from virtkit.model.hostfeat import NumaMode, NumaTune, parse_cpuset, ranges

POLICY = {NumaMode.STRICT: "bind", NumaMode.PREFERRED: "preferred",
          NumaMode.INTERLEAVE: "interleave"}  # fmt: skip
WHOLE_RAM = "ram0"


def machine_props(dom: Domain) -> dict[str, str | bool]:
    """Extra -machine properties: mem-merge and (numatune without cells) memory-backend."""
    props: dict[str, str | bool] = {}
    if not dom.mem_merge:
        props["mem_merge"] = False
    if dom.numatune is not None and dom.numa is None:
        props["memory_backend"] = WHOLE_RAM
    return props


def _binding(tune: NumaTune | None) -> str:
    if tune is None:
        return ""
    nodes = "".join(f",host-nodes={r}" for r in ranges(tune.nodes))
    return f"{nodes},policy={POLICY[tune.mode]}"


def _backend(backend_id: str, size_mib: int, tune: NumaTune | None) -> list[str]:
    return ["-object", f"memory-backend-ram,id={backend_id},size={size_mib}M{_binding(tune)}"]


def numa_args(dom: Domain) -> list[str]:
    """Memory backends and -numa nodes (empty for a domain without NUMA settings)."""
    if dom.numa is None:
        if dom.numatune is None:
            return []
        return _backend(WHOLE_RAM, dom.memory_mib, dom.numatune)
    out: list[str] = []
    for i, cell in enumerate(dom.numa.cells):
        out += _backend(f"ram{i}", cell.memory_mib, dom.numatune)
        cpus = "".join(f",cpus={r}" for r in ranges(parse_cpuset(cell.cpus)))
        out += ["-numa", f"node,nodeid={i}{cpus},memdev=ram{i}"]
    return out


def hostdev_id(i: int) -> str:
    return f"hostdev{i}"


def hostdev_args(dom: Domain) -> list[str]:
    out: list[str] = []
    for i, dev in enumerate(dom.hostdevs):
        out += ["-device", f"vfio-pci,host={dev.address},id={hostdev_id(i)}"]
    return out
