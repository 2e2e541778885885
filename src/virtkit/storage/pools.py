"""Storage pools: named directories that hold volumes (virsh's ``dir`` pools).

Only ``dir`` pools exist. LVM (``logical``) and NFS (``netfs``) pools are not
implemented: both need root-only host changes (vgcreate/lvcreate, mount) that
the tests cannot exercise here, and a directory pool on an NFS mount or on an
LVM-backed filesystem covers the common use. Pool definitions live in the state
store; this module is the pure rules plus the filesystem facts.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from virtkit.errors import ConfigError, HostError, NotFoundError
from virtkit.model.domain import check_name

POOL_TYPES = ("dir",)
UNSUPPORTED_TYPES = {
    "logical": "LVM",
    "netfs": "NFS",
    "fs": "block-device filesystem",
    "disk": "partition",
    "iscsi": "iSCSI",
    "rbd": "Ceph RBD",
    "zfs": "ZFS",
}
DEFAULT_POOL = "default"


@dataclass(frozen=True)
class Capacity:
    capacity: int
    allocation: int
    available: int


def check_pool_name(name: str) -> str:
    try:
        return check_name(name, "pool")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def check_pool_type(type_: str) -> str:
    if type_ in POOL_TYPES:
        return type_
    what = UNSUPPORTED_TYPES.get(type_)
    if what:
        raise ConfigError(
            f"{what} pools (type {type_!r}) are not supported; use a 'dir' pool whose "
            f"target is a directory on the {what} storage (mount it first)"
        )
    raise ConfigError(f"unknown pool type {type_!r}; virtkit supports: {', '.join(POOL_TYPES)}")


def check_target(text: str) -> Path:
    """An absolute, normalized directory path that is not the root."""
    if not text or "\0" in text or "\n" in text:
        raise ConfigError("pool target must be an absolute directory path, e.g. /srv/images")
    if not text.startswith("/"):
        raise ConfigError(f"pool target {text!r} must be an absolute path, e.g. /srv/images")
    p = Path(os.path.normpath(text))
    if p == Path("/"):
        raise ConfigError("the root directory cannot be a pool target; pick a directory")
    if len(str(p).encode()) > 4000:
        raise ConfigError("pool target path is too long")
    return p


def capacity(target: Path) -> Capacity:
    """Capacity/allocation/available of the filesystem holding ``target`` (like libvirt)."""
    try:
        st = os.statvfs(target)
    except FileNotFoundError:
        raise NotFoundError(f"pool directory {target} does not exist") from None
    except OSError as exc:
        raise HostError(f"cannot stat pool directory {target}: {exc.strerror}") from None
    total = st.f_blocks * st.f_frsize
    return Capacity(total, total - st.f_bfree * st.f_frsize, st.f_bavail * st.f_frsize)


def build(target: Path, mode: int = 0o711) -> bool:
    """mkdir -p the target; False if it was there already. ConfigError if not a directory."""
    if target.is_dir():
        return False
    try:
        target.mkdir(mode=mode, parents=True)
        os.chmod(target, mode)  # the pool's mode, whatever the daemon's umask (077)
    except FileExistsError:
        raise ConfigError(f"pool target {target} exists and is not a directory") from None
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise ConfigError(f"cannot create {target}: {exc.strerror}") from None
        raise HostError(f"cannot create {target}: {exc.strerror}") from None
    return True


def check_startable(target: Path) -> Path:
    """The real directory a pool can be started on."""
    if not target.exists():
        raise NotFoundError(
            f"pool directory {target} does not exist; create it with `virtkit pool-build POOL`"
        )
    if not target.is_dir():
        raise ConfigError(f"pool target {target} is not a directory")
    return Path(os.path.realpath(target))
