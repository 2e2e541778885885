"""Confining a domain's QEMU (system mode): user, files, cgroup, command prefix.

``VIRTKIT_CONFINE`` (auto|on|off; auto = on for a system-mode daemon running as
root) turns it on. Each confined QEMU runs as its own uid and gid from
``VIRTKIT_QEMU_UIDS`` (runtime/uids.py; ``shared`` = every QEMU as the one account
``VIRTKIT_QEMU_USER``, made by scripts/setup), with no capabilities and no_new_privs
(runtime/confine.py), in its own cgroup (runtime/cgroup.py). It reaches only what its
domain names (runtime/access.py): its run directory (0700, owned by its uid; QMP and
serial sockets 0600 inside) and ACL entries for its uid on its console log, images,
kernel, NVRAM and the directories above them. Every entry is recorded in the store
(table ``borrows``) before it is made and removed when the guest stops, when a start
fails, and at daemon start for a guest that stopped while the daemon was away. New
files handed to a running QEMU (hot-plugged disks, snapshot overlays) go through
``expose``. In session mode QEMU runs as the invoking user and nothing is changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from virtkit.daemon.settings import Settings
from virtkit.daemon.store import Store
from virtkit.errors import HostError
from virtkit.model.domain import DiskDevice, DiskFormat, Domain
from virtkit.paths import Paths
from virtkit.qemu.argv import RunPaths
from virtkit.runtime import access, cgroup, confine, uids
from virtkit.runtime.access import Borrow, R, W, X


def scope_name(name: str, run_dir: Path) -> str:
    """``NAME-HASH``: the daemon's run directory in the hash, so two daemons on one host
    (a migration's source and destination run the same domain) never share a cgroup."""
    import hashlib

    return f"{name}-{hashlib.sha256(str(run_dir.parent).encode()).hexdigest()[:8]}"


log = logging.getLogger("virtkit.daemon")

TYPE_CHECKING = False
if TYPE_CHECKING:
    from virtkit.daemon.service import Entry


@dataclass(frozen=True)
class Prepared:
    wrapper: tuple[str, ...] = ()
    uid: int | None = None
    cgroup: str = ""
    note: str = ""
    limits: dict[str, str] = field(default_factory=dict)
    cgroup_dirs: tuple[str, ...] = ()


class Confiner:
    def __init__(self, paths: Paths, settings: Settings, store: Store,
                 cgroup_root: Path | bool = True,
                 uid_lock_dir: Path = uids.LOCK_DIR) -> None:  # fmt: skip
        self.paths = paths
        self.settings = settings
        self.store = store
        if settings.confine == "on":
            self.enabled = True
        elif settings.confine == "off":
            self.enabled = False
        else:
            self.enabled = paths.mode == "system" and os.geteuid() == 0
        self._user: confine.QemuUser | None = None
        self.is_running: Callable[[str], bool] = lambda name: False  # set by the service
        span = uids.parse_range(settings.qemu_uids)
        self.uids = uids.UidClaims(*span, lock_dir=uid_lock_dir) if span else None
        # cgroup_root: True = find the hierarchies, False = no cgroup, a Path = that cgroup2
        self._cgroups: cgroup.Layout = (
            cgroup.Layout(cgroup_root) if isinstance(cgroup_root, Path)
            else cgroup.detect() if cgroup_root else cgroup.Layout()
        )  # fmt: skip

    def user(self) -> confine.QemuUser:
        """The shared account (``VIRTKIT_QEMU_UIDS=shared``), or the template whose
        supplementary groups (the group of /dev/kvm) every per-guest uid gets."""
        if self._user is None:
            if os.geteuid() != 0:
                raise HostError(
                    "VIRTKIT_CONFINE=on needs a daemon running as root (it switches QEMU to "
                    "an unprivileged uid); unset it in session mode"
                )
            if self.uids is None:
                self._user = confine.lookup_user(self.settings.qemu_user)
            else:
                self._user = confine.QemuUser("", -1, -1, confine.kvm_groups())
        return self._user

    def _key(self, name: str) -> str:
        return f"{self.paths.state_dir}:{name}"

    def _user_for(self, name: str) -> confine.QemuUser:
        base = self.user()
        if self.uids is None:
            return base
        uid = self.uids.claim(self._key(name))
        return confine.QemuUser(f"uid {uid}", uid, uid, base.groups)

    def ours(self, uid: int) -> bool:
        """An ACL entry of some confined QEMU (another guest's, kept when one is undone)."""
        if self.uids is not None:
            return self.uids.ours(uid)
        return self._user is not None and uid == self._user.uid

    def check(self) -> None:
        """At daemon start: fail early (and clearly) when confinement cannot work."""
        if self.enabled:
            self.user()
            confine.setpriv_binary()

    # -- borrowed host paths -----------------------------------------------------------------

    def _borrow(self, name: str, u: confine.QemuUser,
                wants: list[tuple[str, int]]) -> None:  # fmt: skip
        """Record, then make, every change that lets ``u`` reach ``wants`` (path, perm)."""
        gids = (u.gid, *u.groups)
        planned: list[Borrow] = []
        seen: set[tuple[int, int, int]] = set()
        for path, perm in wants:
            for b in access.plan(path, u.uid, gids, perm):
                if (b.dev, b.ino, b.perm) not in seen:  # a directory above several files
                    seen.add((b.dev, b.ino, b.perm))
                    planned.append(b)
        self.store.add_borrows(name, u.uid, [b.to_json() for b in planned])
        for b in planned:
            access.apply(b, self._owner_held)

    def _owner_held(self, b: Borrow) -> bool:
        for other in self.store.borrowing_domains():
            for _, data in self.store.borrows(other):
                o = Borrow.from_json(data)
                if o.kind == "owner" and (o.dev, o.ino) == (b.dev, b.ino) and o.uid != b.uid:
                    return True
        return False

    def give_back(self, name: str) -> list[str]:
        """Undo every change made for ``name``'s QEMU (it has stopped, or never started)
        and free its uid. On the event loop's thread (a few system calls and one
        transaction). In shared-account mode the
        entries stay, handed to another running guest, until the last one stops."""
        rows = self.store.borrows(name)
        if self.uids is None and rows:
            heir = next((d for d in self.store.borrowing_domains() if d != name
                         and self.is_running(d)), None)  # fmt: skip
            if heir is not None:
                self.store.move_borrows(name, heir)
                return []
        notes = access.revert_all([Borrow.from_json(d) for _, d in rows], self.ours)
        self.store.drop_borrows([seq for seq, _ in rows])
        if self.uids is not None and rows:
            for uid in {Borrow.from_json(d).uid for _, d in rows}:
                self.uids.release(uid, self._key(name))
        for n in notes:
            log.info("domain %s: %s", name, n)
        return notes

    def release_uid(self, name: str, uid: int | None) -> None:
        if self.uids is not None and uid is not None:
            self.uids.release(uid, self._key(name))

    # -- per start ---------------------------------------------------------------------------

    async def prepare(self, dom: Domain, run_dir: Path, rp: RunPaths, accel: str,
                      pools: list[Path], devices: tuple[str, ...] = ()) -> Prepared:  # fmt: skip
        """Pick the uid, lend the files, make the cgroup, build the prefix. On failure
        everything done so far is given back. The store is written on the event loop's
        thread only; the slow parts (backing chains, cgroups) run in a worker thread."""
        if not self.enabled:
            return Prepared()
        loop = asyncio.get_running_loop()
        u = self._user_for(dom.name)
        try:
            wants = await loop.run_in_executor(None, self._wants, dom, run_dir, rp,
                                               accel, pools)  # fmt: skip
            self._borrow(dom.name, u, [*wants, *((d, R | W) for d in devices)])
            return await loop.run_in_executor(None, self._finish, dom, u, run_dir)
        except BaseException:
            self.give_back(dom.name)
            self.release_uid(dom.name, u.uid)
            raise

    def _wants(self, dom: Domain, run_dir: Path, rp: RunPaths, accel: str,
               pools: list[Path]) -> list[tuple[str, int]]:  # fmt: skip
        """Every path the QEMU opens, with the access it needs."""
        backing = backing_files(dom, pools)
        fd = os.open(rp.console_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)
        wants: list[tuple[str, int]] = [(str(run_dir.parent), X), (rp.console_log, R | W)]
        wants += [(p, R) for p in (dom.boot.kernel, dom.boot.initrd, rp.firmware_code) if p]
        if rp.nvram:
            wants.append((rp.nvram, R | W))
        if dom.emulator:  # a custom emulator (wrapper scripts): the QEMU user runs it
            wants.append((dom.emulator, R | X))
        for disk in dom.disks:
            ro = disk.readonly or disk.device is DiskDevice.CDROM
            wants.append((disk.path, R if ro else R | W))
        wants += [(b, R) for b in backing]  # a block-commit reopens them rw: see expose()
        if accel == "kvm" and os.path.exists("/dev/kvm"):
            wants.append(("/dev/kvm", R | W))
        if os.path.exists("/dev/net/tun"):  # taps (also hot-plugged ones): usually 0666
            wants.append(("/dev/net/tun", R | W))
        return wants

    def _finish(self, dom: Domain, u: confine.QemuUser, run_dir: Path) -> Prepared:
        os.chown(run_dir, u.uid, u.gid)  # virtkit's own directory, removed when QEMU exits
        os.chmod(run_dir, 0o700)
        plan = cgroup.prepare(self._cgroups, scope_name(dom.name, run_dir),
                              max(dom.memory_mib, dom.max_memory_mib or 0))  # fmt: skip
        if plan.note:
            log.warning("domain %s: %s", dom.name, plan.note)
        wrapper = confine.wrapper_argv(u, plan.procs, confine.setpriv_binary())
        return Prepared(
            tuple(wrapper), u.uid, plan.path, plan.note, plan.limits, cgroup_dirs=plan.dirs
        )

    def launched(self, name: str, uid: int | None, pid: int) -> None:
        """QEMU ``pid`` runs as ``uid`` now (also on re-attach after a daemon restart)."""
        if self.uids is not None and uid is not None:
            self.uids.hold(uid, self._key(name), pid)

    async def expose(self, e: Entry, path: str, *, write: bool) -> None:
        """Let the running QEMU of ``e`` open ``path`` (before a QMP command that names
        it); given back with the rest when the guest stops."""
        uid = e.sup.record.qemu_uid if e.sup is not None else None
        name = e.domain.name
        if not self.enabled or uid is None:
            return
        base = self.user()
        u = confine.QemuUser("", uid, uid if self.uids else base.gid, base.groups)
        self._borrow(name, u, [(path, R | W if write else R)])

    def release(self, *cgroup_dirs: str) -> None:
        """After QEMU exited: remove its cgroups (retried once: a non-child is reaped late)."""
        cgroup.remove(*cgroup_dirs)
        left = [d for d in cgroup_dirs if d and os.path.isdir(d)]
        if left:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().call_later(1.0, lambda: cgroup.remove(*left))


def backing_files(dom: Domain, pools: list[Path]) -> list[str]:
    """The backing files of the domain's qcow2 images (checked against the pools)."""
    from virtkit.storage.volumes import check_chain

    out: list[str] = []
    for d in dom.disks:
        if d.format is DiskFormat.QCOW2:
            allowed = [Path(os.path.realpath(d.path)).parent, *pools]
            out += check_chain(Path(d.path), "qcow2", allowed)
    return out
