"""Kernel-module dependency resolution without depmod or modprobe.

The dependency graph comes from ``modules.dep`` when the kernel tree has one
(installed kernels do), otherwise from each module's ``.modinfo`` ELF section
(``depends=``), which is what depmod itself reads; a Debian kernel package
unpacked with ``dpkg-deb -x`` ships no ``modules.dep`` because depmod runs in
its postinst.
"""

from __future__ import annotations

import gzip
import lzma
import shutil
import struct
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from virtkit.errors import HostError

KO_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")


def modname(path_or_name: str) -> str:
    """``kernel/drivers/char/hw_random/virtio-rng.ko.xz`` -> ``virtio_rng``."""
    base = path_or_name.rsplit("/", 1)[-1]
    for suffix in KO_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


@dataclass(frozen=True)
class ModuleTree:
    """What is known about one kernel's modules."""

    root: Path  # lib/modules/<version>
    paths: Mapping[str, str]  # module name -> path relative to root
    deps: Mapping[str, tuple[str, ...]]  # module name -> direct dependencies (names)
    builtin: frozenset[str]


def parse_modules_dep(text: str) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """Parse ``modules.dep`` lines ``path.ko: dep1.ko dep2.ko`` into paths and deps."""
    paths: dict[str, str] = {}
    deps: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        mod, _, rest = line.partition(":")
        name = modname(mod.strip())
        paths[name] = mod.strip()
        deps[name] = tuple(modname(d) for d in rest.split())
    return paths, deps


def parse_builtin(text: str) -> frozenset[str]:
    return frozenset(modname(line.strip()) for line in text.splitlines() if line.strip())


def read_ko(path: Path) -> bytes:
    """The module's ELF bytes, decompressed if the file is compressed."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        zstd = shutil.which("zstd")
        if zstd is None:
            raise HostError(f"{path.name} is zstd-compressed: install zstd (apt-get install zstd)")
        return subprocess.run([zstd, "-dc", str(path)], check=True, capture_output=True).stdout
    return data


def modinfo(elf: bytes) -> dict[str, str]:
    """The ``key=value`` pairs of an ELF64 little-endian module's ``.modinfo`` section."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise ValueError("not an ELF64 little-endian file")
    shoff = struct.unpack_from("<Q", elf, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)

    def section(i: int) -> tuple[int, int, int]:
        fields = struct.unpack_from("<IIQQQQ", elf, shoff + i * shentsize)
        return fields[0], fields[4], fields[5]

    _, stroff, _ = section(shstrndx)
    info: dict[str, str] = {}
    for i in range(shnum):
        name_off, off, size = section(i)
        end = elf.index(b"\0", stroff + name_off)
        if elf[stroff + name_off : end] != b".modinfo":
            continue
        for item in elf[off : off + size].split(b"\0"):
            key, sep, value = item.decode(errors="replace").partition("=")
            if sep and key not in info:
                info[key] = value
        break
    return info


def scan_tree(root: Path) -> ModuleTree:
    """Build a :class:`ModuleTree` for ``lib/modules/<version>``."""
    builtin_file = root / "modules.builtin"
    builtin = parse_builtin(builtin_file.read_text()) if builtin_file.exists() else frozenset()
    dep_file = root / "modules.dep"
    if dep_file.exists():
        paths, deps = parse_modules_dep(dep_file.read_text())
        return ModuleTree(root, paths, deps, builtin)
    paths = {}
    for p in sorted((root / "kernel").rglob("*.ko*")):
        if p.name.endswith(KO_SUFFIXES):
            paths[modname(p.name)] = str(p.relative_to(root))
    return ModuleTree(root, paths, _LazyDeps(root, paths), builtin)


class _LazyDeps(dict[str, tuple[str, ...]]):
    """Reads a module's ``depends=`` only when the closure asks for it."""

    def __init__(self, root: Path, paths: Mapping[str, str]) -> None:
        super().__init__()
        self._root = root
        self._paths = paths

    def __missing__(self, name: str) -> tuple[str, ...]:
        if name not in self._paths:
            raise KeyError(name)
        raw = modinfo(read_ko(self._root / self._paths[name])).get("depends", "")
        value = tuple(modname(d) for d in raw.split(",") if d)
        self[name] = value
        return value

    def __contains__(self, name: object) -> bool:
        return name in self._paths


def closure(
    wanted: Iterable[str], deps: Mapping[str, Iterable[str]], builtin: Iterable[str] = ()
) -> tuple[list[str], list[str]]:
    """Dependency closure of ``wanted`` in load order (dependencies first).

    Built-in modules are dropped silently; returns ``(order, missing)`` where
    ``missing`` lists wanted or needed modules that are neither loadable nor built in.
    """
    built = {modname(b) for b in builtin}
    order: list[str] = []
    done: set[str] = set()
    missing: list[str] = []
    active: set[str] = set()

    def visit(name: str) -> None:
        name = modname(name)
        if name in done or name in active:
            return
        if name in built:
            done.add(name)
            return
        if name not in deps:
            if name not in missing:
                missing.append(name)
            return
        active.add(name)
        for dep in deps[name]:
            visit(dep)
        active.discard(name)
        done.add(name)
        order.append(name)

    for w in wanted:
        visit(w)
    return order, missing
