"""Moving a volume's bytes in and out: chunked, bounded memory, crash-safe uploads.

An upload writes a hidden temporary file in the pool directory (``O_EXCL``,
``O_NOFOLLOW``), chunk by chunk in order; zero blocks, and ranges the client
skipped (it does not send all-zero chunks), become holes. ``commit``
fsyncs it and renames it over the volume, so a reader sees the old or the new
content, never half. ``abort`` (or a daemon restart) leaves the volume untouched.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path

from virtkit.errors import ConfigError, NotFoundError
from virtkit.fsutil import fsync_dir
from virtkit.storage.sizes import MAX_SIZE_BYTES
from virtkit.storage.volumes import TEMP_PREFIX, _open_new, pool_dir, volume_path

MAX_READ_BYTES = 8 << 20
HOLE_BLOCK = 64 << 10
_ZEROS = bytes(HOLE_BLOCK)


def _pwrite_all(fd: int, data: memoryview, pos: int) -> None:
    while data:
        n = os.pwrite(fd, data, pos)
        data, pos = data[n:], pos + n


class Upload:
    def __init__(self, target: Path, name: str, size: int) -> None:
        if not 0 <= size <= MAX_SIZE_BYTES:
            raise ConfigError(f"upload size {size} bytes is out of range (0 .. 64 TiB)")
        self.path = volume_path(target, name)  # the volume must exist (like virsh)
        self.name = name
        self.size = size
        self.id = uuid.uuid4().hex
        self.tmp = f"{TEMP_PREFIX}upload-{self.id[:16]}"
        self.fd = _open_new(self.path.parent, self.tmp)
        self.received = 0
        self.touched = time.monotonic()

    @property
    def tmp_path(self) -> Path:
        return self.path.parent / self.tmp

    def write(self, offset: int, data: bytes) -> int:
        """Write ``data`` at ``offset``: chunks come in order; skipped ranges are zeros."""
        if offset < self.received:
            raise ConfigError(
                f"upload chunk at offset {offset}, after {self.received}; "
                "chunks must arrive in order (start the upload again)"
            )
        if offset + len(data) > self.size:
            raise ConfigError(f"upload is longer than the announced {self.size} bytes")
        view = memoryview(data)
        for i in range(0, len(data), HOLE_BLOCK):  # zero blocks are left as holes
            block = view[i : i + HOLE_BLOCK]
            if block.tobytes() != _ZEROS[: len(block)]:
                _pwrite_all(self.fd, block, offset + i)
        self.received = offset + len(data)
        self.touched = time.monotonic()
        return self.received

    def finish(self) -> Path:
        """Make the temporary file complete and durable; the caller validates, then replaces."""
        os.ftruncate(self.fd, self.size)
        os.fsync(self.fd)
        return self.tmp_path

    def replace(self) -> None:
        with pool_dir(self.path.parent) as dfd:
            os.replace(self.tmp, self.name, src_dir_fd=dfd, dst_dir_fd=dfd)
        fsync_dir(self.path.parent)
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def abort(self) -> None:
        self.close()
        with pool_dir(self.path.parent) as dfd, contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp, dir_fd=dfd)


def read_chunk(target: Path, name: str, offset: int, length: int) -> bytes:
    """Up to ``length`` bytes of volume ``name`` from ``offset`` (b"" at the end)."""
    if offset < 0 or not 0 < length <= MAX_READ_BYTES:
        raise ConfigError(f"read of {length} bytes at {offset}: length must be 1..8 MiB")
    path = volume_path(target, name)
    with pool_dir(path.parent) as dfd:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dfd)
        except FileNotFoundError:
            raise NotFoundError(f"volume {name!r} vanished from {path.parent}") from None
    try:
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)


def remove_stale_temps(target: Path) -> list[str]:
    """Temporary files left by a daemon that died mid-upload/clone (none can be live)."""
    removed = []
    try:
        with pool_dir(target) as dfd:
            for n in os.listdir(dfd):
                if n.startswith(TEMP_PREFIX):
                    os.unlink(n, dir_fd=dfd)
                    removed.append(n)
    except (OSError, NotFoundError):
        pass
    return removed
