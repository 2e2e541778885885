"""The service: owns all domains, their supervisors, locks, state store and events.

Every verb the API exposes is a coroutine here. State-changing verbs take the
domain's operation lock. Listing and info answer from memory (no QMP round
trips), so they cost O(1) per domain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
import uuid as uuidlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from virtkit.daemon.auth.roles import check_domain, taint_reasons
from virtkit.daemon.domains.accel import AccelResolver
from virtkit.daemon.domains.autorestart import RestartPolicy
from virtkit.daemon.domains.confinement import Confiner
from virtkit.daemon.domains.hoststart import host_checks, release_managed, with_pins
from virtkit.daemon.events import EventBus
from virtkit.daemon.locks import DomainKey, OpLocks
from virtkit.daemon.migration.layout import replug
from virtkit.daemon.settings import Settings
from virtkit.daemon.store import Store
from virtkit.errors import ConfigError, HostError, NotFoundError, StateError, VirtkitError
from virtkit.formats.domfile import domain_from_mapping, domain_from_text, domain_to_mapping
from virtkit.fsutil import atomic_write_bytes
from virtkit.host.bootfiles import check_pvh_kernel
from virtkit.host.facts import HOST, HostRoot
from virtkit.host.facts import tsc_khz as _tsc_khz
from virtkit.host.pci import Writer, sysfs_write
from virtkit.model.domain import (
    Action,
    Disk,
    DiskDevice,
    DiskFormat,
    DiskType,
    Domain,
    normalize,
)
from virtkit.model.profile import is_microvm
from virtkit.model.state import ACTIVE_STATES, Reason, State
from virtkit.network import taps
from virtkit.paths import Paths
from virtkit.qemu import caps as capsmod
from virtkit.qemu.argv import RunPaths, build_argv
from virtkit.qemu.layout import Layout, apply_layout, hotplugged
from virtkit.qemu.qmp import Monitor
from virtkit.runtime import proc
from virtkit.runtime.record import RuntimeRecord
from virtkit.runtime.supervisor import Hooks, Policy, Supervisor, read_pidfile

log = logging.getLogger("virtkit.daemon")


def _setup_for(dom: Domain) -> Callable[[Monitor], Awaitable[None]] | None:
    """QMP steps before the guest's first instruction: secrets and the balloon target."""
    password = dom.graphics.password
    target = dom.current_memory_mib if dom.current_memory_mib != dom.memory_mib else None
    if not password and not target:
        return None

    async def setup(mon: Monitor) -> None:
        if password:
            await mon.execute("set_password", {"protocol": "vnc", "password": password})
        if target:
            await mon.execute("balloon", {"value": target * 1024 * 1024})

    return setup


def _file_id(path: str) -> tuple[int, int] | None:
    """(device, inode): the same file under any name, hard link or symlink."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def random_mac() -> str:
    b = os.urandom(3)
    return f"52:54:00:{b[0]:02x}:{b[1]:02x}:{b[2]:02x}"


@dataclass
class Entry:
    """What the daemon knows about one domain."""

    domain: Domain
    autostart: bool = False
    sup: Supervisor | None = None
    state: State = State.SHUTOFF
    reason: Reason = Reason.UNKNOWN
    last_record: RuntimeRecord | None = None
    persistent: bool = True  # transient domains vanish when they stop
    after_install: str | None = None  # "restart" or "stop": what to do when the installer ends
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.sup is not None and self.sup.alive


class Service:
    def __init__(
        self,
        paths: Paths,
        *,
        new_uuid: Callable[[], str] = lambda: str(uuidlib.uuid4()),
        new_mac: Callable[[], str] = random_mac,
        settings: Settings | None = None,
        host: HostRoot | None = None,
    ) -> None:
        self.paths = paths
        self.settings = settings or Settings()
        self.host = host or HOST  # where /sys, /proc and /dev are (tests: a fake tree)
        self.sysfs_write: Writer = sysfs_write  # PCI bind/unbind (tests: a fake kernel)
        self.store = Store(paths.db)
        self.locks = OpLocks(self.settings.lock_wait_s)
        self.bus = EventBus(self.store)
        self.accel = AccelResolver(paths)
        self.confiner = Confiner(paths, self.settings, self.store)
        self.confiner.is_running = lambda n: n in self.entries and self.entries[n].active
        self.restarts = RestartPolicy(backoff_s=self.settings.restart_backoff_s)
        self.new_uuid = new_uuid
        self.new_mac = new_mac
        self.entries: dict[str, Entry] = {}
        self._caps: dict[str, capsmod.Caps] = {}
        self.hooks = Hooks(self._on_state, self._on_event, self._on_exit)
        self.started_at = time.time()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- startup and reconciliation ---------------------------------------------------------

    async def open(self) -> None:
        """Load state and re-attach to every QEMU that still runs (see reconcile.py)."""
        from virtkit.daemon.reconcile import reconcile

        await reconcile(self)

    async def close(self) -> None:
        """Detach from guests (they keep running) and close the store."""
        for entry in self.entries.values():
            if entry.sup is not None and entry.sup.monitor is not None:
                await entry.sup.monitor.close()
        self.store.close()

    def entry(self, name: str) -> Entry:
        try:
            return self.entries[name]
        except KeyError:
            raise NotFoundError(
                f"domain {name!r} not found; `virtkit list --all` shows the defined domains"
            ) from None

    # -- hooks from supervisors ---------------------------------------------------------------

    def _entry_for(self, sup: Supervisor) -> Entry | None:
        e = self.entries.get(sup.name)
        return e if e is not None and e.sup is sup else None

    def _on_state(self, sup: Supervisor) -> None:
        e = self._entry_for(sup)
        if e is None or not sup.alive:
            return
        e.state, e.reason = sup.state, sup.reason
        self.bus.publish(sup.name, "state", f"{sup.state} ({sup.reason})")

    def _on_event(self, name: str, kind: str, detail: str) -> None:
        self.bus.publish(name, kind, detail)

    def _on_exit(self, sup: Supervisor, reason: Reason) -> None:
        e = self._entry_for(sup)
        if e is None:
            return
        e.sup = None
        e.last_record = sup.record
        e.state, e.reason = State.SHUTOFF, reason
        self.store.drop_runtime(sup.name, State.SHUTOFF, reason)
        with contextlib.suppress(OSError):
            shutil.rmtree(sup.record.run_dir)
        self.confiner.release(*(sup.record.cgroup_dirs or [sup.record.cgroup]))
        self.confiner.give_back(sup.name)  # owner/ACL changes undone, its uid freed
        with contextlib.suppress(VirtkitError):
            booted = domain_from_mapping(sup.record.domain, "runtime record")
            asyncio.get_running_loop().run_in_executor(None, taps.remove_taps, booted)
            release_managed(self, booted)  # managed PCI devices back to their host drivers
        kind = "crashed" if reason is Reason.CRASHED else "stopped"
        self.bus.publish(sup.name, kind, str(reason))
        e.extra.pop("tainted", None)  # a raw monitor command taints that QEMU only
        if reason is Reason.CRASHED and e.persistent and e.domain.on_crash is Action.RESTART:
            from virtkit.daemon.domains.autorestart import after_crash

            after_crash(self, sup.name)  # with back-off; gives up after N crashes a minute
        after, e.after_install = e.after_install, None
        if after is not None:
            self.bus.publish(sup.name, "install-finished", f"installer ended ({reason})")
            if after == "restart" and reason is Reason.SHUTDOWN:
                self.background(self._restart_after_install(sup.name))
                return
        if not e.persistent:
            self.forget_definition(sup.name)

    async def _restart_after_install(self, name: str) -> None:
        """The installer rebooted: boot the final definition (from disk), like virt-install."""
        try:
            await self.start(name)
            self.bus.publish(name, "started", "from disk after the install")
        except VirtkitError as exc:
            self.bus.publish(name, "start-failed", f"after the install: {exc.message}")
            e = self.entries.get(name)
            if e is not None and not e.persistent:
                self.forget_definition(name)

    def background(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task the service keeps a reference to (not garbage-collected)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def add_transient(self, dom: Domain) -> Entry:
        """A domain that exists only while it runs (virsh create, install --transient)."""
        if dom.name in self.entries:
            raise ConfigError(f"a domain named {dom.name!r} already exists")
        e = Entry(dom, persistent=False)
        self.entries[dom.name] = e
        return e

    def forget_definition(self, name: str) -> None:
        """Drop a shut-off domain's definition (rollback of a failed install, transients)."""
        e = self.entries.get(name)
        if e is None or e.active:
            return
        if e.persistent:
            self.store.delete_domain(name)
        del self.entries[name]
        self.locks.forget(DomainKey(name))
        self.bus.publish(name, "undefined", "removed")

    # -- define / undefine --------------------------------------------------------------------

    def _check_disk_users(self, name: str, dom: Domain) -> None:
        """A writable image belongs to one running guest at a time (QEMU's own OFD image
        locks are the second line, and also cover processes outside virtkit)."""
        mine = {_file_id(d.path): (d.path, d.readonly) for d in dom.disks}
        mine.pop(None, None)
        if not mine:
            return
        for other in self.entries.values():
            if other.sup is None or not other.sup.alive or other.domain.name == name:
                continue
            booted = other.sup.record.domain.get("disks", [])
            for d in booted:
                fid = _file_id(str(d.get("path", "")))
                if fid in mine and not (mine[fid][1] and d.get("readonly")):
                    mode = "read-only" if d.get("readonly") else "writable"
                    raise StateError(
                        f"disk {mine[fid][0]} is in use ({mode}) by running domain "
                        f"{other.domain.name!r}; a writable image can be used by one running "
                        "guest only: stop that domain, or give this one its own image "
                        "(a linked clone: qemu-img create -f qcow2 -b BASE -F FMT NEW)",
                        current=f"used by {other.domain.name}", required="not in use",
                    )  # fmt: skip

    def _check_chains(self, dom: Domain) -> None:
        """qcow2 backing files must stay beside the image or in a storage pool, name their
        format, and no layer may claim an absurd size (an image's header is untrusted)."""
        from virtkit.storage.volumes import check_chain

        pools = [*self.pool_targets(), self.paths.state_dir / "images"]
        for d in dom.disks:
            if d.format is DiskFormat.QCOW2:
                allowed = [Path(os.path.realpath(d.path)).parent, *pools]
                check_chain(Path(d.path), "qcow2", allowed)

    def _check_files(self, dom: Domain) -> None:
        """Every file the domain names exists and may be given to a guest (host/diskpaths)."""
        from virtkit.host.diskpaths import check_path

        # pools, and the installer kernels the daemon itself takes from install media
        pools = (*self.pool_targets(), self.paths.state_dir / "images",
                 self.paths.state_dir / "boot")  # fmt: skip
        private = (self.paths.state_dir, self.paths.run_dir)
        for label, p in (("kernel", dom.boot.kernel), ("initrd", dom.boot.initrd)):
            if p:
                check_path(p, label, private=private, allowed=pools, host=self.host)
        for d in dom.disks:
            ro = d.readonly or d.device is DiskDevice.CDROM
            check_path(d.path, f"disk {d.target or d.path}", block=d.type is DiskType.BLOCK,
                       write=not ro, private=private, allowed=pools, host=self.host)  # fmt: skip
        missing = []
        for label, p in (("kernel", dom.boot.kernel), ("initrd", dom.boot.initrd)):
            if p and not os.path.isfile(p):
                missing.append(f"{label} {p}")
        for d in dom.disks:
            if not os.path.exists(d.path):
                kind = "cdrom image" if d.device is DiskDevice.CDROM else "disk image"
                missing.append(f"{kind} {d.path}")
        if dom.emulator and not os.access(dom.emulator, os.X_OK):
            missing.append(f"emulator {dom.emulator}")
        if is_microvm(dom) and dom.boot.kernel and os.path.isfile(dom.boot.kernel):
            check_pvh_kernel(dom.boot.kernel)
        if missing:
            raise ConfigError(
                f"domain {dom.name!r} refers to files that do not exist: {', '.join(missing)}; "
                "create them or fix the paths"
            )

    async def define(self, text: str | None = None, config: dict[str, Any] | None = None,
                     source: str = "domain") -> Domain:  # fmt: skip
        if text is not None and text.lstrip().startswith("<"):
            from virtkit.formats.libvirt_xml import domain_from_xml

            dom = domain_from_xml(text)
        elif text is not None:
            dom = domain_from_text(text, source)
        else:
            dom = domain_from_mapping(config or {}, source)
        check_domain(dom, [*self.pool_targets(), self.paths.state_dir / "images"])
        self._check_files(dom)
        existing = self.entries.get(dom.name)
        if existing is not None:
            if dom.uuid is None or dom.uuid != existing.domain.uuid:
                raise ConfigError(
                    f"domain {dom.name!r} already exists (uuid {existing.domain.uuid}); "
                    "to change it, keep its uuid in the file, or undefine it first"
                )
            async with self.locks.hold(DomainKey(dom.name), "define"):
                dom = normalize(dom, new_uuid=self.new_uuid, new_mac=self.new_mac)
                self.store.update_domain(dom.name, domain_to_mapping(dom))
                existing.domain = dom
                self.bus.publish(dom.name, "defined", "updated")
                return dom
        for e in self.entries.values():
            if dom.uuid is not None and e.domain.uuid == dom.uuid:
                raise ConfigError(f"uuid {dom.uuid} is already used by domain {e.domain.name!r}")
        dom = normalize(dom, new_uuid=self.new_uuid, new_mac=self.new_mac)
        self.store.insert_domain(dom.name, dom.uuid or "", domain_to_mapping(dom))
        self.entries[dom.name] = Entry(dom)
        self.bus.publish(dom.name, "defined", "added")
        return dom

    async def undefine(self, name: str) -> None:
        async with self.locks.hold(DomainKey(name), "undefine"):
            e = self.entry(name)
            if e.active:
                raise StateError(
                    f"domain {name!r} is {e.state}; destroy or shut it down before undefining it",
                    current=str(e.state),
                    required="shut off",
                )
            self.confiner.give_back(name)  # nothing normally: a stop gave everything back
            self.store.delete_domain(name)
            del self.entries[name]
        self.locks.forget(DomainKey(name))
        self.bus.publish(name, "undefined", "removed")

    async def set_autostart(self, name: str, enabled: bool) -> None:
        e = self.entry(name)
        self.store.set_autostart(name, enabled)
        e.autostart = enabled

    # -- lifecycle ----------------------------------------------------------------------------

    async def caps_for(self, dom: Domain) -> capsmod.Caps:
        binary = capsmod.find_qemu(dom.emulator)
        key = capsmod.binary_key(binary)
        cached = self._caps.get(binary)
        if cached is None or cached.key != key:
            cached = await capsmod.probe(binary, self.paths.cache_dir)
            self._caps[binary] = cached
        return cached

    async def start(self, name: str, paused: bool = False, boot: Domain | None = None,
                    force_boot: bool = False) -> Entry:  # fmt: skip
        """Start ``name``; ``boot`` overrides the definition for this boot only (installs).

        A managed save image is resumed from (and removed), unless ``force_boot``
        discards it (see saverestore.py).
        """
        async with self.locks.hold(DomainKey(name), "start"):
            if boot is None:
                from virtkit.daemon.domains.saverestore import start_managed

                e = await start_managed(self, name, paused, force_boot)
                if e is not None:
                    return e
            return await self._start_locked(name, paused, boot)

    async def _start_locked(self, name: str, paused: bool, boot: Domain | None,
                            incoming_fd: int | None = None, incoming_defer: bool = False,
                            layout: Layout | None = None) -> Entry:  # fmt: skip
        e = self.entry(name)
        if e.active:
            raise StateError(
                f"domain {name!r} is already {e.state}", current=str(e.state),
                required="shut off",
            )  # fmt: skip
        dom = boot or e.domain
        self._check_files(dom)
        self._check_disk_users(name, dom)
        from virtkit.daemon.network.service import bridges_for

        nets = await bridges_for(self, dom)  # managed networks: name -> bridge
        taps.check_bridges(dom, nets)
        host_checks(self, name, dom)  # overcommit, NUMA nodes, pinning, vfio groups
        await asyncio.get_running_loop().run_in_executor(None, self._check_chains, dom)
        caps = await self.caps_for(dom)
        accel, note = await self.accel.resolve(dom.accel, caps)
        run_dir = self.paths.domain_run_dir(dom.uuid or name)
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.paths.log_dir.mkdir(parents=True, exist_ok=True)
        code, nvram = self._firmware(dom)
        rp = RunPaths(
            qmp=str(run_dir / "qmp.sock"), serial=str(run_dir / "serial.sock"),
            pidfile=str(run_dir / "qemu.pid"),
            console_log=str(self.paths.log_dir / f"{name}.console.log"),
            firmware_code=code, nvram=nvram,
        )  # fmt: skip
        argv = build_argv(dom, caps, rp, accel, incoming_fd, incoming_defer,
                          tsc_khz=_tsc_khz(self.host) if is_microvm(dom) else None)  # fmt: skip
        plugs: list[dict[str, Any]] = []
        if layout is not None:  # a migration destination: devices where the source has them
            argv, plugs = hotplugged(argv, layout)
            argv = apply_layout(argv, layout)
        pools = [*self.pool_targets(), self.paths.state_dir / "images"]
        conf = await self.confiner.prepare(dom, run_dir, rp, accel.value, pools,
                                           self._vfio_nodes(dom))  # fmt: skip
        from virtkit.daemon.intents import crash_point

        crash_point("start:lent")  # files lent to its uid, QEMU not started yet
        record = RuntimeRecord(
            name=name, uuid=dom.uuid or "", id=self.store.next_id(), pid=0, start_time=0,
            argv=argv, qmp=rp.qmp, serial=rp.serial, pidfile=rp.pidfile,
            console_log=rp.console_log, run_dir=str(run_dir), accel=accel.value,
            accel_note=note, started_at=time.time(), domain=domain_to_mapping(dom),
            qemu_uid=conf.uid, cgroup=conf.cgroup, confinement_note=conf.note,
            cgroup_dirs=list(conf.cgroup_dirs), cgroup_limits=dict(conf.limits),
        )  # fmt: skip
        # Write the record before spawning: a daemon killed mid-start finds it on restart
        # and rolls the half-started QEMU back (pid 0 = "starting").
        self.store.put_runtime(name, record.to_json(), State.SHUTOFF, Reason.STARTING)
        log_path = str(self.paths.log_dir / f"{name}.log")
        try:
            # pyroute2 runs its own event loop: keep it off ours
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: taps.create_taps(dom, nets, owner=conf.uid)
            )
            sup = await Supervisor.launch(
                record, log_path, self.hooks, self.policy(dom), paused=paused,
                timeout_s=self.settings.launch_timeout_s,
                setup=with_pins(dom, replug(plugs) if incoming_defer else _setup_for(dom)),
                pass_fds=() if incoming_fd is None else (incoming_fd,),
                incoming=incoming_fd is not None, wrapper=conf.wrapper,
            )  # fmt: skip
        except BaseException:
            self.confiner.release(*conf.cgroup_dirs)
            self.confiner.give_back(name)
            self.confiner.release_uid(name, conf.uid)
            release_managed(self, dom)
            await asyncio.get_running_loop().run_in_executor(None, taps.remove_taps, dom)
            self.store.drop_runtime(name, State.SHUTOFF, Reason.FAILED)
            e.state, e.reason = State.SHUTOFF, Reason.FAILED
            with contextlib.suppress(OSError):
                shutil.rmtree(run_dir)
            raise
        e.sup = sup
        e.state, e.reason = sup.state, sup.reason
        self.confiner.launched(name, conf.uid, sup.record.pid)
        self.store.put_runtime(name, record.to_json(), sup.state, sup.reason)
        how = "restored" if incoming_fd is not None else "booted"
        how = "waiting for a migration" if incoming_defer else how
        self.bus.publish(name, "started", f"{how} (accel {accel.value})")
        if not sup.alive:  # exited between launch and registration
            self._on_exit(sup, await sup.wait_exit())
        return e

    def _vfio_nodes(self, dom: Domain) -> tuple[str, ...]:
        """The VFIO device nodes QEMU opens for the domain's host devices."""
        from virtkit.host import pci

        nodes: list[str] = []
        for h in dom.hostdevs:
            group = pci.read_device(self.host, h.address).iommu_group
            for node in ("/dev/vfio/vfio", f"/dev/vfio/{group}"):
                p = str(self.host.path(node))
                if os.path.exists(p) and p not in nodes:
                    nodes.append(p)
        return tuple(nodes)

    def _firmware(self, dom: Domain) -> tuple[str | None, str | None]:
        """UEFI: OVMF code and this domain's own variable store (copied on first boot)."""
        if not dom.boot.uefi:
            return None, None
        from virtkit.host.firmware import find_ovmf

        fw = find_ovmf()
        if fw is None:
            raise HostError(
                "UEFI boot needs OVMF firmware, which is not installed: "
                "apt-get install ovmf (or set boot.uefi: false)"
            )
        nvram = self.paths.state_dir / "nvram" / f"{dom.uuid}_VARS.fd"
        if not nvram.exists():
            nvram.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(nvram, fw.vars_template.read_bytes(), 0o600)
        return str(fw.code), str(nvram)

    def pool_targets(self) -> list[Path]:
        """Directories of the active storage pools (where images count as managed)."""
        from virtkit.daemon.storage.pools import manager

        return manager(self).allowed()

    def policy(self, dom: Domain) -> Policy:
        return Policy(dom.on_poweroff, dom.on_reboot, dom.on_crash, self.settings.qmp_timeout_s)

    def _running(self, name: str, op: str) -> Supervisor:
        e = self.entry(name)
        if e.sup is None or not e.sup.alive:
            raise StateError(
                f"cannot {op} domain {name!r}: it is not running (state: {e.state}); "
                f"start it with `virtkit start {name}`",
                current=str(e.state),
                required="running",
            )
        return e.sup

    async def shutdown(self, name: str, wait_s: float = 0.0) -> Entry:
        async with self.locks.hold(DomainKey(name), "shutdown"):
            sup = self._running(name, "shut down")
            if sup.state is State.PAUSED:
                raise StateError(
                    f"domain {name!r} is paused and cannot react to the power button; "
                    f"resume it first (`virtkit resume {name}`) or destroy it",
                    current="paused",
                    required="running",
                )
            await sup.shutdown()
            self.bus.publish(name, "shutdown-requested", "ACPI power button")
        if wait_s > 0:
            try:
                await sup.wait_exit(wait_s)
            except TimeoutError:
                raise StateError(
                    f"domain {name!r} did not power off within {wait_s:g} s of the ACPI power "
                    "button; the guest may ignore it: use `virtkit destroy` to stop it",
                    current=str(sup.state),
                    required="shut off",
                ) from None
        return self.entry(name)

    async def reboot(self, name: str) -> Entry:
        async with self.locks.hold(DomainKey(name), "reboot"):
            await self._running(name, "reboot").reboot()
        return self.entry(name)

    async def reset(self, name: str) -> Entry:
        async with self.locks.hold(DomainKey(name), "reset"):
            await self._running(name, "reset").reset()
            self.bus.publish(name, "reboot", "reset")
        return self.entry(name)

    async def destroy(self, name: str, graceful: bool = False) -> Entry:
        async with self.locks.hold(DomainKey(name), "destroy"):
            e = self.entry(name)
            await self._running(name, "destroy").destroy(graceful)
        return e  # a transient domain is gone from the entries now

    async def destroy_locked(self, name: str) -> None:
        """Destroy from inside an operation that already holds the domain's lock."""
        await self._running(name, "destroy").destroy()

    async def start_locked(self, name: str, paused: bool = False) -> Entry:
        """Start from inside an operation that already holds the domain's lock."""
        return await self._start_locked(name, paused, None)

    def replace_disks(self, name: str, disks: list[Disk]) -> None:
        """New disk list (snapshots switch images): the definition and, if it runs, the
        runtime record, so the one-writer check and a restarted daemon see the new files."""
        e = self.entry(name)
        e.domain = e.domain.model_copy(update={"disks": disks})
        if e.persistent:
            self.store.update_domain(name, domain_to_mapping(e.domain))
        if e.sup is not None and e.sup.alive:
            rec = e.sup.record
            rec.domain = rec.domain | {"disks": [d.model_dump(mode="json", exclude_defaults=True)
                                                 for d in disks]}  # fmt: skip
            self.store.put_runtime(name, rec.to_json(), e.state, e.reason)

    async def suspend(self, name: str) -> Entry:
        async with self.locks.hold(DomainKey(name), "suspend"):
            sup = self._running(name, "suspend")
            if sup.state is State.PAUSED:
                raise StateError(f"domain {name!r} is already paused", current="paused",
                                 required="running")  # fmt: skip
            await sup.suspend()
            self.bus.publish(name, "suspended", "paused by user")
        return self.entry(name)

    async def resume(self, name: str) -> Entry:
        async with self.locks.hold(DomainKey(name), "resume"):
            sup = self._running(name, "resume")
            if sup.state is not State.PAUSED:
                raise StateError(f"domain {name!r} is {sup.state}, not paused",
                                 current=str(sup.state), required="paused")  # fmt: skip
            await sup.resume()
            self.bus.publish(name, "resumed", "unpaused by user")
        return self.entry(name)

    # -- views --------------------------------------------------------------------------------

    def summary(self, e: Entry) -> dict[str, Any]:
        rec = e.sup.record if e.sup else None
        return {
            "id": rec.id if rec else None,
            "name": e.domain.name,
            "uuid": e.domain.uuid or "",
            "state": str(e.state),
            "reason": str(e.reason),
            "autostart": e.autostart,
            "persistent": e.persistent,
        }

    def info(self, name: str) -> dict[str, Any]:
        e = self.entry(name)
        d = self.summary(e)
        dom = e.domain
        cpu_s, rss = e.sup.stats() if e.sup else (0.0, 0)
        rec = e.sup.record if e.sup else None
        d.update(
            vcpus=dom.vcpus, max_vcpus=dom.effective_max_vcpus,
            memory_mib=dom.memory_mib, max_memory_mib=dom.max_memory_mib or dom.memory_mib,
            cpu_time_s=round(cpu_s, 3), rss_kib=rss,
            accel=rec.accel if rec else None, accel_note=rec.accel_note if rec else "",
            pid=rec.pid if rec else None, machine=dom.machine,
            operation=self.locks.holder(DomainKey(name)),
        )  # fmt: skip
        from virtkit.daemon.domains.saverestore import managed_save_path

        d["managed_save"] = managed_save_path(self, dom).exists()
        if rec is not None and rec.qemu_uid is not None:
            who = self.settings.qemu_user if self.confiner.uids is None else "uid"
            d.update(confined=f"{who} {rec.qemu_uid}", cgroup=rec.cgroup,
                     cgroup_limits=rec.cgroup_limits,
                     confinement_note=rec.confinement_note)  # fmt: skip
        d["tainted"] = sorted(set(e.extra.get("tainted", [])) | taint_reasons(dom))
        return d

    def list(self, all_: bool) -> list[dict[str, Any]]:
        out = [self.summary(e) for e in self.entries.values() if all_ or e.state in ACTIVE_STATES]
        out.sort(key=lambda d: (d["id"] is None, d["id"] or 0, d["name"]))
        return out

    def config(self, name: str) -> dict[str, Any]:
        """The definition as exported (dumpconfig): secrets left out."""
        from virtkit.formats.redact import public_mapping

        return public_mapping(self.entry(name).domain)

    # -- console -----------------------------------------------------------------------------

    async def open_console(
        self, name: str, force: bool, on_takeover: Callable[[], None]
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        sup = self._running(name, "open the console of")
        if not sup.record.serial or not os.path.exists(sup.record.serial):
            raise StateError(f"domain {name!r} has no serial console", current="no serial",
                             required="serial: true")  # fmt: skip
        if sup.console_close is not None:
            if not force:
                raise StateError(
                    f"the console of domain {name!r} is in use by another client; "
                    "use --force to take it over",
                    current="console in use",
                    required="console free",
                )
            sup.console_close()
            await asyncio.sleep(0.05)
        reader, writer = await asyncio.open_unix_connection(sup.record.serial)

        def close() -> None:
            sup.console_close = None
            on_takeover()
            writer.close()

        sup.console_close = close
        return reader, writer

    def release_console(self, name: str, close: Callable[[], None] | None) -> None:
        e = self.entries.get(name)
        if e and e.sup and e.sup.console_close is close:
            e.sup.console_close = None

    # -- attach used by reconcile -----------------------------------------------------------

    async def adopt(self, e: Entry, record: RuntimeRecord) -> None:
        sup = await Supervisor.attach(record, self.hooks, self.policy(e.domain))
        self.confiner.launched(record.name, record.qemu_uid, record.pid)
        e.sup = sup
        e.state, e.reason = sup.state, sup.reason

    def kill_half_started(self, record: RuntimeRecord) -> bool:
        """A start interrupted by a daemon crash: kill its QEMU if one came up.

        QEMU may not have written its pidfile yet: every process whose command line
        holds this start's QMP socket path (unique per domain) is that QEMU.
        """
        import signal

        pids = set(proc.pids_with_marker(record.qmp))
        pid = read_pidfile(record.pidfile)
        st = proc.start_time(pid) if pid is not None else None
        if pid is not None and st is not None and proc.is_same_process(pid, st, record.qmp):
            pids.add(pid)
        for p in pids:
            proc.kill(p, signal.SIGKILL)
        return bool(pids)
