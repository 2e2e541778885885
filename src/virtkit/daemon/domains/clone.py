"""clone (virt-clone's job): a new domain from a shut-off one, new uuid and MACs.

Writable disks are copied in full (``qemu-img convert``, sparse) or, with
``linked``, become copy-on-write overlays. Read-only disks and CD-ROMs are
shared. A failure removes everything created so far (revert stack).

A linked clone freezes the original image: it becomes the read-only backing
file of two new qcow2 overlays, one for the clone and one that the original
domain uses from now on (like an external snapshot). Both guests can then run
at once: each writes only its own overlay, and QEMU's image locking is
satisfied (a backing file may not change under its readers, so the original
image must never be written again). Creating two overlays is O(1) in the
image size.
"""

from __future__ import annotations

import asyncio
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from virtkit.daemon.locks import DomainKey
from virtkit.errors import ConfigError, StateError
from virtkit.formats.domfile import domain_to_mapping
from virtkit.model.domain import Disk, DiskDevice, DiskFormat, Domain, check_name
from virtkit.revert import RevertStack
from virtkit.storage import images

if TYPE_CHECKING:
    from virtkit.daemon.service import Service


@dataclass
class CloneResult:
    name: str
    disks: list[dict[str, str]] = field(default_factory=list)  # target, source, path, mode
    original_overlays: list[str] = field(default_factory=list)


def _shared(d: Disk) -> bool:
    return d.readonly or d.device is DiskDevice.CDROM


def auto_path(orig: str, orig_name: str, new_name: str, taken: set[str],
              tag: str = "clone", suffix: str | None = None) -> Path:  # fmt: skip
    """virt-clone's rule: ``dir/<orig>-clone.ext``, or ``dir/<new>.ext`` when the image is
    named after the original domain; ``-1``, ``-2`` ... until the name is free."""
    folder, base = os.path.split(orig)
    ext = ""
    stem, dot, rest = base.rpartition(".")
    if dot and stem and len(rest) <= 7:
        base, ext = stem, "." + rest
    ext = ext if suffix is None else suffix
    clonebase = new_name if base == orig_name and tag == "clone" else f"{base}-{tag}"
    n = 0
    while True:
        name = clonebase + (f"-{n}" if n else "") + ext
        cand = os.path.join(folder, name)
        if cand not in taken and not os.path.lexists(cand):
            taken.add(cand)
            return Path(cand)
        n += 1


def _plan(src: Domain, new: str, files: list[str], auto: bool, linked: bool) -> list[Path]:
    writable = [d for d in src.disks if not _shared(d)]
    if len(files) > len(writable):
        raise ConfigError(
            f"{len(files)} --file paths given, but domain {src.name!r} has only "
            f"{len(writable)} writable disk(s) to clone"
        )
    if len(files) < len(writable) and not auto:
        missing = ", ".join(d.target or d.path for d in writable[len(files) :])
        raise ConfigError(
            f"no new path for disk(s) {missing}: give one --file per writable disk, "
            "or --auto-clone to put the copies beside the originals"
        )
    taken: set[str] = set()
    out = []
    for i, d in enumerate(writable):
        if not os.path.exists(d.path):
            raise ConfigError(f"disk image {d.path} of domain {src.name!r} does not exist")
        if i < len(files):
            p = Path(files[i])
            if not p.is_absolute():
                raise ConfigError(f"--file {p} must be an absolute path")
            if os.path.lexists(p) or str(p) in taken:
                raise ConfigError(f"--file {p} already exists; virtkit never overwrites an image")
            taken.add(str(p))
        else:
            p = auto_path(d.path, src.name, new, taken, suffix=".qcow2" if linked else None)
        out.append(p)
    return out


async def clone(svc: Service, src: str, new: str, files: list[str], *, auto: bool = False,
                linked: bool = False) -> CloneResult:  # fmt: skip
    try:
        check_name(new)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if new in svc.entries:
        raise ConfigError(f"a domain named {new!r} already exists; pick another --name")
    loop = asyncio.get_running_loop()
    result = CloneResult(new)
    async with svc.locks.hold(DomainKey(src), "clone"):
        e = svc.entry(src)
        if e.active:
            raise StateError(
                f"domain {src!r} is {e.state}; clone needs it shut off (its disks must not "
                f"change during the copy): `virtkit shutdown {src}` first",
                current=str(e.state), required="shut off",
            )  # fmt: skip
        dests = iter(_plan(e.domain, new, files, auto, linked))
        taken: set[str] = set()
        async with RevertStack() as revert:
            new_disks, orig_disks = [], []
            for d in e.domain.disks:
                if _shared(d):
                    new_disks.append(d)
                    orig_disks.append(d)
                    result.disks.append({"target": d.target or "", "source": d.path,
                                         "path": d.path, "mode": "shared"})  # fmt: skip
                    continue
                dest, fmt = next(dests), str(d.format)
                if linked:
                    taken.add(str(dest))
                    top = auto_path(d.path, src, new, taken, tag="overlay", suffix=".qcow2")
                    for path in (dest, top):
                        job = functools.partial(images.create_overlay, Path(d.path), fmt, path)
                        await loop.run_in_executor(None, job)
                        revert.push(functools.partial(path.unlink, True), f"overlay {path}")
                    qcow2 = {"format": DiskFormat.QCOW2}
                    new_disks.append(d.model_copy(update={"path": str(dest), **qcow2}))
                    orig_disks.append(d.model_copy(update={"path": str(top), **qcow2}))
                    result.original_overlays.append(str(top))
                else:
                    job = functools.partial(images.copy_image, Path(d.path), fmt, dest)
                    await loop.run_in_executor(None, job)
                    revert.push(functools.partial(dest.unlink, True), f"copy {dest}")
                    new_disks.append(d.model_copy(update={"path": str(dest)}))
                    orig_disks.append(d)
                mode = "linked" if linked else "copy"
                result.disks.append({"target": d.target or "", "source": d.path,
                                     "path": str(dest), "mode": mode})  # fmt: skip
            nics = [n.model_copy(update={"mac": None}) for n in e.domain.nics]
            dom = e.domain.model_copy(update={"name": new, "uuid": None, "disks": new_disks,
                                              "nics": nics})  # fmt: skip
            config: dict[str, Any] = dom.model_dump(mode="json", exclude_defaults=True)
            await svc.define(config=config, source=f"clone of {src}")
            revert.push(functools.partial(svc.forget_definition, new), "definition")
            if result.original_overlays:
                _switch_disks(svc, src, e.domain.model_copy(update={"disks": orig_disks}))
            revert.commit()
    svc.bus.publish(new, "cloned", f"from {src}" + (" (linked)" if linked else ""))
    return result


def _switch_disks(svc: Service, name: str, dom: Domain) -> None:
    """The original of a linked clone now writes to its own overlay."""
    svc.store.update_domain(name, domain_to_mapping(dom))
    svc.entry(name).domain = dom
    svc.bus.publish(name, "defined", "updated: disks moved onto overlays (linked clone)")
