"""Volumes of a directory pool: safe names, safe paths, and qemu-img with explicit formats.

A volume is a regular file directly inside its pool's target directory. Names are
one path component; files are looked up with ``lstat`` relative to an ``O_DIRECTORY``
descriptor of the pool, and a symlink (or anything but a regular file) is refused,
so a volume can never resolve outside its pool.

Formats are never probed: every qemu-img call gets ``-f``. The format of a volume
is recorded when virtkit creates it; for files found at refresh it is detected once
(see :func:`detect_format`) and recorded from then on.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from virtkit.errors import ConfigError, HostError, NotFoundError
from virtkit.storage.disks import FORMATS, _run, image_info, qemu_img
from virtkit.storage.sizes import MAX_SIZE_BYTES

QCOW2_MAGIC = b"QFI\xfb"
MAX_NAME_BYTES = 255
TEMP_PREFIX = ".virtkit-"  # temporary files (uploads, clones); hidden from volume lists


@dataclass(frozen=True)
class VolStat:
    capacity: int  # bytes the guest sees
    allocation: int  # bytes allocated on the host
    file_size: int  # st_size: what vol-download transfers
    backing: str | None
    backing_format: str | None


def check_volume_name(name: str) -> str:
    """A volume name is one file name: no '/', NUL, control characters, no leading dot."""
    shown = repr(name[:60])
    if not name or name in (".", ".."):
        raise ConfigError(f"invalid volume name {shown}: give a file name such as vm1.qcow2")
    if "/" in name or "\0" in name:
        raise ConfigError(
            f"invalid volume name {shown}: it must be one file name inside the pool, "
            "without '/' or NUL"
        )
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise ConfigError(f"invalid volume name {shown}: control characters are not allowed")
    if name.startswith("."):
        raise ConfigError(
            f"invalid volume name {shown}: names starting with '.' are reserved for "
            "virtkit's temporary files"
        )
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise ConfigError(f"invalid volume name {shown}...: longer than {MAX_NAME_BYTES} bytes")
    return name


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ConfigError(
            f"volume format {fmt!r} is not supported; use one of {', '.join(FORMATS)}"
        )
    return fmt


def check_capacity(size: int, what: str = "volume size") -> int:
    if not 0 < size <= MAX_SIZE_BYTES:
        raise ConfigError(f"{what} {size} bytes is out of range (1 byte .. 64 TiB)")
    return size


@contextlib.contextmanager
def pool_dir(target: Path) -> Iterator[int]:
    """An O_DIRECTORY descriptor of the pool target (the target itself may be a symlink)."""
    try:
        fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        raise NotFoundError(
            f"pool directory {target} does not exist; create it with `virtkit pool-build`"
        ) from None
    except OSError as exc:
        raise HostError(f"cannot open pool directory {target}: {exc.strerror}") from None
    try:
        yield fd
    finally:
        os.close(fd)


def lstat_in(dfd: int, name: str) -> os.stat_result | None:
    try:
        return os.lstat(name, dir_fd=dfd)
    except FileNotFoundError:
        return None


def volume_path(target: Path, name: str, *, must_exist: bool = True) -> Path:
    """The path of volume ``name`` in pool directory ``target``, refusing escapes.

    Refused: invalid names, symlinks, anything that is not a regular file. With
    ``must_exist=False`` a missing file is fine (creation), an existing one is not.
    """
    check_volume_name(name)
    real = Path(os.path.realpath(target))
    with pool_dir(real) as dfd:
        st = lstat_in(dfd, name)
    if st is None:
        if must_exist:
            raise NotFoundError(
                f"volume {name!r} not found in {real}; `virtkit vol-list POOL` lists the "
                "volumes (after `virtkit pool-refresh POOL` for files copied in by hand)"
            )
        return real / name
    if not must_exist:
        raise ConfigError(f"a file named {name!r} already exists in {real}; pick another name")
    if stat.S_ISLNK(st.st_mode):
        raise ConfigError(f"{real / name} is a symbolic link; volumes must be regular files")
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{real / name} is not a regular file; it cannot be a volume")
    return real / name


def inside(path: str | Path, roots: list[Path]) -> bool:
    """True if ``path`` (symlinks resolved) lies strictly inside one of ``roots``."""
    real = os.path.realpath(path)
    for root in roots:
        r = os.path.realpath(root)
        if real.startswith(r.rstrip("/") + "/"):
            return True
    return False


def read_magic(target: Path, name: str) -> bytes:
    with pool_dir(target) as dfd:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
        try:
            return os.pread(fd, 4, 0)
        finally:
            os.close(fd)


def detect_format(target: Path, name: str) -> str:
    """Once, for a file found at refresh: qcow2 only if it has the magic AND qemu-img
    reads it as qcow2 (``-f qcow2``, never a probe); everything else is raw."""
    if read_magic(target, name) != QCOW2_MAGIC:
        return "raw"
    try:
        image_info(target / name, "qcow2")
    except (HostError, NotFoundError):
        return "raw"
    return "qcow2"


def stat_volume(path: Path, fmt: str) -> VolStat:
    st = os.stat(path, follow_symlinks=False)
    if fmt == "raw":
        return VolStat(st.st_size, st.st_blocks * 512, st.st_size, None, None)
    info = _info_json(path, fmt)
    return VolStat(
        capacity=int(info["virtual-size"]),
        allocation=int(info.get("actual-size", st.st_blocks * 512)),
        file_size=st.st_size,
        backing=info.get("full-backing-filename") or info.get("backing-filename"),
        backing_format=info.get("backing-filename-format"),
    )


def _info_json(path: Path, fmt: str) -> dict[str, Any]:
    import json

    out = _run(
        [qemu_img(), "info", "--output=json", "--force-share", "-f", check_format(fmt), str(path)],
        f"reading {path}",
    )
    data: dict[str, Any] = json.loads(out)
    return data


def check_chain(path: Path, fmt: str, allowed: list[Path], max_depth: int = 64) -> list[str]:
    """Walk the backing chain of ``path`` layer by layer; every backing file must lie
    inside ``allowed`` and name its format, and no layer may be absurdly large.

    The walk reads one layer at a time (``qemu-img info`` without ``--backing-chain``
    does not open backing files) and checks each backing path before anything opens it.
    Returns the backing files, nearest first. ConfigError on any violation.
    """
    chain: list[str] = []
    cur, cur_fmt = Path(path), fmt
    for _ in range(max_depth):
        info = _info_json(cur, cur_fmt)
        vsize = int(info.get("virtual-size", 0))
        if vsize > MAX_SIZE_BYTES:
            raise ConfigError(f"image {cur} claims a virtual size of {vsize} bytes (> 64 TiB)")
        backing = info.get("full-backing-filename") or info.get("backing-filename")
        if not backing:
            return chain
        bfmt = str(info.get("backing-filename-format") or "")
        if not inside(str(backing), allowed):
            raise ConfigError(
                f"image {path} has backing file {backing}, which is outside every active "
                "storage pool; refusing it (move the backing file into a pool, or rebase "
                "the image with `qemu-img rebase`)"
            )
        if bfmt not in FORMATS:
            raise ConfigError(
                f"image {cur} does not record the format of its backing file {backing}; "
                "virtkit never guesses formats: fix it with "
                f"`qemu-img rebase -u -f qcow2 -b {backing} -F raw|qcow2 {cur}`"
            )
        bpath = Path(str(backing))
        if not bpath.is_file() or bpath.is_symlink():
            raise ConfigError(f"backing file {backing} of {cur} is missing or not a regular file")
        if str(os.path.realpath(bpath)) in chain or os.path.realpath(bpath) == str(path):
            raise ConfigError(f"image {path} has a loop in its backing chain")
        chain.append(os.path.realpath(bpath))
        cur, cur_fmt = bpath, bfmt
    raise ConfigError(f"image {path} has a backing chain deeper than {max_depth} layers")


def _open_new(target: Path, name: str, mode: int = 0o600) -> int:
    with pool_dir(target) as dfd:
        try:
            return os.open(
                name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=dfd
            )
        except FileExistsError:
            raise ConfigError(
                f"a file named {name!r} already exists in {target}; pick another name"
            ) from None
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise ConfigError(
                    f"pool directory {target} is not writable ({exc.strerror})"
                ) from None
            raise HostError(f"cannot create {target / name}: {exc.strerror}") from None


def create_volume(
    target: Path,
    name: str,
    capacity: int,
    fmt: str,
    *,
    allocation: int = 0,
    backing: tuple[Path, str] | None = None,
) -> Path:
    """Create a new volume (never clobbers). ``backing`` is (path, format), already checked.

    The image is made under a hidden temporary name and linked into place only when
    complete: a failure (a full disk, qemu-img refusing, a crash) never leaves a
    half-made file under the volume's name; temporaries go now, or at the next start.
    """
    check_format(fmt)
    check_capacity(capacity)
    if backing is not None and fmt != "qcow2":
        raise ConfigError("only qcow2 volumes can have a backing volume; use --format qcow2")
    path = volume_path(target, name, must_exist=False)
    tmp = f"{TEMP_PREFIX}create-{uuid.uuid4().hex[:12]}"
    tmp_path = path.parent / tmp
    fd = _open_new(path.parent, tmp)
    what = f"creating volume {path}"
    try:
        if fmt == "raw":
            os.ftruncate(fd, capacity)
            if allocation > 0:
                os.posix_fallocate(fd, 0, min(allocation, capacity))
        else:
            argv = [qemu_img(), "create", "-q", "-f", "qcow2"]
            if backing is not None:
                argv += ["-b", str(backing[0]), "-F", check_format(backing[1])]
            if allocation >= capacity:
                argv += ["-o", "preallocation=falloc"]
            elif allocation > 0:
                argv += ["-o", "preallocation=metadata"]
            _run([*argv, str(tmp_path), str(capacity)], what)
        os.fsync(fd)  # complete and durable before it appears under its name
        with pool_dir(path.parent) as dfd:
            try:
                os.link(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
            except FileExistsError:
                raise ConfigError(
                    f"a file named {name!r} appeared in {path.parent}; pick another name"
                ) from None
    except OSError as exc:
        raise _write_error(exc, what, path.parent) from None
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(OSError):
            tmp_path.unlink(missing_ok=True)
    return path


def _write_error(exc: OSError, what: str, target: Path) -> HostError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return HostError(
            f"{what}: no space left in {target} ({exc.strerror}); free space there, "
            "create a smaller or sparse volume (no --allocation), or use another pool"
        )
    return HostError(f"{what}: {exc.strerror}")


def resize_volume(path: Path, fmt: str, capacity: int, *, shrink: bool) -> None:
    check_capacity(capacity, "new volume size")
    argv = [qemu_img(), "resize", "-q", "-f", check_format(fmt)]
    if shrink:
        argv.append("--shrink")
    _run([*argv, str(path), str(capacity)], f"resizing volume {path}")


def clone_volume(src: Path, fmt: str, target: Path, new_name: str) -> Path:
    """Full, sparse copy of ``src`` (flattening any backing chain) as ``new_name``.

    Written to a hidden temporary file first, then linked into place (never clobbers).
    """
    dest = volume_path(target, new_name, must_exist=False)
    tmp = f"{TEMP_PREFIX}clone-{uuid.uuid4().hex[:12]}"
    os.close(_open_new(dest.parent, tmp))
    tmp_path = dest.parent / tmp
    try:
        _run(
            [qemu_img(), "convert", "-q", "-f", fmt, "-O", fmt, "-S", "4k", str(src),
             str(tmp_path)],
            f"cloning {src}",
        )  # fmt: skip
        os.chmod(tmp_path, 0o600)
        fd = os.open(tmp_path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            os.fsync(fd)  # the copy is durable before it appears under its name
        finally:
            os.close(fd)
        with pool_dir(dest.parent) as dfd:
            try:
                os.link(tmp, new_name, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
            except FileExistsError:
                raise ConfigError(
                    f"a file named {new_name!r} appeared in {dest.parent}; pick another name"
                ) from None
    finally:
        tmp_path.unlink(missing_ok=True)
    return dest


def delete_volume(target: Path, name: str) -> None:
    path = volume_path(target, name)
    with pool_dir(path.parent) as dfd:
        os.unlink(name, dir_fd=dfd)


def scan(target: Path) -> dict[str, os.stat_result]:
    """Regular, visible files directly in ``target`` (symlinks and dirs are skipped)."""
    out: dict[str, os.stat_result] = {}
    with os.scandir(target) as it:
        for e in it:
            if e.name.startswith(".") or not e.is_file(follow_symlinks=False):
                continue
            try:
                check_volume_name(e.name)
            except ConfigError:
                continue
            out[e.name] = e.stat(follow_symlinks=False)
    return out
