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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from virtkit.errors import ConfigError, NotFoundError
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

if TYPE_CHECKING:
    from virtkit.daemon.service import Service

log = logging.getLogger("virtkit.install")


class RevertStack:
    """Undo, in reverse order, the steps that succeeded (Incus' revert pattern)."""

    def __init__(self) -> None:
        self._undo: list[tuple[str, Callable[[], Awaitable[None] | None]]] = []

    def push(self, what: str, undo: Callable[[], Awaitable[None] | None]) -> None:
        self._undo.append((what, undo))

    async def run(self) -> None:
        while self._undo:
            what, undo = self._undo.pop()
            try:
                result = undo()
                if result is not None:
                    await result
            except Exception as exc:  # keep undoing the rest
                log.error("revert of %s failed: %r", what, exc)

    def clear(self) -> None:
        self._undo.clear()


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
    from virtkit.daemon.pools import resolve_volume

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
    from virtkit.storage import cloudinit, disks, location

    if spec.volumes:
        spec = await _resolve_volumes(svc, spec)
    _precheck(svc, spec)
    dom = normalize(spec.domain, new_uuid=svc.new_uuid, new_mac=svc.new_mac)
    name = dom.name
    loop = asyncio.get_running_loop()
    revert = RevertStack()
    result = InstallResult(domain={}, install_boot=False)
    boot_dir = svc.paths.state_dir / "boot" / name
    try:
        install_disks = list(dom.disks)
        install_boot: Boot | None = None
        if spec.method is InstallMethod.LOCATION:
            assert spec.location is not None
            work = boot_dir if not dry_run else svc.paths.cache_dir / f"dry-{name}-{os.getpid()}"
            work.mkdir(parents=True, exist_ok=True)
            revert.push("boot files", lambda: shutil.rmtree(work, ignore_errors=True))
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
        if dry_run:
            await revert.run()
            from virtkit.formats.redact import public_mapping

            result.domain = public_mapping(dom)  # no secrets in API output
            return result
        for nd in spec.new_disks:
            create = functools.partial(disks.create_disk, Path(nd.path), nd.size_bytes,
                                       nd.format.value, sparse=nd.sparse)  # fmt: skip
            if await loop.run_in_executor(None, create):
                result.created.append(nd.path)
                revert.push(f"disk {nd.path}", functools.partial(_unlink, Path(nd.path)))
        if spec.cloud_init is not None:
            seed = await _seed(svc, spec, dom, cloudinit, result)
            revert.push("cloud-init seed", lambda: seed.unlink(missing_ok=True))
            install_disks.append(_cdrom(seed))
        if spec.transient:
            svc.add_transient(dom)
        else:
            await svc.define(config=dom.model_dump(mode="json", exclude_defaults=True),
                             source="virt-install")  # fmt: skip
        revert.push("definition", lambda: svc.forget_definition(name))
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
        revert.clear()
        result.domain = svc.summary(entry)
        return result
    except BaseException:
        await revert.run()
        raise


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
