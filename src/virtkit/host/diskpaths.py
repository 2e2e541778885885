"""Which host paths a guest may be given: the check made at define time and again at start.

A path is resolved first (symlinks and ``..``), then judged by what it really is:
  - ``type: file`` (the default) must be a regular file: never a directory, a device
    or a socket;
  - ``type: block`` (libvirt ``<disk type='block'>``) must be a block device that is
    not mounted, has no mounted partition, is not swap, is not held by device-mapper,
    md or LVM (``holders/``), and that nobody has open exclusively;
  - nothing in the host's system locations (/etc, /boot, /usr, /proc, /sys, /dev, /bin,
    /sbin, /lib*) is given out: block devices under /dev only as ``type: block``, and
    read-only files there only when every user can already read them (a distribution
    kernel in /boot, OVMF in /usr/share), since then nothing is changed;
  - nothing in virtkit's own state and run directories except pools and images.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from virtkit.errors import ConfigError
from virtkit.host.facts import HOST, HostRoot

SYSTEM_DIRS = ("/etc", "/boot", "/usr", "/proc", "/sys", "/dev", "/bin", "/sbin",
               "/lib", "/lib32", "/lib64", "/libx32")  # fmt: skip


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def world_readable(real: str) -> bool:
    """Every user can already read ``real`` (and search every directory above it)."""
    try:
        if os.stat(real).st_mode & 0o004 == 0:
            return False
        return all(os.stat(d).st_mode & 0o001 for d in Path(real).parents)
    except OSError:
        return False


def check_path(path: str, what: str, *, block: bool = False, write: bool = False,
               private: tuple[Path, ...] = (), allowed: tuple[Path, ...] = (),
               host: HostRoot = HOST) -> None:  # fmt: skip
    """ConfigError naming the problem and the fix, if ``path`` may not be given to a
    guest. A path that does not exist is not judged here (the caller says it is missing).
    ``private``: virtkit's own directories, refused except under ``allowed`` (pools)."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError:
        return
    shown = path if real == path else f"{path} (which is {real})"
    if block:
        if not stat.S_ISBLK(st.st_mode):
            raise ConfigError(
                f"{what} {shown} is not a block device; drop type: block for an image file"
            )
        busy = block_device_use(real, st.st_rdev, host)
        if busy:
            raise ConfigError(
                f"{what} {shown} is in use on the host ({busy}); a guest gets only a block "
                "device the host does not use: unmount it or pick another device"
            )
    elif stat.S_ISBLK(st.st_mode):
        raise ConfigError(
            f"{what} {shown} is a block device; say type: block on the disk (libvirt "
            "<disk type='block'>, virt-install --disk path=/dev/...) to give it to the guest"
        )
    elif stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{what} {shown} is a directory; name an image file")
    elif not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{what} {shown} is not a regular file; name an image file")
    system = next((d for d in SYSTEM_DIRS if _under(real, d)), None)
    exempt = system is None or (block and system == "/dev")
    if not exempt and (write or not world_readable(real)):
        raise ConfigError(
            f"{what} {shown} is in the host's system location {system}, which is never "
            "given to a guest; copy the file into a storage pool (e.g. "
            "/var/lib/virtkit/images) and use the copy"
        )
    inside = next((p for p in private if _under(real, os.path.realpath(p))), None)
    if inside is not None and not any(_under(real, os.path.realpath(a)) for a in allowed):
        raise ConfigError(
            f"{what} {shown} is inside virtkit's own directory {inside}; only its storage "
            "pools may hold guest images: use `virtkit vol-create-as` or another path"
        )


def _dev_ids(host: HostRoot, rdev: int) -> set[str]:
    """``MAJ:MIN`` of the device and of each of its partitions."""
    me = f"{os.major(rdev)}:{os.minor(rdev)}"
    ids = {me}
    base = f"/sys/dev/block/{me}"
    for child in host.listdir(base):
        if (host.read_text(f"{base}/{child}/partition") or "").strip():
            dev = (host.read_text(f"{base}/{child}/dev") or "").strip()
            if dev:
                ids.add(dev)
    return ids


def block_device_use(real: str, rdev: int, host: HostRoot = HOST) -> str:
    """How the host uses the block device (``''``: not at all, as far as we can see)."""
    ids = _dev_ids(host, rdev)
    for line in (host.read_text("/proc/self/mountinfo") or "").splitlines():
        f = line.split()
        if len(f) > 4 and f[2] in ids:
            return f"mounted on {f[4]}"
    for dev in sorted(ids):
        if host.listdir(f"/sys/dev/block/{dev}/holders"):
            return "held by device-mapper, md or LVM"
    for line in (host.read_text("/proc/swaps") or "").splitlines()[1:]:
        name = line.split()[0] if line.split() else ""
        try:
            if name and os.stat(name).st_rdev == rdev:
                return "swap"
        except OSError:
            pass
    if host.root == Path("/"):
        try:
            fd = os.open(real, os.O_RDONLY | os.O_EXCL | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                return "open exclusively by another program"
        else:
            os.close(fd)
    return ""
