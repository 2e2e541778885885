"""The state directory: one daemon at a time, and no one else reads it.

``lock_state`` takes ``STATE/virtkitd.lock`` (flock, held for the daemon's life, the
holder's pid and run directory written in it): two daemons with different run
directories must not serve one state directory. ``harden`` gives an existing state
directory (made by an older virtkit: 0755 dirs, 0644 files) the modes a new one gets
(the daemon runs with umask 077): no group or other access to the directory, its
first-level entries and what log/ and cache/ hold. An entry with a POSIX ACL keeps its
named entries (the confined QEMU's search/read grants, runtime/access.py); only its
owning group and others lose their bits.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct
from pathlib import Path

from virtkit.errors import DaemonError
from virtkit.paths import Paths

LOCK_FILE = "virtkitd.lock"
_XATTR = "system.posix_acl_access"
_USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x02, 0x04, 0x08, 0x10, 0x20
_ENTRY = struct.Struct("<HHI")


def lock_state(paths: Paths) -> int:
    """Hold the state directory's lock (the fd); DaemonError naming the holder if taken."""
    path = paths.state_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 4096, 0).decode(errors="replace").split()
        os.close(fd)
        pid = holder[0] if holder else "unknown"
        run = f" (run directory {holder[1]})" if len(holder) > 1 else ""
        raise DaemonError(
            f"another virtkitd (pid {pid}){run} already serves the state directory "
            f"{paths.state_dir}; stop that daemon first, or give this one a state "
            "directory of its own (VIRTKIT_STATE_DIR)"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {paths.run_dir}\n".encode(), 0)
    return fd


def harden(paths: Paths) -> list[str]:
    """Take group and other access away where an older virtkit left it; what was fixed."""
    root = paths.state_dir
    todo: list[Path] = [root]
    with os.scandir(root) as it:
        todo += [Path(e.path) for e in it]
    for sub in (paths.log_dir, paths.cache_dir):
        if sub.is_dir() and not sub.is_symlink():
            with os.scandir(sub) as it:
                todo += [Path(e.path) for e in it]
    fixed = []
    for p in todo:
        change = _tighten(p)
        if change:
            fixed.append(f"{p}: {change}")
    return fixed


def _tighten(path: Path) -> str:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return ""
    if stat.S_ISLNK(st.st_mode) or st.st_mode & 0o077 == 0:
        return ""
    old = stat.S_IMODE(st.st_mode)
    try:
        raw = os.getxattr(path, _XATTR)
    except OSError as exc:
        if exc.errno not in (errno.ENODATA, errno.EOPNOTSUPP):
            raise
        raw = b""
    if len(raw) > 4:  # an ACL: its group-class bits are the mask; keep the named entries
        entries = [_ENTRY.unpack_from(raw, off) for off in range(4, len(raw), _ENTRY.size)]
        named = 0
        out = []
        for tag, perm, ident in entries:
            if tag in (_GROUP_OBJ, _OTHER):
                perm = 0
            elif tag in (_USER, _GROUP):
                named |= perm
            out.append((tag, perm, ident))
        out = [(t, named if t == _MASK else p, i) for t, p, i in out]
        os.setxattr(path, _XATTR, raw[:4] + b"".join(_ENTRY.pack(*e) for e in out))
        if stat.S_IMODE(os.lstat(path).st_mode) & 0o007:
            os.chmod(path, stat.S_IMODE(os.lstat(path).st_mode) & ~0o007)
    else:
        os.chmod(path, old & ~0o077)
    new = stat.S_IMODE(os.lstat(path).st_mode)
    return f"mode {old:04o} -> {new:04o}" if new != old else ""
