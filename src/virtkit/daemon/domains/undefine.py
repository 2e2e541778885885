"""undefine with storage: ``--remove-all-storage``, ``--storage vda,vdb``, ``--managed-save``,
``--nvram``, with virsh's rules.

Only images virtkit manages are deleted: files under <state_dir>/images or under
a storage pool's target directory. Everything else is left in place and reported
("not managed by virtkit"), as are CD-ROMs and read-only images (shared) and
images another domain still uses, directly or as a backing file. Backing files
of a removed image (the frozen base of a linked clone) go too once no other
domain needs them.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from virtkit.daemon.domains.blockops import current_disks
from virtkit.daemon.domains.saverestore import managed_save_path
from virtkit.errors import ConfigError, StateError, VirtkitError
from virtkit.model.domain import Disk, DiskDevice, Domain
from virtkit.storage.images import backing_chain

if TYPE_CHECKING:
    from virtkit.daemon.service import Service

FileId = tuple[int, int]


@dataclass
class UndefineResult:
    removed: list[dict[str, str]] = field(default_factory=list)  # target, path
    kept: list[dict[str, str]] = field(default_factory=list)  # target, path, reason
    managed_save_removed: bool = False
    nvram_removed: bool = False


def _fid(path: Path | str) -> FileId | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def managed_dirs(svc: Service) -> list[str]:
    pools: list[str | Path] = list(getattr(svc, "pool_targets", lambda: [])())
    return [os.path.realpath(p) for p in [svc.paths.state_dir / "images", *pools]]


def _managed(path: str, dirs: list[str]) -> bool:
    real = os.path.realpath(path)
    return any(os.path.commonpath([real, d]) == d for d in dirs)


def _chain(d: Disk) -> list[Path]:
    try:
        return backing_chain(Path(d.path), str(d.format))
    except VirtkitError:
        return []


def _users(svc: Service, name: str) -> dict[FileId, str]:
    """Every file other domains use, with its backing files: file id -> domain name."""
    out: dict[FileId, str] = {}
    for other, e in svc.entries.items():
        if other == name:
            continue
        disks = {d.path: d for d in [*e.domain.disks, *current_disks(e)]}
        for d in disks.values():
            for p in [Path(d.path), *_chain(d)]:
                fid = _fid(p)
                if fid is not None:
                    out.setdefault(fid, other)
    return out


def _select(dom: Domain, storage: list[str], all_: bool) -> list[Disk]:
    if not storage:
        return list(dom.disks) if all_ else []
    out = []
    for item in storage:
        match = [d for d in dom.disks if item in (d.target, d.path)]
        if not match:
            known = ", ".join(d.target or d.path for d in dom.disks) or "none"
            raise ConfigError(f"domain {dom.name!r} has no disk {item!r} (its disks: {known})")
        out += [d for d in match if d not in out]
    return out


def _plan(svc: Service, dom: Domain, chosen: list[Disk], res: UndefineResult) -> list[Path]:
    dirs = managed_dirs(svc)
    users = _users(svc, dom.name) if chosen else {}
    doomed: list[Path] = []
    for d in chosen:
        target = d.target or ""
        fid = _fid(d.path)
        if d.readonly or d.device is DiskDevice.CDROM:
            why = "read-only or CD-ROM image (shared), not removed"
        elif fid is None:
            why = "does not exist"
        elif not _managed(d.path, dirs):
            why = "not managed by virtkit (not in a storage pool); remove it manually"
        elif fid in users:
            why = f"still used by domain {users[fid]!r}, not removed"
        else:
            res.removed.append({"target": target, "path": d.path})
            doomed.append(Path(d.path))
            for p in _chain(d):  # backing files only this domain needed
                bid = _fid(p)
                if bid is not None and bid not in users and _managed(str(p), dirs):
                    res.removed.append({"target": f"{target} (backing file)", "path": str(p)})
                    doomed.append(p)
            continue
        res.kept.append({"target": target, "path": d.path, "reason": why})
    return doomed


async def undefine(svc: Service, name: str, *, remove_all_storage: bool = False,
                   storage: list[str] | None = None, managed_save: bool = False,
                   nvram: bool = False) -> UndefineResult:  # fmt: skip
    e = svc.entry(name)
    if e.active:
        raise StateError(
            f"domain {name!r} is {e.state}; destroy or shut it down before undefining it",
            current=str(e.state), required="shut off",
        )  # fmt: skip
    dom = e.domain
    save = managed_save_path(svc, dom)
    if save.exists() and not managed_save:
        raise StateError(
            f"refusing to undefine domain {name!r} while a managed save image exists; "
            "pass --managed-save to remove it too",
            current="managed save image", required="no managed save image",
        )  # fmt: skip
    res = UndefineResult()
    chosen = _select(dom, storage or [], remove_all_storage)
    loop = asyncio.get_running_loop()
    doomed = await loop.run_in_executor(None, _plan, svc, dom, chosen, res)
    await svc.undefine(name)  # raises if it was started meanwhile: nothing is deleted then
    for p in doomed:
        try:
            p.unlink()
        except OSError as exc:
            res.removed = [r for r in res.removed if r["path"] != str(p)]
            res.kept.append({"target": "", "path": str(p), "reason": f"{exc.strerror}"})
    if doomed:
        from virtkit.daemon.storage.pools import manager

        manager(svc).forget_removed(doomed)
    if managed_save and save.exists():
        save.unlink(missing_ok=True)
        res.managed_save_removed = True
    if nvram and dom.boot.uefi:
        vars_file = svc.paths.state_dir / "nvram" / f"{dom.uuid}_VARS.fd"
        res.nvram_removed = vars_file.exists()
        vars_file.unlink(missing_ok=True)
    return res
