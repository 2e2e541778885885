"""The install job (virt-install's flow), run by the daemon with a revert stack.

1. check everything that can be checked without side effects (name free, files there,
   new disks' directories writable);
2. resolve the install media (ISO, tree or URL: kernel + initrd), inject files;
3. create new disks, write the cloud-init seed;
4. define the final domain (it boots from disk), unless --transient;
5. boot the installer: media kernel + initrd with --extra-args, on_reboot=destroy,
   the ISO attached as a CD-ROM;
6. when the installer reboots, the daemon starts the domain again from its final
   definition (unless --noreboot).
A failure at any step undoes the steps before it: no half-created disks, no
defined domain, no left-over files.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import io
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from virtkit.errors import ConfigError, HostError, NotFoundError
from virtkit.model.domain import (
    Action,
    Boot,
    Disk,
    DiskBus,
    DiskDevice,
    DiskFormat,
    Domain,
    normalize,
)
from virtkit.model.install import InstallMethod, InstallSpec
from virtkit.model.profile import is_microvm
from virtkit.qemu.argv import RunPaths, build_argv
from virtkit.revert import RevertStack

if TYPE_CHECKING:
    from virtkit.daemon.service import Service

log = logging.getLogger("virtkit.install")


@dataclass
class InstallResult:
    domain: dict[str, Any]
    install_boot: bool
    warnings: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    root_password: str | None = None  # shown once to the user who asked to generate it


def _precheck(svc: Service, spec: InstallSpec) -> None:
    dom = spec.domain
    if dom.name in svc.entries:
        raise ConfigError(
            f"a domain named {dom.name!r} already exists; pick another --name or "
            f"`virtkit undefine {dom.name}` first"
        )
    new = {d.path for d in spec.new_disks}
    for disk in dom.disks:
        if disk.path in new:
            parent = Path(disk.path).parent
            probe = parent
            while not probe.exists() and probe != probe.parent:
                probe = probe.parent
            if not probe.is_dir() or not os.access(probe, os.W_OK):
                raise ConfigError(
                    f"cannot create disk {disk.path}: directory {probe} is not writable; "
                    "pick a path in a writable directory"
                )
        elif not os.path.exists(disk.path):
            if disk.device is DiskDevice.CDROM:
                raise NotFoundError(f"cdrom image {disk.path} does not exist")
            raise ConfigError(
                f"disk {disk.path} does not exist and no size was given; add ,size=GiB to "
                "--disk to create it, or point path= at an existing image"
            )
    for f in spec.initrd_inject:
        if not os.path.isfile(f):
            raise NotFoundError(f"--initrd-inject file {f} does not exist")
    if spec.method is InstallMethod.CDROM and spec.cdrom and not os.path.exists(spec.cdrom):
        raise NotFoundError(f"--cdrom {spec.cdrom} does not exist")
    if spec.extra_args and spec.method is not InstallMethod.LOCATION:
        raise ConfigError("--extra-args only works with --location (the kernel comes from it)")


async def _resolve_volumes(svc: Service, spec: InstallSpec) -> InstallSpec:
    """--disk vol=POOL/NAME: put each volume's real path and recorded format in place."""
    from virtkit.daemon.storage.pools import resolve_volume

    loop = asyncio.get_running_loop()
    disks = list(spec.domain.disks)
    for ref in spec.volumes:
        path, fmt = await loop.run_in_executor(
            None, functools.partial(resolve_volume, svc, ref.pool, ref.name)
        )
        disks[ref.index] = disks[ref.index].model_copy(
            update={"path": path, "format": DiskFormat(fmt)}
        )
    domain = spec.domain.model_copy(update={"disks": disks})
    return spec.model_copy(update={"domain": domain, "volumes": []})


def _place_new_disks(svc: Service, spec: InstallSpec) -> InstallSpec:
    """``--disk size=N`` without path=: the daemon, not the client, picks the file: a free
    name in the pool's directory (``default`` lives under this daemon's state directory)."""
    from virtkit.daemon.storage.pools import manager

    if not any(nd.pool for nd in spec.new_disks):
        return spec
    mgr = manager(svc)
    wished = {nd.volume for nd in spec.new_disks if nd.volume}
    taken: set[str] = set()
    moved: dict[str, str] = {}
    new = []
    for nd in spec.new_disks:
        if nd.pool is None or nd.volume is None:
            new.append(nd)
            continue
        _, target = mgr.active(nd.pool)
        known = mgr.db.volumes(nd.pool)
        stem, dot, ext = nd.volume.rpartition(".")
        name, i = nd.volume, 0
        while (
            name in taken
            or (name != nd.volume and name in wished)
            or name in known
            or os.path.lexists(target / name)
        ):
            i += 1
            name = f"{stem}-{i}{dot}{ext}" if dot else f"{nd.volume}-{i}"
        taken.add(name)
        moved[nd.path] = str(target / name)
        new.append(nd.model_copy(update={"path": str(target / name), "volume": name}))
    disks = [d.model_copy(update={"path": moved[d.path]}) if d.path in moved else d
             for d in spec.domain.disks]  # fmt: skip
    domain = spec.domain.model_copy(update={"disks": disks})
    return spec.model_copy(update={"domain": domain, "new_disks": new})


async def _create_disks(svc: Service, spec: InstallSpec, revert: RevertStack,
                        result: InstallResult) -> None:  # fmt: skip
    from virtkit.daemon.storage.pools import manager
    from virtkit.storage import disks

    loop = asyncio.get_running_loop()
    for nd in spec.new_disks:
        if nd.pool is not None and nd.volume is not None:  # a volume the pool records
            mgr = manager(svc)
            await mgr.vol_create(nd.pool, nd.volume, nd.size_bytes, nd.format.value,
                                 None if nd.sparse else nd.size_bytes, None, None)  # fmt: skip
            result.created.append(nd.path)
            revert.push(functools.partial(mgr.vol_delete, nd.pool, nd.volume),
                        f"volume {nd.path}")  # fmt: skip
            continue
        create = functools.partial(disks.create_disk, Path(nd.path), nd.size_bytes,
                                   nd.format.value, sparse=nd.sparse)  # fmt: skip
        if await loop.run_in_executor(None, create):
            result.created.append(nd.path)
            revert.push(functools.partial(_unlink, Path(nd.path)), f"disk {nd.path}")


def _cdrom(path: Path) -> Disk:
    return Disk(path=str(path), device=DiskDevice.CDROM, bus=DiskBus.SATA, format=DiskFormat.RAW)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


def _inject(initrd: Path, files: list[str], out: Path) -> Path:
    """Append a cpio with ``files`` (at the archive root, like virt-install) to ``initrd``."""
    from virtkit.guests.cpio import CpioWriter

    buf = io.BytesIO()
    with gzip.GzipFile(filename="", fileobj=buf, mode="wb", mtime=0) as gz:
        w = CpioWriter(gz)
        for f in files:
            w.add_file(os.path.basename(f), Path(f).read_bytes(), 0o644)
        w.close()
    out.write_bytes(initrd.read_bytes() + buf.getvalue())
    return out


async def run_install(svc: Service, spec: InstallSpec, *, dry_run: bool = False) -> InstallResult:
    from virtkit.storage import cloudinit, location

    spec = _place_new_disks(svc, spec)
    if spec.volumes:
        spec = await _resolve_volumes(svc, spec)
    _precheck(svc, spec)
    dom = normalize(spec.domain, new_uuid=svc.new_uuid, new_mac=svc.new_mac)
    name = dom.name
    loop = asyncio.get_running_loop()
    result = InstallResult(domain={}, install_boot=False)
    boot_dir = svc.paths.state_dir / "boot" / name
    async with RevertStack() as revert:
        install_disks = list(dom.disks)
        install_boot: Boot | None = None
        work_dir: Path | None = None  # where the installer's kernel, initrd (and ISO) go
        if spec.method is InstallMethod.LOCATION:
            assert spec.location is not None
            work = boot_dir if not dry_run else svc.paths.cache_dir / f"dry-{name}-{os.getpid()}"
            work.mkdir(parents=True, exist_ok=True)
            work_dir = work
            revert.push(lambda: shutil.rmtree(work, ignore_errors=True), "boot files")
            last = [0.0]

            def progress(done: int, total: int | None) -> None:
                now = time.monotonic()
                if now - last[0] >= 0.25 or (total and done >= total):
                    last[0] = now
                    detail = f"{done} {total or 0}"
                    loop.call_soon_threadsafe(svc.bus.publish, name, "progress", detail)

            media = await loop.run_in_executor(
                None,
                lambda: location.resolve_location(
                    spec.location or "", work, kernel=spec.location_kernel,
                    initrd=spec.location_initrd, checksum=spec.checksum, progress=progress,
                ),
            )  # fmt: skip
            initrd = media.initrd
            if spec.initrd_inject:
                initrd = _inject(initrd, spec.initrd_inject, work / "initrd-injected.img")
            install_boot = Boot(kernel=str(media.kernel), initrd=str(initrd),
                                cmdline=spec.extra_args)  # fmt: skip
            if media.iso is not None:
                install_disks.append(_cdrom(media.iso))
        booted = dom
        if install_boot is not None or spec.method is InstallMethod.CDROM:
            order = ["cdrom", "hd"] if spec.method is InstallMethod.CDROM else list(dom.boot.order)
            booted = dom.model_copy(update={
                "boot": install_boot or dom.boot.model_copy(update={"order": order}),
                "disks": install_disks,
            })  # fmt: skip
        await _preflight(svc, spec, dom, booted, dry_run=dry_run, ours=work_dir)
        if dry_run:
            await revert.revert()
            from virtkit.formats.redact import public_mapping

            result.domain = public_mapping(dom)  # no secrets in API output
            return result
        await _create_disks(svc, spec, revert, result)
        if spec.cloud_init is not None:
            seed = await _seed(svc, spec, dom, cloudinit, result)
            revert.push(lambda: seed.unlink(missing_ok=True), "cloud-init seed")
            install_disks.append(_cdrom(seed))
        if spec.transient:
            svc.add_transient(dom)
        else:
            await svc.define(config=dom.model_dump(mode="json", exclude_defaults=True),
                             source="virt-install")  # fmt: skip
        revert.push(lambda: svc.forget_definition(name), "definition")
        if spec.autostart and not spec.transient:
            await svc.set_autostart(name, True)
        boot_dom: Domain | None = None
        if (
            install_boot is not None
            or spec.method is InstallMethod.CDROM
            or (len(install_disks) != len(dom.disks))
        ):
            order = ["cdrom", "hd"] if spec.method is InstallMethod.CDROM else list(dom.boot.order)
            boot_dom = dom.model_copy(update={
                "boot": install_boot or dom.boot.model_copy(update={"order": order}),
                "disks": install_disks, "on_reboot": Action.DESTROY,
            })  # fmt: skip
        entry = await svc.start(name, paused=spec.autoconsole, boot=boot_dom)
        if boot_dom is not None:
            entry.after_install = "stop" if spec.noreboot else "restart"
            result.install_boot = True
        revert.commit()
        result.domain = svc.summary(entry)
        return result


async def _preflight(svc: Service, spec: InstallSpec, dom: Domain, booted: Domain, *,
                     dry_run: bool, ours: Path | None) -> None:  # fmt: skip
    """What define and start will check, made before anything is created: the same
    checks (the same functions), so a dry run fails where the real install would.
    ``dom`` is the final definition, ``booted`` the installer's boot of it. The disks the
    install creates do not exist yet, and the installer files virtkit fetched into
    ``ours`` are its own: both are left out of the file checks."""
    from virtkit.daemon.auth.roles import check_domain
    from virtkit.daemon.domains.hoststart import host_checks
    from virtkit.daemon.network import service as networks
    from virtkit.model.domain import NicType
    from virtkit.model.network import DEFAULT_NETWORK
    from virtkit.network import taps

    new = {nd.path for nd in spec.new_disks}
    mine = str(ours) + "/" if ours is not None else None

    def existing(d: Domain) -> Domain:
        disks = [x for x in d.disks if x.path not in new
                 and not (mine and x.path.startswith(mine))]  # fmt: skip
        out = d.model_copy(update={"disks": disks})
        if mine and (d.boot.kernel or "").startswith(mine):
            out = out.model_copy(update={"boot": dom.boot})
        return out

    loop = asyncio.get_running_loop()
    check_domain(dom, [*svc.pool_targets(), svc.paths.state_dir / "images"])  # as define
    for e in svc.entries.values():
        if dom.uuid is not None and e.domain.uuid == dom.uuid:
            raise ConfigError(f"uuid {dom.uuid} is already used by domain {e.domain.name!r}")
    ci = spec.cloud_init
    if ci is not None:
        for label, f in (("root-password-file", ci.root_password_file),
                         ("user-data", ci.user_data), ("meta-data", ci.meta_data),
                         *(("ssh-key", k) for k in ci.ssh_keys)):  # fmt: skip
            if f and not os.path.isfile(f):
                raise NotFoundError(f"--cloud-init {label} file {f} does not exist")
    for d in (existing(dom), existing(booted)):  # as define, then as start
        svc._check_files(d)
    svc._check_disk_users(dom.name, existing(booted))
    # the NICs: bridges exist, networks are defined and active (``default`` is made on
    # first use by the start itself, so a missing one is fine here)
    made_on_use = DEFAULT_NETWORK
    if networks.manager(svc).db.get(made_on_use) is not None:
        made_on_use = ""
    nics = [n for n in booted.nics if not (n.type is NicType.NETWORK and n.source == made_on_use)]
    wired = booted.model_copy(update={"nics": nics})
    taps.check_bridges(wired, await networks.bridges_for(svc, wired))
    host_checks(svc, dom.name, booted, dry_run=True)  # overcommit, NUMA, pinning, vfio
    await loop.run_in_executor(None, svc._check_chains, existing(booted))
    if not dry_run:
        return  # the start probes QEMU and builds its command line itself
    if booted.boot.uefi:
        from virtkit.host.firmware import find_ovmf

        if find_ovmf() is None:
            raise HostError(
                "UEFI boot needs OVMF firmware, which is not installed: "
                "apt-get install ovmf (or --boot uefi=off)"
            )
    caps = await svc.caps_for(booted)
    accel, _ = await svc.accel.resolve(booted.accel, caps)
    if not is_microvm(booted):
        rp = RunPaths(qmp="/dev/null", serial="/dev/null", pidfile="/dev/null",
                      console_log="/dev/null",
                      firmware_code="/dev/null" if booted.boot.uefi else None,
                      nvram="/dev/null" if booted.boot.uefi else None)  # fmt: skip
        build_argv(booted, caps, rp, accel)  # the devices, machine and CPU QEMU can give


async def _seed(svc: Service, spec: InstallSpec, dom: Domain, cloudinit: Any,
                result: InstallResult) -> Path:  # fmt: skip
    ci = spec.cloud_init
    assert ci is not None
    password = None
    if ci.root_password_generate:
        password = cloudinit.generate_password()
        result.root_password = password
    elif ci.root_password_file:
        password = Path(ci.root_password_file).read_text().strip()
    keys = [Path(k).read_text().strip() for k in ci.ssh_keys]
    user_data = Path(ci.user_data).read_text() if ci.user_data else None
    meta_data = Path(ci.meta_data).read_text() if ci.meta_data else None
    dest = svc.paths.state_dir / "images" / f"{dom.name}-cidata.iso"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        dest.unlink()
    loop = asyncio.get_running_loop()
    return Path(await loop.run_in_executor(None, lambda: cloudinit.make_seed_iso(
        dest, hostname=dom.name, instance_id=dom.uuid or dom.name, user_data=user_data,
        meta_data=meta_data, root_password=password, ssh_keys=keys, disable=ci.disable,
    )))  # fmt: skip
