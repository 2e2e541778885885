"""Letting the confined QEMU user reach exactly the files of its domain.

Nothing is made world-accessible. For every file a domain's QEMU opens:
  - images it writes are chowned to the QEMU user (their mode is kept, so other
    users gain nothing; root still reaches them);
  - files it only reads (kernel, initrd, read-only disks, backing files) get a
    POSIX ACL entry ``user:QEMU:r``;
  - every directory above them that the QEMU user could not traverse gets an ACL
    entry ``user:QEMU:x`` (search only: it cannot list them).
ACLs are written as the ``system.posix_acl_access`` extended attribute (the
kernel's binary format), so no ``setfacl`` is needed.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from pathlib import Path

from virtkit.errors import HostError

XATTR = "system.posix_acl_access"
VERSION = 2
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
UNDEFINED_ID = 0xFFFFFFFF
R, W, X = 4, 2, 1
_ENTRY = struct.Struct("<HHI")


def _parse(raw: bytes) -> list[tuple[int, int, int]]:
    if len(raw) < 4 or struct.unpack_from("<I", raw)[0] != VERSION:
        raise ValueError("not a version-2 POSIX ACL")
    return [_ENTRY.unpack_from(raw, off) for off in range(4, len(raw), _ENTRY.size)]


def _from_mode(mode: int) -> list[tuple[int, int, int]]:
    return [
        (USER_OBJ, (mode >> 6) & 7, UNDEFINED_ID),
        (GROUP_OBJ, (mode >> 3) & 7, UNDEFINED_ID),
        (OTHER, mode & 7, UNDEFINED_ID),
    ]


Entries = list[tuple[int, int, int]]  # (tag, perm, id)


def with_user(entries: Entries, uid: int, perm: int) -> Entries:
    """``entries`` with ``user:uid`` holding at least ``perm``, and a mask that lets it."""
    out = [e for e in entries if e[0] != MASK]
    found = False
    for i, (tag, p, ident) in enumerate(out):
        if tag == USER and ident == uid:
            out[i] = (tag, p | perm, ident)
            found = True
    if not found:
        out.append((USER, perm, uid))
    mask = 0
    for tag, p, _ in out:
        if tag in (USER, GROUP_OBJ, GROUP):
            mask |= p
    old_mask = next((p for tag, p, _ in entries if tag == MASK), None)
    if old_mask is not None:
        # keep what the old mask limited (group entries), widen only for our user
        mask = old_mask | perm
    out.append((MASK, mask, UNDEFINED_ID))
    out.sort(key=lambda e: (e[0], e[2]))
    return out


def encode(entries: list[tuple[int, int, int]]) -> bytes:
    return struct.pack("<I", VERSION) + b"".join(_ENTRY.pack(*e) for e in entries)


def user_perm(path: str, uid: int) -> int:
    """The permission bits ``user:uid`` has on ``path`` through its ACL (0 if none)."""
    try:
        entries = _parse(os.getxattr(path, XATTR))
    except (OSError, ValueError):
        return 0
    mask = next((p for tag, p, _ in entries if tag == MASK), 7)
    return next((p & mask for tag, p, ident in entries if tag == USER and ident == uid), 0)


def _allows(st: os.stat_result, uid: int, gids: tuple[int, ...], perm: int, path: str) -> bool:
    if st.st_uid == uid:
        return (st.st_mode >> 6) & perm == perm
    if user_perm(path, uid) & perm == perm:
        return True
    if st.st_gid in gids and (st.st_mode >> 3) & perm == perm:
        return True
    return st.st_mode & perm == perm


def grant_acl(path: str, uid: int, perm: int) -> None:
    """Add ``user:uid:perm`` to the ACL of ``path`` (HostError if the filesystem cannot)."""
    try:
        try:
            entries = _parse(os.getxattr(path, XATTR))
        except OSError as exc:
            if exc.errno != errno.ENODATA:
                raise
            entries = _from_mode(os.stat(path).st_mode)
        os.setxattr(path, XATTR, encode(with_user(entries, uid, perm)))
    except (OSError, ValueError) as exc:
        raise HostError(
            f"cannot give the QEMU user access to {path} ({exc}); the filesystem may not "
            "support POSIX ACLs: move the file into a storage pool or a directory the QEMU "
            "user can read"
        ) from None


def grant_path(path: str, uid: int, gids: tuple[int, ...], *, write: bool, gid: int,
               execute: bool = False) -> None:  # fmt: skip
    """Let ``uid`` open ``path`` (read, read+write, or read+execute) and traverse to it."""
    real = os.path.realpath(path)
    for d in reversed(Path(real).parents):
        grant_search(str(d), uid, gids)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return
    if write:
        if st.st_uid != uid:
            try:
                os.chown(real, uid, gid if stat.S_ISREG(st.st_mode) else -1)
            except OSError as exc:
                raise HostError(f"cannot hand {real} to the QEMU user: {exc.strerror}") from None
        if (st.st_mode >> 6) & (R | W) != R | W:
            os.chmod(real, stat.S_IMODE(st.st_mode) | 0o600)
    elif not _allows(st, uid, gids, R | (X if execute else 0), real):
        grant_acl(real, uid, R | (X if execute else 0))


def grant_search(directory: str, uid: int, gids: tuple[int, ...]) -> None:
    st = os.stat(directory)
    if not _allows(st, uid, gids, X, directory):
        grant_acl(directory, uid, X)


def grant_device(path: str, uid: int) -> None:
    """Read+write on a device node (``/dev/kvm`` when it is not open to the kvm group)."""
    if user_perm(path, uid) & (R | W) != R | W:
        grant_acl(path, uid, R | W)
