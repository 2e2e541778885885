"""Confining a domain's QEMU (system mode): user, files, cgroup, command prefix.

``VIRTKIT_CONFINE`` (auto|on|off; auto = on for a system-mode daemon running as
root) and ``VIRTKIT_QEMU_USER`` (default ``virtkit-qemu``, made by scripts/setup)
choose it. A confined QEMU runs as that user with no capabilities and
no_new_privs (runtime/confine.py), in its own cgroup (runtime/cgroup.py), and
reaches only what its domain names (runtime/access.py): its run directory
(0700, owned by the QEMU user; QMP and serial sockets 0600 inside), its console
log, its writable images (chowned) and read-only files (ACL read). New files
handed to a running QEMU (hot-plugged disks, snapshot overlays) go through
``expose`` first. In session mode QEMU runs as the invoking user, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from virtkit.daemon.settings import Settings
from virtkit.errors import HostError
from virtkit.model.domain import DiskDevice, DiskFormat, Domain, NicType
from virtkit.paths import Paths
from virtkit.qemu.argv import RunPaths
from virtkit.runtime import access, cgroup, confine


def scope_name(name: str, run_dir: Path) -> str:
    """``NAME-HASH``: the daemon's run directory in the hash, so two daemons on one host
    (a migration's source and destination run the same domain) never share a cgroup."""
    import hashlib

    return f"{name}-{hashlib.sha256(str(run_dir.parent).encode()).hexdigest()[:8]}"


log = logging.getLogger("virtkit.daemon")


@dataclass(frozen=True)
class Prepared:
    wrapper: tuple[str, ...] = ()
    uid: int | None = None
    cgroup: str = ""
    note: str = ""
    limits: dict[str, str] = field(default_factory=dict)
    cgroup_dirs: tuple[str, ...] = ()


class Confiner:
    def __init__(self, paths: Paths, settings: Settings,
                 cgroup_root: Path | bool = True) -> None:  # fmt: skip
        self.paths = paths
        self.settings = settings
        if settings.confine == "on":
            self.enabled = True
        elif settings.confine == "off":
            self.enabled = False
        else:
            self.enabled = paths.mode == "system" and os.geteuid() == 0
        self._user: confine.QemuUser | None = None
        # cgroup_root: True = find the hierarchies, False = no cgroup, a Path = that cgroup2
        self._cgroups: cgroup.Layout = (
            cgroup.Layout(cgroup_root) if isinstance(cgroup_root, Path)
            else cgroup.detect() if cgroup_root else cgroup.Layout()
        )  # fmt: skip

    def user(self) -> confine.QemuUser:
        if self._user is None:
            if os.geteuid() != 0:
                raise HostError(
                    "VIRTKIT_CONFINE=on needs a daemon running as root (it switches QEMU to "
                    f"the user {self.settings.qemu_user!r}); unset it in session mode"
                )
            self._user = confine.lookup_user(self.settings.qemu_user)
        return self._user

    def owner(self) -> int | None:
        """The uid confined QEMUs run as (taps are created for it), None when not confined."""
        return self.user().uid if self.enabled else None

    def check(self) -> None:
        """At daemon start: fail early (and clearly) when confinement cannot work."""
        if self.enabled:
            self.user()
            confine.setpriv_binary()

    # -- per start ---------------------------------------------------------------------------

    def prepare(self, dom: Domain, run_dir: Path, rp: RunPaths, accel: str,
                pools: list[Path]) -> Prepared:  # fmt: skip
        """Synchronous (run it in a thread): grant access, make the cgroup, build the prefix."""
        if not self.enabled:
            return Prepared()
        u = self.user()
        backing = backing_files(dom, pools)
        gids = (u.gid, *u.groups)
        for d in reversed(run_dir.parents):
            access.grant_search(str(d), u.uid, gids)
        os.chown(run_dir, u.uid, u.gid)
        os.chmod(run_dir, 0o700)
        fd = os.open(rp.console_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)
        access.grant_path(rp.console_log, u.uid, gids, write=True, gid=u.gid)
        for p in (dom.boot.kernel, dom.boot.initrd, rp.firmware_code):
            if p:
                access.grant_path(p, u.uid, gids, write=False, gid=u.gid)
        if rp.nvram:
            access.grant_path(rp.nvram, u.uid, gids, write=True, gid=u.gid)
        if dom.emulator:  # a custom emulator (wrapper scripts): the QEMU user runs it
            access.grant_path(dom.emulator, u.uid, gids, write=False, gid=u.gid, execute=True)
        for disk in dom.disks:
            ro = disk.readonly or disk.device is DiskDevice.CDROM
            access.grant_path(disk.path, u.uid, gids, write=not ro, gid=u.gid)
        for b in backing:  # a block-commit reopens them read-write: see expose()
            access.grant_path(b, u.uid, gids, write=False, gid=u.gid)
        if accel == "kvm" and os.path.exists("/dev/kvm"):
            access.grant_device("/dev/kvm", u.uid)
        tun = "/dev/net/tun"  # taps (also hot-plugged ones): usually 0666, not everywhere
        if os.path.exists(tun) and os.stat(tun).st_mode & 0o006 != 0o006:
            access.grant_device(tun, u.uid)
        if any(n.type is not NicType.USER for n in dom.nics) and os.path.exists("/dev/net/tun"):
            access.grant_device("/dev/net/tun", u.uid)  # QEMU attaches to its uid-owned taps
        plan = cgroup.prepare(self._cgroups, scope_name(dom.name, run_dir),
                              max(dom.memory_mib, dom.max_memory_mib or 0))  # fmt: skip
        if plan.note:
            log.warning("domain %s: %s", dom.name, plan.note)
        wrapper = confine.wrapper_argv(u, plan.procs, confine.setpriv_binary())
        return Prepared(
            tuple(wrapper), u.uid, plan.path, plan.note, plan.limits, cgroup_dirs=plan.dirs
        )

    async def expose(self, path: str, *, write: bool) -> None:
        """Let the running QEMUs open ``path`` (before a QMP command that names it)."""
        if not self.enabled:
            return
        u = self.user()
        await asyncio.get_running_loop().run_in_executor(
            None,
            lambda: access.grant_path(path, u.uid, (u.gid, *u.groups), write=write, gid=u.gid),
        )

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
