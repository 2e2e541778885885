"""Storage pools and volumes as the daemon serves them (virsh's pool-* and vol-* verbs).

One :class:`PoolManager` per Service (``manager(svc)``), created on first use: it
creates the ``default`` pool (<state_dir>/images, autostart) once, starts the pools
marked autostart or left active, and drops temporary files a dead daemon left.

Rules kept here (the files and qemu-img calls are in storage/):
  - a volume's format is recorded when virtkit creates it, or detected once at
    refresh (qcow2 magic + ``qemu-img info -f qcow2``); it is never probed again;
  - backing files must lie inside an active pool, at creation and on every use;
  - a volume a defined domain uses cannot be deleted; one a running domain uses
    cannot be resized or overwritten.
Filesystem work and qemu-img run in threads; the store is used on the loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid as uuidlib
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from virtkit.daemon.locks import PoolKey, VolumeKey
from virtkit.daemon.store import PoolStore, StoredPool
from virtkit.errors import ConfigError, NotFoundError, StateError, VirtkitError
from virtkit.storage import pools as P
from virtkit.storage import volumes as V
from virtkit.storage.sizes import parse_size
from virtkit.storage.transfer import Upload, read_chunk, remove_stale_temps

if TYPE_CHECKING:
    from virtkit.daemon.service import Service

log = logging.getLogger("virtkit.pools")
UPLOAD_IDLE_S = 600.0
_MANAGERS: weakref.WeakKeyDictionary[Service, PoolManager] = weakref.WeakKeyDictionary()


def manager(svc: Service) -> PoolManager:
    m = _MANAGERS.get(svc)
    if m is None:
        m = _MANAGERS[svc] = PoolManager(svc)
    return m


def resolve_volume(svc: Service, pool: str, name: str) -> tuple[str, str]:
    """``--disk vol=POOL/NAME``: (absolute path, format) of a usable volume.

    Synchronous (runs ``qemu-img info`` once per backing-chain layer of qcow2
    volumes). Raises NotFoundError (no such pool/volume), StateError (pool not
    active), ConfigError (symlink, backing chain outside the pools, absurd size).
    """
    return manager(svc).resolve(pool, name)


class PoolManager:
    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.db = PoolStore(svc.store)
        self.locks = svc.locks
        self.uploads: dict[str, tuple[str, Upload]] = {}
        self._startup()

    # -- startup ---------------------------------------------------------------------------

    def _startup(self) -> None:
        if self.db.get_meta("default_pool") is None:
            target = self.svc.paths.state_dir / "images"
            if all(p.name != P.DEFAULT_POOL for p in self.db.pools()):
                try:
                    P.build(target)
                except VirtkitError as exc:
                    log.warning("cannot create the default pool directory: %s", exc)
                self.db.insert_pool(StoredPool(P.DEFAULT_POOL, str(uuidlib.uuid4()), "dir",
                                               str(target), True, True))  # fmt: skip
            self.db.set_meta("default_pool", "created")
        for p in self.db.pools():
            if not (p.autostart or p.active):
                continue
            try:
                target = P.check_startable(Path(p.target))
                remove_stale_temps(target)
                self._apply(p.name, self._changes(target, self.db.volumes(p.name)))
                self.db.set_pool(p.name, active=True)
            except (VirtkitError, OSError) as exc:
                log.warning("pool %s not started: %s", p.name, exc)
                self.db.set_pool(p.name, active=False)

    # -- lookups ---------------------------------------------------------------------------

    def pool(self, name: str) -> StoredPool:
        for p in self.db.pools():
            if p.name == name:
                return p
        raise NotFoundError(
            f"storage pool {name!r} not found; `virtkit pool-list --all` shows the pools"
        )

    def active(self, name: str) -> tuple[StoredPool, Path]:
        p = self.pool(name)
        if not p.active:
            raise StateError(
                f"storage pool {name!r} is not active; start it with `virtkit pool-start {name}`",
                current="inactive", required="running",
            )  # fmt: skip
        return p, Path(os.path.realpath(p.target))

    def allowed(self) -> list[Path]:
        return [Path(os.path.realpath(p.target)) for p in self.db.pools() if p.active]

    def volume(self, pool: str, name: str) -> tuple[Path, str]:
        """(path, recorded format) of a volume of an active pool."""
        _, target = self.active(pool)
        V.check_volume_name(name)
        fmt = self.db.volumes(pool).get(name)
        if fmt is None:
            raise NotFoundError(
                f"storage volume {name!r} not found in pool {pool!r}; `virtkit vol-list {pool}` "
                f"lists them (files copied in by hand: `virtkit pool-refresh {pool}` first)"
            )
        return V.volume_path(target, name), fmt

    def users(self, path: Path, running_only: bool = False) -> list[str]:
        real = os.path.realpath(path)
        out = []
        for e in self.svc.entries.values():
            if running_only and not e.active:
                continue
            if any(os.path.realpath(d.path) == real for d in e.domain.disks):
                out.append(e.domain.name)
        return sorted(out)

    def _not_running(self, path: Path, what: str) -> None:
        busy = self.users(path, running_only=True)
        if busy:
            raise StateError(
                f"cannot {what} {path.name!r}: running domain(s) {', '.join(busy)} use it; "
                "shut them down first", current="in use", required="unused",
            )  # fmt: skip

    def resolve(self, pool: str, name: str) -> tuple[str, str]:
        path, fmt = self.volume(pool, name)
        V.check_chain(path, fmt, self.allowed())
        return str(path), fmt

    # -- views -----------------------------------------------------------------------------

    def pool_view(self, p: StoredPool) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": p.name, "uuid": p.uuid, "type": p.type, "target": p.target,
            "state": "running" if p.active else "inactive", "autostart": p.autostart,
            "persistent": True, "capacity": None, "allocation": None, "available": None,
            "volumes": None,
        }  # fmt: skip
        if p.active:
            with contextlib.suppress(VirtkitError):
                c = P.capacity(Path(p.target))
                d.update(capacity=c.capacity, allocation=c.allocation, available=c.available)
            d["volumes"] = len(self.db.volumes(p.name))
        return d

    def _vol_view(self, pool: str, path: Path, fmt: str, st: V.VolStat | None) -> dict[str, Any]:
        return {
            "pool": pool, "name": path.name, "path": str(path), "key": str(path),
            "type": "file", "format": fmt,
            "capacity": st.capacity if st else None, "allocation": st.allocation if st else None,
            "file_size": st.file_size if st else None, "backing": st.backing if st else None,
            "backing_format": st.backing_format if st else None, "used_by": self.users(path),
        }  # fmt: skip

    async def vol_info(self, pool: str, name: str) -> dict[str, Any]:
        path, fmt = self.volume(pool, name)
        st = await asyncio.to_thread(V.stat_volume, path, fmt)
        return self._vol_view(pool, path, fmt, st)

    async def vol_list(self, pool: str, details: bool) -> list[dict[str, Any]]:
        _, target = self.active(pool)
        out = []
        for name, fmt in self.db.volumes(pool).items():
            path = target / name
            st = None
            if details:
                try:
                    st = await asyncio.to_thread(V.stat_volume, path, fmt)
                except (VirtkitError, OSError):
                    continue  # vanished meanwhile; pool-refresh forgets it
            out.append(self._vol_view(pool, path, fmt, st))
        return out

    def lookup_path(self, path: str) -> tuple[str, str]:
        """(pool, name) of the volume at ``path`` (a file directly in an active pool)."""
        parent = os.path.realpath(os.path.dirname(path) or ".")
        for p in self.db.pools():
            if p.active and os.path.realpath(p.target) == parent:
                name = os.path.basename(path)
                if name in self.db.volumes(p.name):
                    return p.name, name
        raise NotFoundError(
            f"no storage volume has the path {path}; it must be a file in an active pool "
            "(`virtkit pool-refresh POOL` after copying files in by hand)"
        )

    def forget_removed(self, paths: list[Path]) -> None:
        """Files deleted outside vol-delete (undefine --remove-all-storage): drop their
        records, so vol-list does not show them and their names are free again."""
        for path in paths:
            if os.path.lexists(path):
                continue
            with contextlib.suppress(NotFoundError):
                pool, name = self.lookup_path(str(path))
                self.db.drop_volume(pool, name)

    # -- pools -----------------------------------------------------------------------------

    def define(self, name: str, type_: str, target: str) -> dict[str, Any]:
        P.check_pool_name(name)
        P.check_pool_type(type_)
        t = P.check_target(target)
        for p in self.db.pools():
            same = os.path.realpath(p.target) == os.path.realpath(t)
            if same or p.name == name:
                raise ConfigError(
                    f"pool {p.name!r} already exists with target {p.target}; "
                    "pick another name and directory"
                )
        rec = StoredPool(name, str(uuidlib.uuid4()), type_, str(t), False, False)
        self.db.insert_pool(rec)
        return self.pool_view(rec)

    async def build(self, name: str) -> dict[str, Any]:
        p = self.pool(name)
        await asyncio.to_thread(P.build, Path(p.target))
        return self.pool_view(self.pool(name))

    async def start(self, name: str) -> dict[str, Any]:
        async with self.locks.hold(PoolKey(name), "pool-start"):
            p = self.pool(name)
            if p.active:
                raise StateError(f"storage pool {name!r} is already active",
                                 current="running", required="inactive")  # fmt: skip
            target = P.check_startable(Path(p.target))
            await asyncio.to_thread(remove_stale_temps, target)
            await self._refresh(name, target)
            self.db.set_pool(name, active=True)
            return self.pool_view(self.pool(name))

    async def destroy(self, name: str) -> dict[str, Any]:
        async with self.locks.hold(PoolKey(name), "pool-destroy"):
            self.active(name)
            for uid, (pool, up) in list(self.uploads.items()):
                if pool == name:
                    self.uploads.pop(uid)
                    up.abort()
            self.db.set_pool(name, active=False)
            return self.pool_view(self.pool(name))

    async def undefine(self, name: str) -> None:
        async with self.locks.hold(PoolKey(name), "pool-undefine"):
            if self.pool(name).active:
                raise StateError(
                    f"storage pool {name!r} is still active; stop it first with "
                    f"`virtkit pool-destroy {name}` (its files are kept)",
                    current="running", required="inactive",
                )  # fmt: skip
            self.db.delete_pool(name)

    def set_autostart(self, name: str, on: bool) -> dict[str, Any]:
        self.pool(name)
        self.db.set_pool(name, autostart=on)
        return self.pool_view(self.pool(name))

    async def refresh(self, name: str) -> dict[str, Any]:
        async with self.locks.hold(PoolKey(name), "pool-refresh"):
            _, target = self.active(name)
            await self._refresh(name, target)
            return self.pool_view(self.pool(name))

    async def _refresh(self, name: str, target: Path) -> None:
        changes = await asyncio.to_thread(self._changes, target, self.db.volumes(name))
        self._apply(name, changes)

    @staticmethod
    def _changes(target: Path, known: dict[str, str]) -> tuple[dict[str, str], list[str]]:
        found = V.scan(target)
        add = {n: V.detect_format(target, n) for n in found if n not in known}
        return add, [n for n in known if n not in found]

    def _apply(self, name: str, changes: tuple[dict[str, str], list[str]]) -> None:
        self.db.sync_volumes(name, *changes)

    # -- volumes ---------------------------------------------------------------------------

    async def vol_create(self, pool: str, name: str, size: str | int, fmt: str,
                         allocation: str | int | None, backing_vol: str | None,
                         backing_format: str | None) -> dict[str, Any]:  # fmt: skip
        _, target = self.active(pool)
        V.check_volume_name(name)
        V.check_format(fmt)
        capacity = parse_size(size)
        alloc = 0 if allocation in (None, "", 0, "0") else parse_size(allocation or 0)
        backing = None
        if backing_vol:
            backing = await self._backing(pool, backing_vol, backing_format)
        async with self.locks.hold(VolumeKey(pool, name), "vol-create"):
            if name in self.db.volumes(pool):
                raise ConfigError(f"storage volume {name!r} already exists in pool {pool!r}")
            job = asyncio.ensure_future(asyncio.to_thread(
                V.create_volume, target, name, capacity, fmt, allocation=alloc, backing=backing
            ))  # fmt: skip
            try:
                path = await asyncio.shield(job)
            except asyncio.CancelledError:
                # the caller went away, the thread goes on: record what it makes, so no
                # file hides from vol-list and blocks the name
                with contextlib.suppress(Exception):
                    await job
                    self.db.put_volume(pool, name, fmt)
                raise
            self.db.put_volume(pool, name, fmt)
        return await self.vol_info(pool, path.name)

    async def _backing(self, pool: str, vol: str, fmt: str | None) -> tuple[Path, str]:
        bpool, bname = self.lookup_path(vol) if "/" in vol else (pool, vol)
        bpath, bfmt = self.volume(bpool, bname)
        if fmt and fmt != bfmt:
            raise ConfigError(
                f"backing volume {bname!r} is recorded as {bfmt}, not {fmt}; "
                f"use --backing-vol-format {bfmt}"
            )
        await asyncio.to_thread(V.check_chain, bpath, bfmt, self.allowed())
        return bpath, bfmt

    async def vol_delete(self, pool: str, name: str) -> None:
        async with self.locks.hold(VolumeKey(pool, name), "vol-delete"):
            path, _ = self.volume(pool, name)
            users = self.users(path)
            if users:
                raise StateError(
                    f"storage volume {name!r} is used by domain(s) {', '.join(users)}; "
                    "remove it from their definitions (or undefine them) first",
                    current="in use", required="unused",
                )  # fmt: skip
            over = await self._overlays_of(path)
            if over:
                raise StateError(
                    f"storage volume {name!r} is the backing file of {', '.join(over)}; "
                    "delete those (or `qemu-img rebase` them) first",
                    current="in use", required="unused",
                )  # fmt: skip
            await asyncio.to_thread(V.delete_volume, path.parent, name)
            self.db.drop_volume(pool, name)

    async def _overlays_of(self, path: Path) -> list[str]:
        real = os.path.realpath(path)
        out = []
        for p in self.db.pools():
            if not p.active:
                continue
            target = Path(os.path.realpath(p.target))
            for n, fmt in self.db.volumes(p.name).items():
                if fmt != "qcow2" or target / n == path:
                    continue
                with contextlib.suppress(VirtkitError, OSError):
                    st = await asyncio.to_thread(V.stat_volume, target / n, fmt)
                    if st.backing and os.path.realpath(st.backing) == real:
                        out.append(f"{p.name}/{n}")
        return out

    async def vol_resize(self, pool: str, name: str, size: str | int, delta: bool,
                         shrink: bool) -> dict[str, Any]:  # fmt: skip
        amount = parse_size(size)
        async with self.locks.hold(VolumeKey(pool, name), "vol-resize"):
            path, fmt = self.volume(pool, name)
            self._not_running(path, "resize")
            cur = (await asyncio.to_thread(V.stat_volume, path, fmt)).capacity
            new = (cur - amount if shrink else cur + amount) if delta else amount
            if new <= 0:
                raise ConfigError(f"volume {name!r} cannot shrink to {new} bytes")
            if new < cur and not shrink:
                raise ConfigError(
                    f"new size {new} bytes is smaller than the current {cur} bytes of "
                    f"{name!r}; shrinking loses data: pass --shrink if you mean it"
                )
            if new != cur:
                await asyncio.to_thread(V.check_chain, path, fmt, self.allowed())
                await asyncio.to_thread(V.resize_volume, path, fmt, new, shrink=new < cur)
        return await self.vol_info(pool, name)

    async def vol_clone(self, pool: str, name: str, new: str) -> dict[str, Any]:
        _, target = self.active(pool)
        V.check_volume_name(new)
        async with self.locks.hold(VolumeKey(pool, new), "vol-clone"):
            path, fmt = self.volume(pool, name)
            if new in self.db.volumes(pool):
                raise ConfigError(f"storage volume {new!r} already exists in pool {pool!r}")
            await asyncio.to_thread(V.check_chain, path, fmt, self.allowed())
            await asyncio.to_thread(V.clone_volume, path, fmt, target, new)
            self.db.put_volume(pool, new, fmt)
        return await self.vol_info(pool, new)

    # -- content ---------------------------------------------------------------------------

    async def read(self, pool: str, name: str, offset: int, length: int) -> bytes:
        path, _ = self.volume(pool, name)
        return await asyncio.to_thread(read_chunk, path.parent, name, offset, length)

    def upload_begin(self, pool: str, name: str, size: int) -> dict[str, Any]:
        now = time.monotonic()
        for uid, (_, up) in list(self.uploads.items()):
            if now - up.touched > UPLOAD_IDLE_S:
                self.uploads.pop(uid)
                up.abort()
        path, _ = self.volume(pool, name)
        self._not_running(path, "overwrite")
        up = Upload(path.parent, name, size)
        self.uploads[up.id] = (pool, up)
        return {"id": up.id, "size": size, "received": 0}

    def _upload(self, uid: str) -> tuple[str, Upload]:
        try:
            return self.uploads[uid]
        except KeyError:
            raise NotFoundError(f"upload {uid!r} not found (finished, aborted or expired); "
                                "start the upload again") from None  # fmt: skip

    def upload_chunk(self, uid: str, offset: int, data: bytes) -> dict[str, Any]:
        _, up = self._upload(uid)
        try:
            received = up.write(offset, data)
        except BaseException:
            self.upload_abort(uid)
            raise
        return {"id": uid, "size": up.size, "received": received}

    async def upload_commit(self, uid: str) -> dict[str, Any]:
        pool, up = self._upload(uid)
        self.uploads.pop(uid)
        try:
            async with self.locks.hold(VolumeKey(pool, up.name), "upload-commit"):
                path, fmt = self.volume(pool, up.name)
                self._not_running(path, "overwrite")
                tmp = await asyncio.to_thread(up.finish)
                if fmt == "qcow2":  # the new content must be a sane qcow2 in the pools
                    await asyncio.to_thread(V.check_chain, tmp, fmt, self.allowed())
                await asyncio.to_thread(up.replace)
        except BaseException:
            up.abort()
            raise
        return await self.vol_info(pool, up.name)

    def upload_abort(self, uid: str) -> None:
        _, up = self._upload(uid)
        self.uploads.pop(uid, None)
        up.abort()
