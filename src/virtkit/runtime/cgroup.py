"""One cgroup (v2) per running domain: ``<cgroup2 mount>/virtkit.slice/<name>.scope``.

The limits are ``memory.max`` (guest memory + QEMU's overhead) and ``pids.max``.
They are written only when the hierarchy offers the controllers; on hosts without
a writable cgroup2 (or with the memory/pids controllers still on cgroup v1, the
"hybrid" layout) the domain runs without them and the reason is reported (start
warning, dominfo, daemon log). The mount table is injectable for tests.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

SLICE = "virtkit.slice"
OVERHEAD_MIB = 512  # QEMU itself: TCG translation cache, device state, I/O buffers
PIDS_MAX = 1024  # vCPU threads + QEMU's worker pool (up to 64) + I/O threads
WANTED = ("memory", "pids")


@dataclass(frozen=True)
class CgroupPlan:
    path: str  # the domain's cgroup directory ('' = none)
    limits: dict[str, str]  # control file -> value actually written
    note: str  # '' or why limits are missing


def cgroup2_mount(mountinfo: Path = Path("/proc/self/mountinfo")) -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or .../unified)."""
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] == "cgroup2":
            return Path(left.split()[4])
    return None


def memory_limit_bytes(memory_mib: int) -> int:
    return (memory_mib + OVERHEAD_MIB) * 1024 * 1024


def _enable(parent: Path, controllers: list[str]) -> None:
    if controllers:
        with contextlib.suppress(OSError):
            (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in controllers))


def domain_cgroup(root: Path | None, name: str) -> Path | None:
    return None if root is None else root / SLICE / f"{name}.scope"


def prepare(root: Path | None, name: str, memory_mib: int) -> CgroupPlan:
    """Create the domain's cgroup and write its limits (what could be written)."""
    if root is None:
        return CgroupPlan("", {}, "no cgroup v2 hierarchy is mounted: no memory/pids limits")
    slice_dir = root / SLICE
    try:
        slice_dir.mkdir(exist_ok=True)
        scope = slice_dir / f"{name}.scope"
        scope.mkdir(exist_ok=True)
    except OSError as exc:
        return CgroupPlan("", {}, f"cgroup v2 at {root} is not writable ({exc.strerror}): "
                                  "no memory/pids limits")  # fmt: skip
    try:
        available = (root / "cgroup.controllers").read_text().split()
    except OSError:
        available = []
    have = [c for c in WANTED if c in available]
    _enable(root, have)
    _enable(slice_dir, have)
    limits: dict[str, str] = {}
    wanted = {"memory.max": str(memory_limit_bytes(memory_mib)), "pids.max": str(PIDS_MAX)}
    for key, value in wanted.items():
        if key.split(".")[0] not in have:
            continue
        try:
            (scope / key).write_text(value)
            limits[key] = value
        except OSError:
            pass
    missing = [c for c in WANTED if f"{c}.max" not in limits]
    note = ""
    if missing:
        note = (
            f"the {'/'.join(missing)} controller(s) are not available in cgroup v2 at {root} "
            "(on v1 or not delegated): no " + "/".join(f"{c}.max" for c in missing) + " limit"
        )
    return CgroupPlan(str(scope), limits, note)


def remove(path: str) -> None:
    """Remove a domain's cgroup once its processes are gone (best effort)."""
    if path:
        with contextlib.suppress(OSError):
            os.rmdir(path)
