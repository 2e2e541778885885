"""One cgroup per running domain, ``virtkit.slice/<scope>.scope``, with memory and pids limits.

cgroup v2 first: ``<cgroup2 mount>/virtkit.slice/<scope>.scope`` with ``memory.max``
(guest memory + QEMU's overhead) and ``pids.max``. A controller that the v2 hierarchy
does not offer is taken from cgroup v1 when the host mounts it there (the "hybrid"
layout of older systemd hosts, and of this project's CI machine): the domain then also
gets ``<v1 mount>/<daemon's own v1 cgroup>/virtkit.slice/<scope>.scope`` with
``memory.limit_in_bytes`` / ``pids.max``, like libvirt does on v1 hosts. What could not
be limited is reported (start warning, dominfo, daemon log). Mount table and the
daemon's own cgroup are injectable for tests.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

SLICE = "virtkit.slice"
OVERHEAD_MIB = 512  # QEMU itself: TCG translation cache, device state, I/O buffers
PIDS_MAX = 1024  # vCPU threads + QEMU's worker pool (up to 64) + I/O threads
WANTED = ("memory", "pids")
V2_FILE = {"memory": "memory.max", "pids": "pids.max"}
V1_FILE = {"memory": "memory.limit_in_bytes", "pids": "pids.max"}


@dataclass(frozen=True)
class Layout:
    """Where the hierarchies are: the cgroup2 mount, and per v1 controller the directory
    new cgroups go under (its mount + the daemon's own cgroup in it)."""

    unified: Path | None = None
    v1: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class CgroupPlan:
    path: str  # the domain's main cgroup directory ('' = none)
    limits: dict[str, str]  # control file -> value actually written
    note: str  # '' or why limits are missing
    dirs: tuple[str, ...] = ()  # every directory made (v2 scope + v1 scopes)

    @property
    def procs(self) -> tuple[str, ...]:
        """The cgroup.procs files QEMU's starter writes its pid into."""
        return tuple(f"{d}/cgroup.procs" for d in self.dirs)


def _mounts(mountinfo: Path) -> list[tuple[str, Path, set[str]]]:
    """(fstype, mount point, super options) of the cgroup mounts."""
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        left, _, right = line.partition(" - ")
        parts = right.split()
        if len(parts) >= 3 and parts[0] in ("cgroup", "cgroup2"):
            out.append((parts[0], Path(left.split()[4]), set(parts[2].split(","))))
    return out


def cgroup2_mount(mountinfo: Path = Path("/proc/self/mountinfo")) -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or .../unified)."""
    return next((m for kind, m, _ in _mounts(mountinfo) if kind == "cgroup2"), None)


def _own_v1_paths(self_cgroup: Path) -> dict[str, str]:
    """controller -> this process's cgroup path in it, from /proc/self/cgroup."""
    out: dict[str, str] = {}
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(","):
            if c:
                out[c] = path
    return out


def detect(mountinfo: Path = Path("/proc/self/mountinfo"),
           self_cgroup: Path = Path("/proc/self/cgroup")) -> Layout:  # fmt: skip
    own = _own_v1_paths(self_cgroup)
    v1: dict[str, Path] = {}
    for kind, mount, opts in _mounts(mountinfo):
        if kind != "cgroup":
            continue
        for c in WANTED:
            if c in opts and c not in v1:
                v1[c] = mount / own.get(c, "/").lstrip("/")
    return Layout(cgroup2_mount(mountinfo), v1)


def memory_limit_bytes(memory_mib: int) -> int:
    return (memory_mib + OVERHEAD_MIB) * 1024 * 1024


def _enable(parent: Path, controllers: list[str]) -> None:
    if controllers:
        with contextlib.suppress(OSError):
            (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in controllers))


def domain_cgroup(root: Path | None, name: str) -> Path | None:
    return None if root is None else root / SLICE / f"{name}.scope"


def _scope(parent: Path, name: str) -> Path:
    scope = parent / SLICE / f"{name}.scope"
    (parent / SLICE).mkdir(exist_ok=True)
    scope.mkdir(exist_ok=True)
    return scope


def _v2(root: Path, name: str, values: dict[str, str],
        limits: dict[str, str]) -> tuple[str, list[str]]:  # fmt: skip
    """Make the v2 scope; write what its controllers allow. (path, controllers limited)"""
    scope = _scope(root, name)
    try:
        available = (root / "cgroup.controllers").read_text().split()
    except OSError:
        available = []
    have = [c for c in WANTED if c in available]
    _enable(root, have)
    _enable(root / SLICE, have)
    done = []
    for c in have:
        with contextlib.suppress(OSError):
            (scope / V2_FILE[c]).write_text(values[c])
            limits[V2_FILE[c]] = values[c]
            done.append(c)
    return str(scope), done


def prepare(layout: Layout | Path | None, name: str, memory_mib: int) -> CgroupPlan:
    """Create the domain's cgroup(s) and write its limits (what could be written)."""
    if not isinstance(layout, Layout):
        layout = Layout(layout)
    values = {"memory": str(memory_limit_bytes(memory_mib)), "pids": str(PIDS_MAX)}
    limits: dict[str, str] = {}
    dirs: list[str] = []
    problems: list[str] = []
    done: list[str] = []
    if layout.unified is not None:
        try:
            path, done = _v2(layout.unified, name, values, limits)
            dirs.append(path)
        except OSError as exc:
            problems.append(f"cgroup v2 at {layout.unified} is not writable ({exc.strerror})")
    for c in WANTED:
        parent = layout.v1.get(c)
        if c in done or parent is None:
            continue
        try:
            scope = _scope(parent, name)
            (scope / V1_FILE[c]).write_text(values[c])
        except OSError as exc:
            problems.append(f"cgroup v1 {c} at {parent}: {exc.strerror}")
            continue
        limits[f"{c}:{V1_FILE[c]}"] = values[c]
        dirs.append(str(scope))
        done.append(c)
    missing = [c for c in WANTED if c not in done]
    note = ""
    if missing:
        where = "; ".join(problems) or (
            "no cgroup hierarchy is mounted" if layout.unified is None and not layout.v1
            else "neither cgroup v2 nor v1 offers the controller(s) here"
        )  # fmt: skip
        note = f"{where}: no {'/'.join(missing)} limit"
    return CgroupPlan(dirs[0] if dirs else "", limits, note, tuple(dirs))


def remove(*paths: str) -> None:
    """Remove a domain's cgroups once its processes are gone (best effort)."""
    for path in paths:
        if path:
            with contextlib.suppress(OSError):
                os.rmdir(path)
