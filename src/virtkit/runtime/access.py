"""Letting one confined QEMU reach exactly the files of its domain, and giving them back.

Ownership is borrowed, never taken. Every confined QEMU runs as its own uid
(runtime/uids.py). For every file its domain names:
  - the file gets a POSIX ACL entry ``user:UID:rw`` (writable images, the console log,
    NVRAM) or ``user:UID:r`` (kernel, initrd, read-only disks, backing files);
  - every directory above it that UID could not traverse gets ``user:UID:x`` (search
    only: it cannot list them);
  - nothing is granted where UID already has the access (world-readable kernels).
Each change is returned as a ``Borrow``: the exact previous state of that one entry
(and of the ACL mask), which the daemon stores before QEMU starts and hands to
``revert`` when the guest stops (or after a crash). Reverting removes only this
uid's entry, so guests sharing a file (a read-only base, a directory) never undo each
other. Where the filesystem has no POSIX ACLs, a regular file is chowned to UID
instead (its owner, group and mode are recorded and restored; a second guest is
refused while one holds it).

The target is opened with O_PATH|O_NOFOLLOW after the path is resolved, and every
ACL write goes through that descriptor (``/proc/self/fd/N``), so a symlink swapped
in between cannot redirect the grant. ACLs are the ``system.posix_acl_access``
extended attribute (the kernel's binary format): no ``setfacl`` needed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import struct
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from virtkit.errors import HostError

XATTR = "system.posix_acl_access"
VERSION = 2
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
UNDEFINED_ID = 0xFFFFFFFF
R, W, X = 4, 2, 1
_ENTRY = struct.Struct("<HHI")
_NOACL = (errno.EOPNOTSUPP, errno.ENOTSUP)

Entries = list[tuple[int, int, int]]  # (tag, perm, id)


@dataclass(frozen=True)
class Borrow:
    """One change made for one QEMU uid on one inode, with what it replaced."""

    path: str  # the resolved path changed
    dev: int
    ino: int
    uid: int  # the QEMU uid the change is for
    kind: str  # "acl": an ACL entry for uid; "owner": chowned to uid (no ACL support)
    perm: int = R  # what uid is given (R, W, X bits)
    prev_perm: int | None = None  # acl: the uid's entry before (None: it had none)
    prev_mask: int | None = None  # acl: the mask before (None: the file had no ACL)
    prev_uid: int = -1  # owner: the owner, group and mode before
    prev_gid: int = -1
    prev_mode: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Borrow:
        return cls(**data)


def _parse(raw: bytes) -> Entries:
    if len(raw) < 4 or struct.unpack_from("<I", raw)[0] != VERSION:
        raise ValueError("not a version-2 POSIX ACL")
    return [_ENTRY.unpack_from(raw, off) for off in range(4, len(raw), _ENTRY.size)]


def _from_mode(mode: int) -> Entries:
    return [
        (USER_OBJ, (mode >> 6) & 7, UNDEFINED_ID),
        (GROUP_OBJ, (mode >> 3) & 7, UNDEFINED_ID),
        (OTHER, mode & 7, UNDEFINED_ID),
    ]


def encode(entries: Entries) -> bytes:
    return struct.pack("<I", VERSION) + b"".join(_ENTRY.pack(*e) for e in entries)


def _sorted(entries: Entries) -> Entries:
    return sorted(entries, key=lambda e: (e[0], e[2]))


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
    old_mask = next((p for tag, p, _ in entries if tag == MASK), None)
    if old_mask is not None:
        # keep what the old mask limited (group entries), widen only for our user
        mask = old_mask | perm
    else:
        mask = 0
        for tag, p, _ in out:
            if tag in (USER, GROUP_OBJ, GROUP):
                mask |= p
    out.append((MASK, mask, UNDEFINED_ID))
    return _sorted(out)


def without_user(entries: Entries, b: Borrow, ours: Callable[[int], bool]) -> Entries:
    """``entries`` with ``b``'s entry put back as it was, the mask recomputed: the old
    mask widened only for the entries other confined QEMUs (``ours``) still hold. With
    no named entry left, the three base entries (the kernel then drops the ACL and
    gives the mode back its group bits)."""
    out = [e for e in entries if e[0] != MASK and not (e[0] == USER and e[2] == b.uid)]
    if b.prev_perm is not None:
        out.append((USER, b.prev_perm, b.uid))
    named = [e for e in out if e[0] in (USER, GROUP)]
    if not named:
        return _sorted(out)
    if b.prev_mask is not None:
        mask = b.prev_mask
        for tag, p, ident in named:
            if tag == USER and ours(ident):
                mask |= p
    else:
        mask = next((p for tag, p, _ in out if tag == GROUP_OBJ), 0)
        for _, p, _ in named:
            mask |= p
    out.append((MASK, mask, UNDEFINED_ID))
    return _sorted(out)


def user_perm(path: str, uid: int) -> int:
    """The permission bits ``user:uid`` has on ``path`` through its ACL (0 if none)."""
    try:
        entries = _parse(os.getxattr(path, XATTR))
    except (OSError, ValueError):
        return 0
    mask = next((p for tag, p, _ in entries if tag == MASK), 7)
    return next((p & mask for tag, p, ident in entries if tag == USER and ident == uid), 0)


def allows(st: os.stat_result, uid: int, gids: tuple[int, ...], perm: int, path: str) -> bool:
    """Whether ``uid`` (with groups ``gids``) already has ``perm`` on the file."""
    if st.st_uid == uid:
        return (st.st_mode >> 6) & perm == perm
    if user_perm(path, uid) & perm == perm:
        return True
    if st.st_gid in gids and (st.st_mode >> 3) & perm == perm:
        return True
    return st.st_mode & perm == perm


@contextlib.contextmanager
def _opened(path: str) -> Iterator[tuple[str, os.stat_result]]:
    """``path`` pinned: a /proc/self/fd name for it and its stat (no symlink followed)."""
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}", os.fstat(fd)
    finally:
        os.close(fd)


def _acl(pinned: str, st: os.stat_result) -> Entries | None:
    """The file's ACL entries, or None when it has none."""
    try:
        return _parse(os.getxattr(pinned, XATTR))
    except OSError as exc:
        if exc.errno == errno.ENODATA:
            return None
        raise


def plan(path: str, uid: int, gids: tuple[int, ...], perm: int) -> list[Borrow]:
    """What giving ``uid`` ``perm`` on ``path`` (and search on every directory above it)
    changes: one Borrow per inode that lacks the access, with its current state. Only
    reads: the caller records the plan durably, then ``apply``s it, so a crash in
    between leaves nothing unrecorded. A missing file is skipped."""
    real = os.path.realpath(path)
    out: list[Borrow] = []
    steps = [(str(d), X) for d in reversed(Path(real).parents)]
    if os.path.lexists(real):
        steps.append((real, perm))
    for p, want in steps:
        try:
            b = _plan_one(p, uid, gids, want)
        except OSError as exc:
            raise _denied(p, uid, exc) from None
        if b is not None:
            out.append(b)
    return out


def _denied(real: str, uid: int, exc: OSError) -> HostError:
    return HostError(
        f"cannot give the confined QEMU (uid {uid}) access to {real} "
        f"({exc.strerror or exc}); move the file into a storage pool or a directory "
        "on a filesystem with POSIX ACLs"
    )


def _plan_one(real: str, uid: int, gids: tuple[int, ...], perm: int) -> Borrow | None:
    with _opened(real) as (pinned, st):
        if allows(st, uid, gids, perm, pinned):
            return None
        try:
            entries = _acl(pinned, st)
        except OSError as exc:
            if exc.errno not in _NOACL or not stat.S_ISREG(st.st_mode) or perm & X:
                raise
            return Borrow(real, st.st_dev, st.st_ino, uid, "owner", perm=perm,
                          prev_uid=st.st_uid, prev_gid=st.st_gid,
                          prev_mode=stat.S_IMODE(st.st_mode))  # fmt: skip
        base = entries if entries is not None else _from_mode(st.st_mode)
        prev = next((p for t, p, i in base if t == USER and i == uid), None)
        mask = None
        if entries is not None:
            mask = next((p for t, p, _ in base if t == MASK), None)
            if mask is None:
                mask = next((p for t, p, _ in base if t == GROUP_OBJ), 0)
        return Borrow(real, st.st_dev, st.st_ino, uid, "acl", perm, prev, mask)


def apply(b: Borrow, held_by_other: Callable[[Borrow], bool] = lambda b: False) -> None:
    """Make the change ``b`` plans (HostError when it cannot be made). ``held_by_other``:
    another guest has this file chowned (the no-ACL fallback serves one guest only)."""
    try:
        with _opened(b.path) as (pinned, st):
            if (st.st_dev, st.st_ino) != (b.dev, b.ino):
                raise HostError(f"{b.path} was replaced while the guest was starting; "
                                "start it again")  # fmt: skip
            if b.kind == "owner":
                if held_by_other(b):
                    raise HostError(
                        f"{b.path} is on a filesystem without POSIX ACLs and another "
                        "running guest holds it; stop that guest, or move the file to a "
                        "filesystem with ACLs (ext4, xfs, btrfs, tmpfs)"
                    )
                os.chown(pinned, b.uid, -1)
                os.chmod(pinned, stat.S_IMODE(st.st_mode) | (b.perm << 6))
                return
            entries = _acl(pinned, st)
            base = entries if entries is not None else _from_mode(st.st_mode)
            os.setxattr(pinned, XATTR, encode(with_user(base, b.uid, b.perm)))
    except OSError as exc:
        raise _denied(b.path, b.uid, exc) from None


def revert(b: Borrow, ours: Callable[[int], bool]) -> str:
    """Undo one change; returns what happened (for the log). Never raises for a file
    that is gone or was replaced since (there is nothing of ours left to undo)."""
    try:
        with _opened(b.path) as (pinned, st):
            if (st.st_dev, st.st_ino) != (b.dev, b.ino):
                return f"{b.path}: replaced since, left as it is"
            if b.kind == "owner":
                if st.st_uid != b.uid:
                    return f"{b.path}: owner changed since (uid {st.st_uid}), left as it is"
                os.chown(pinned, b.prev_uid, b.prev_gid)
                os.chmod(pinned, b.prev_mode)
                return f"{b.path}: owner {b.prev_uid}:{b.prev_gid} mode {b.prev_mode:o} back"
            entries = _acl(pinned, st)
            if entries is None or not any(t == USER and i == b.uid for t, _, i in entries):
                return f"{b.path}: no entry for uid {b.uid} left"
            os.setxattr(pinned, XATTR, encode(without_user(entries, b, ours)))
            return f"{b.path}: ACL entry of uid {b.uid} removed"
    except FileNotFoundError:
        return f"{b.path}: gone"
    except OSError as exc:
        return f"{b.path}: could not be restored ({exc.strerror or exc})"


def revert_all(borrows: list[Borrow], ours: Callable[[int], bool]) -> list[str]:
    """Undo in reverse order (the file before the directories above it)."""
    return [revert(b, ours) for b in reversed(borrows)]
