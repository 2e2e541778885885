"""Disk images with ``qemu-img``: create (never clobber), inspect, roll back.

``qemu-img`` is always told the format (``-f``): probing a guest-writable image
lets a guest turn a raw disk into a qcow2 pointing at any host file.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import stat
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from virtkit.errors import ConfigError, HostError, NotFoundError
from virtkit.storage.sizes import MAX_SIZE_BYTES, parse_size

__all__ = ["FORMATS", "ImageInfo", "create_disk", "image_info", "parse_size", "remove_created"]

log = logging.getLogger("virtkit.storage")

FORMATS = ("qcow2", "raw")
TIMEOUT_S = 600.0  # full preallocation of a big raw disk takes a while


@dataclass(frozen=True)
class ImageInfo:
    virtual_size: int  # bytes the guest sees
    actual_size: int  # bytes allocated on the host
    format: str
    backing: str | None  # backing file name (qcow2 overlays)


def qemu_img() -> str:
    exe = shutil.which("qemu-img")
    if exe is None:
        raise HostError(
            "qemu-img not found; install it (Debian/Ubuntu: apt install qemu-utils, "
            "Fedora/RHEL: dnf install qemu-img)"
        )
    return exe


def _run(argv: list[str], what: str) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise HostError(f"{what}: qemu-img did not finish in {TIMEOUT_S:.0f} s") from exc
    if r.returncode != 0:
        msg = (r.stderr or r.stdout).strip()
        raise HostError(f"{what}: qemu-img failed: {msg}", argv=argv)
    return r.stdout


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ConfigError(f"disk format {fmt!r} is not supported; use one of {', '.join(FORMATS)}")
    return fmt


def _existing(path: Path) -> bool:
    """True if ``path`` is an existing regular file to reuse; refuse anything else."""
    try:
        st = path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    if stat.S_ISLNK(st.st_mode):
        raise ConfigError(f"disk path {path} is a symbolic link; give the path of the image itself")
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"disk path {path} is a directory; give a file name inside it")
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"disk path {path} exists and is not a regular file; pick another path")
    return True


def _prepare_parent(path: Path) -> None:
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise ConfigError(
            f"cannot create disk {path}: {parent} is not a directory; pick another path"
        ) from exc
    except OSError as exc:
        raise ConfigError(
            f"cannot create disk {path}: directory {parent} cannot be created "
            f"({exc.strerror}); pick a path in a writable directory"
        ) from exc
    if not parent.is_dir():
        raise ConfigError(f"cannot create disk {path}: {parent} is not a directory; pick another")


def create_disk(
    path: Path, size_bytes: int, fmt: str = "qcow2", *, sparse: bool = True, mode: int = 0o600
) -> bool:
    """Create a ``fmt`` image of ``size_bytes`` at ``path``; False if an image was there already.

    An existing regular file is reused untouched; a symlink, a directory or a
    device is refused (ConfigError). The parent directory is created if missing
    (like virt-install creating its pool directory). Raises ConfigError when
    the directory cannot be written, HostError when qemu-img is missing or fails.
    """
    _check_format(fmt)
    if not 0 < size_bytes <= MAX_SIZE_BYTES:
        raise ConfigError(f"disk size {size_bytes} bytes is out of range (1 byte .. 64 TiB)")
    if _existing(path):
        return False
    _prepare_parent(path)
    try:  # O_EXCL: never clobber a file that appeared meanwhile; the errno is precise
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:  # created meanwhile: same rules as an existing file
        _existing(path)
        return False
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR):
            raise ConfigError(
                f"cannot create disk {path}: directory {path.parent} is not writable "
                f"({exc.strerror}); pick a path in a writable directory"
            ) from exc
        raise HostError(f"cannot create disk {path}: {exc.strerror}") from exc
    try:
        if fmt == "raw" and sparse:
            os.ftruncate(fd, size_bytes)
            os.fsync(fd)
            os.close(fd)
        else:
            os.close(fd)
            argv = [qemu_img(), "create", "-q", "-f", fmt]
            if not sparse:
                argv += ["-o", "preallocation=full"]
            _run([*argv, str(path), str(size_bytes)], f"creating disk {path}")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    log.info("created %s disk %s (%d bytes)", fmt, path, size_bytes)
    return True


def image_info(path: Path, fmt: str) -> ImageInfo:
    """``qemu-img info`` of ``path`` read as ``fmt`` (never probed); works on images in use."""
    _check_format(fmt)
    if not path.exists():
        raise NotFoundError(f"disk image {path} does not exist")
    argv = [qemu_img(), "info", "--output=json", "--force-share", "-f", fmt, str(path)]
    out = _run(argv, f"reading {path}")
    try:
        data = json.loads(out)
        return ImageInfo(
            virtual_size=int(data["virtual-size"]),
            actual_size=int(data.get("actual-size", 0)),
            format=str(data["format"]),
            backing=data.get("full-backing-filename") or data.get("backing-filename"),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise HostError(f"qemu-img info {path}: unexpected output ({exc})") from exc


def remove_created(paths: Iterable[Path | str]) -> list[Path]:
    """Rollback: delete files this job created. Returns the ones that could not be removed."""
    failed: list[Path] = []
    for p in paths:
        path = Path(p)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.error("cannot remove %s during rollback: %s", path, exc.strerror)
            failed.append(path)
    return failed
