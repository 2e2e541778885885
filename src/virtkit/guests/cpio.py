"""A minimal writer for the "newc" cpio format the Linux kernel unpacks as initramfs.

Only what an initramfs needs: directories, regular files, symlinks and device
nodes, all owned by root, with a fixed mtime so builds are reproducible.
"""

from __future__ import annotations

import gzip
import stat
from pathlib import Path
from typing import Protocol

MAGIC = b"070701"
TRAILER = "TRAILER!!!"


class Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


class CpioWriter:
    """Write newc entries to a binary stream; call :meth:`close` to add the trailer."""

    def __init__(self, out: Sink, mtime: int = 0) -> None:
        self._out = out
        self._mtime = mtime
        self._ino = 1
        self._seen: set[str] = set()

    def _entry(
        self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
    ) -> None:
        name = name.strip("/") or "."
        if name in self._seen and name != TRAILER:
            raise ValueError(f"duplicate cpio entry {name!r}")
        self._seen.add(name)
        raw_name = name.encode() + b"\0"
        fields = (
            self._ino if name != TRAILER else 0,
            mode,
            0,  # uid
            0,  # gid
            2 if stat.S_ISDIR(mode) else 1,  # nlink
            self._mtime,
            len(data),
            0,  # dev major
            0,  # dev minor
            rdev[0],
            rdev[1],
            len(raw_name),
            0,  # check
        )
        self._ino += 1
        header = MAGIC + b"".join(b"%08X" % f for f in fields)
        self._out.write(header + raw_name + _pad4(len(header) + len(raw_name)))
        self._out.write(data + _pad4(len(data)))

    def add_dir(self, name: str, perm: int = 0o755) -> None:
        if name.strip("/") in self._seen:
            return
        self._entry(name, stat.S_IFDIR | perm)

    def add_file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | perm, data)

    def add_symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def add_chardev(self, name: str, major: int, minor: int, perm: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | perm, rdev=(major, minor))

    def add_dirs_for(self, name: str) -> None:
        """Add every missing parent directory of ``name``."""
        parts = name.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            if parent not in self._seen:
                self.add_dir(parent)

    def close(self) -> None:
        self._entry(TRAILER, 0)


def write_gzip_cpio(path: Path, entries: list[tuple[str, bytes | str | None, int]]) -> None:
    """Write a gzipped newc archive from ``(name, content, perm)`` triples.

    ``content`` is bytes for a file, a str for a symlink target, None for a directory.
    Parent directories are added automatically.
    """
    with path.open("wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz:
        w = CpioWriter(gz)
        w.add_dir("dev")
        w.add_chardev("dev/console", 5, 1)
        for name, content, perm in entries:
            w.add_dirs_for(name)
            if content is None:
                w.add_dir(name, perm)
            elif isinstance(content, str):
                w.add_symlink(name, content)
            else:
                w.add_file(name, content, perm)
        w.close()
