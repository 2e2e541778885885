"""One uid (and gid) per running QEMU, from a configured range, unique on the host.

libvirt runs every QEMU as one ``qemu`` user and separates guests with SELinux or
AppArmor labels; Firecracker's jailer gives each microVM its own uid. We do the
latter: a guest's files carry ACL entries for its QEMU's uid only, so one guest's
QEMU can never open another guest's images, even through a shared directory.

A uid is claimed host-wide (several daemons may run on one host: a migration's two
ends) by creating ``LOCK_DIR/UID`` with O_EXCL. The file names the claimant
(daemon state dir + domain) and the process holding it: first the daemon, then the
QEMU once it runs. A claim whose process is gone (pid + start time) is stale and is
taken over. The uid has no passwd entry: nothing else on the host may use the range
(the default, 2000000000-2000065535, is above ordinary accounts and above the usual
subordinate-id ranges of containers).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from virtkit.errors import ConfigError, HostError
from virtkit.runtime import proc

LOCK_DIR = Path("/run/virtkit-uids")
DEFAULT_RANGE = "2000000000-2000065535"


def parse_range(text: str) -> tuple[int, int] | None:
    """``FIRST-LAST`` -> (first, last); ``shared`` or '' -> None (one shared account)."""
    if text.strip() in ("", "shared"):
        return None
    first_s, sep, last_s = text.partition("-")
    try:
        first, last = int(first_s), int(last_s)
    except ValueError:
        first = last = -1
    if not sep or not 1000 <= first <= last < 2**31:
        raise ConfigError(
            f"VIRTKIT_QEMU_UIDS={text!r}: give a range FIRST-LAST of unused uids above 999 "
            f"(e.g. {DEFAULT_RANGE}), or 'shared' to run every QEMU as VIRTKIT_QEMU_USER"
        )
    return first, last


class UidClaims:
    def __init__(self, first: int, last: int, lock_dir: Path = LOCK_DIR) -> None:
        self.first, self.last = first, last
        self.lock_dir = lock_dir

    def ours(self, uid: int) -> bool:
        """Whether ``uid`` is in the range and held by a live QEMU or daemon now (an ACL
        entry another running guest needs; a stale one left by a lost state dir is not)."""
        return self.first <= uid <= self.last and self._holder_alive(uid)

    def _file(self, uid: int) -> Path:
        return self.lock_dir / str(uid)

    def _holder_alive(self, uid: int) -> bool:
        try:
            data = json.loads(self._file(uid).read_text())
            pid, start = int(data["pid"]), int(data["start"])
        except FileNotFoundError:
            return False
        except (OSError, ValueError, KeyError, TypeError):
            return False  # unreadable: stale
        return proc.start_time(pid) == start

    def _write(self, uid: int, key: str, pid: int, *, exclusive: bool) -> bool:
        start = proc.start_time(pid) or 0
        body = json.dumps({"key": key, "pid": pid, "start": start}).encode()
        path = self._file(uid)
        if not exclusive:
            tmp = path.with_name(f".{uid}.{os.getpid()}")
            tmp.write_bytes(body)
            os.replace(tmp, path)
            return True
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        return True

    def claim(self, key: str) -> int:
        """A free uid for ``key`` (``STATE_DIR:DOMAIN``), held by this daemon for now."""
        self.lock_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        size = self.last - self.first + 1
        start = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % size
        for i in range(min(size, 4096)):
            uid = self.first + (start + i) % size
            if self._write(uid, key, os.getpid(), exclusive=True):
                return uid
            if not self._holder_alive(uid):
                with contextlib.suppress(FileNotFoundError):
                    self._file(uid).unlink()  # stale: its QEMU and daemon are gone
                if self._write(uid, key, os.getpid(), exclusive=True):
                    return uid
        raise HostError(
            f"no free QEMU uid in {self.first}-{self.last} (VIRTKIT_QEMU_UIDS): too many "
            f"guests run, or stale claims in {self.lock_dir}; widen the range"
        )

    def hold(self, uid: int, key: str, pid: int) -> None:
        """The QEMU ``pid`` now holds ``uid`` (after launch, and on re-attach)."""
        self.lock_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        self._write(uid, key, pid, exclusive=False)

    def release(self, uid: int, key: str) -> None:
        """Give ``uid`` back, if ``key`` still holds it."""
        path = self._file(uid)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        if data.get("key") == key:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
