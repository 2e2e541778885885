"""The destination's side of a live migration (the source drives it, see migrate.py).

prepare: the domain as the source runs it (its runtime record: hot-plugged devices
included, same accelerator) is defined transiently (or an inactive definition with
the same uuid is used), QEMU starts with ``-incoming defer`` and listens on the
address the source asked for; with copy-storage the disks are created empty at the
same size and exported over NBD for the source's block mirror.
finish: the state has arrived: stop the NBD server, ``cont``; the domain is ours
(persistently defined if asked). abort: kill QEMU, remove what prepare created.

Until finish, the runtime record carries ``migration = {"role": "destination"}``:
a daemon restarted before finish kills that QEMU (the source keeps the guest).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from virtkit.daemon.locks import DomainKey
from virtkit.errors import ConfigError, QmpError, StateError
from virtkit.formats.domfile import domain_from_mapping, domain_to_mapping
from virtkit.model.domain import DiskDevice, Domain
from virtkit.model.state import Reason, State
from virtkit.qemu.layout import Layout
from virtkit.revert import RevertStack

if TYPE_CHECKING:
    from virtkit.daemon.service import Entry, Service
    from virtkit.qemu.qmp import Monitor

log = logging.getLogger("virtkit.migrate")

NBD_FDNAME = "virtkit-nbd"
INCOMING_WAIT_S = 60.0


def copied_disks(dom: Domain) -> list[str]:
    """Targets of the disks copy-storage-all copies: writable disks (not CD-ROMs)."""
    return [d.target or "" for d in dom.disks
            if not d.readonly and d.device is not DiskDevice.CDROM]  # fmt: skip


def _target_path(svc: Service, dom: Domain, path: str, target: str) -> Path:
    """The same path as on the source if it is free here; otherwise (two daemons on one
    host, or a shared directory) this daemon's image directory."""
    p = Path(path)
    if not p.exists() and not p.is_symlink():
        return p
    ext = p.suffix or ".img"
    return svc.paths.state_dir / "images" / f"{dom.name}-{target}{ext}"


def _create_targets(svc: Service, dom: Domain, sizes: dict[str, int],
                    created: list[str]) -> Domain:  # fmt: skip
    from virtkit.storage.disks import create_disk

    disks = []
    for d in dom.disks:
        if d.target in sizes:
            dest = _target_path(svc, dom, d.path, d.target or "")
            if dest.exists():
                raise ConfigError(
                    f"cannot copy disk {d.target} of domain {dom.name!r}: {dest} already exists "
                    "on the destination; remove it or migrate without --copy-storage-all"
                )
            fmt = d.format.value if d.format else "raw"
            create_disk(dest, sizes[d.target or ""], fmt)
            created.append(str(dest))
            d = d.model_copy(update={"path": str(dest)})
        disks.append(d)
    return dom.model_copy(update={"disks": disks})


def _check_name(svc: Service, dom: Domain) -> bool:
    """True if the domain is defined here already (inactive, same uuid)."""
    e = svc.entries.get(dom.name)
    if e is None:
        for other in svc.entries.values():
            if dom.uuid and other.domain.uuid == dom.uuid:
                raise ConfigError(
                    f"uuid {dom.uuid} is used by domain {other.domain.name!r} on the destination"
                )
        return False
    if e.domain.uuid != dom.uuid:
        raise ConfigError(
            f"the destination has another domain named {dom.name!r} (uuid {e.domain.uuid}); "
            "undefine or rename it there first"
        )
    if e.active:
        raise StateError(
            f"domain {dom.name!r} is already running on the destination",
            current=str(e.state), required="shut off",
        )  # fmt: skip
    return True


async def set_caps(mon: Monitor, caps: dict[str, bool]) -> None:
    """migrate-set-capabilities; a host that lacks one (postcopy needs userfaultfd) is a
    ConfigError naming the option to drop."""
    try:
        await mon.execute("migrate-set-capabilities", {"capabilities": [
            {"capability": k, "state": v} for k, v in caps.items()]})  # fmt: skip
    except QmpError as exc:
        if "ostcopy" in exc.message and caps.get("postcopy-ram"):
            raise ConfigError(
                f"post-copy migration is not available on this host ({exc.message}): it needs "
                "userfaultfd; migrate without --postcopy"
            ) from None
        raise


async def _listen(mon: Monitor, host: str, postcopy: bool) -> int:
    if postcopy:
        await set_caps(mon, {"postcopy-ram": True})
    await mon.execute("migrate-incoming", {"uri": f"tcp:{host}:0"})
    info = await mon.execute("query-migrate")
    for addr in info.get("socket-address", []):
        if addr.get("port"):
            return int(addr["port"])
    raise QmpError("QEMU did not say which port it listens on for the migration")


async def _nbd_export(mon: Monitor, host: str, targets: list[str]) -> int:
    """An NBD server on a listening socket this daemon made (so the port is known)."""
    lsock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        lsock.bind((host, 0))
        lsock.listen(16)
        port = int(lsock.getsockname()[1])
        await mon.send_fd(lsock.fileno(), NBD_FDNAME)
    finally:
        lsock.close()
    await mon.execute("nbd-server-start", {"addr": {"type": "fd", "data": {"str": NBD_FDNAME}}})
    for t in targets:
        await mon.execute("block-export-add", {
            "type": "nbd", "id": f"mig-{t}", "node-name": f"drive-{t}", "name": t,
            "writable": True,
        })  # fmt: skip
    return port


async def prepare(svc: Service, spec: dict[str, Any]) -> dict[str, Any]:
    """Get ready to receive ``spec["domain"]``; returns where to send RAM and disks."""
    dom = domain_from_mapping(spec["domain"], "migrating domain")
    host = str(spec.get("listen_host") or "127.0.0.1")
    sizes = {str(k): int(v) for k, v in (spec.get("copy_storage") or {}).items()}
    created: list[str] = []
    async with svc.locks.hold(DomainKey(dom.name), "incoming migration"):
        defined = _check_name(svc, dom)
        async with RevertStack() as revert:
            revert.push(lambda: _remove(created), "created images")
            boot = await asyncio.get_running_loop().run_in_executor(
                None, _create_targets, svc, dom, sizes, created)  # fmt: skip
            if not defined:
                svc.add_transient(boot)
                revert.push(lambda: svc.forget_definition(dom.name), "transient definition")
            layout = Layout.from_mapping(spec.get("layout") or {})
            e = await svc._start_locked(dom.name, True, boot, incoming_defer=True,
                                        layout=layout)  # fmt: skip
            assert e.sup is not None
            sup = e.sup

            async def kill() -> None:
                await sup.destroy()

            revert.push(kill, "QEMU")
            _pending(svc)[dom.name] = created
            revert.push(lambda: _pending(svc).pop(dom.name, None), "pending images")
            _set_record(svc, e, {"role": "destination", "created": created,
                                 "defined": defined, "nbd": bool(sizes)})  # fmt: skip
            mon = sup._require_monitor()
            if dom.graphics.password:
                await mon.execute(
                    "set_password", {"protocol": "vnc", "password": dom.graphics.password}
                )
            port = await _listen(mon, host, bool(spec.get("postcopy")))
            nbd_port = await _nbd_export(mon, host, list(sizes)) if sizes else None
            revert.commit()
    svc.bus.publish(dom.name, "migration-incoming", f"listening on {host}:{port}")
    return {"name": dom.name, "uri": f"tcp:{host}:{port}", "nbd_host": host,
            "nbd_port": nbd_port, "disks": {d.target: d.path for d in boot.disks}}  # fmt: skip


def _remove(paths: list[str]) -> None:
    from virtkit.storage.disks import remove_created

    remove_created(paths)


def _set_record(svc: Service, e: Entry, migration: dict[str, Any] | None) -> None:
    if e.sup is None:
        return
    e.sup.record.migration = migration
    svc.store.put_runtime(e.domain.name, e.sup.record.to_json(), e.state, e.reason)


def _incoming(svc: Service, name: str) -> Entry:
    e = svc.entry(name)
    mig = e.sup.record.migration if e.sup is not None and e.sup.alive else None
    if not mig or mig.get("role") != "destination":
        raise StateError(
            f"domain {name!r} has no incoming migration on this daemon",
            current=str(e.state), required="incoming migration",
        )  # fmt: skip
    return e


async def finish(svc: Service, name: str, persistent: bool, config: dict[str, Any] | None,
                 paused: bool = False) -> dict[str, Any]:  # fmt: skip
    """The state has arrived: run the guest here (``paused``: it was paused on the source,
    it stays so). Idempotent (a retried finish succeeds)."""
    async with svc.locks.hold(DomainKey(name), "incoming migration"):
        e = svc.entry(name)
        mig = e.sup.record.migration if e.sup is not None and e.sup.alive else None
        if e.active and not mig and e.state in (State.RUNNING, State.PAUSED):
            return svc.summary(e)  # finished before: the answer was lost on the way
        e = _incoming(svc, name)
        assert e.sup is not None
        sup = e.sup
        mon = sup._require_monitor()
        deadline = time.monotonic() + INCOMING_WAIT_S
        while (status := (await mon.query_status()).status) == "inmigrate":
            if time.monotonic() > deadline:
                raise QmpError(f"the guest's state did not arrive within {INCOMING_WAIT_S:g} s")
            await asyncio.sleep(0.01)
        if status not in ("paused", "prelaunch", "running", "postmigrate"):
            raise QmpError(f"receiving the guest left QEMU in state {status!r}")
        if mig and mig.get("nbd"):
            with contextlib.suppress(QmpError):
                await mon.execute("nbd-server-stop")
        if paused:
            sup._set_state(State.PAUSED, Reason.MIGRATED)
        else:
            if status != "running":
                await mon.cont()
            sup._set_state(State.RUNNING, Reason.MIGRATED)
        # after cont: a daemon restarted before this line kills the QEMU, and the source,
        # whose finish call then failed, runs the guest
        _set_record(svc, e, None)
        _pending(svc).pop(name, None)
        if persistent:
            _make_persistent(svc, e, config)
    svc.bus.publish(name, "migrated", "arrived: running here")
    return svc.summary(e)


def _make_persistent(svc: Service, e: Entry, config: dict[str, Any] | None) -> None:
    assert e.sup is not None
    live = domain_from_mapping(e.sup.record.domain, "runtime record")
    dom = domain_from_mapping(config, "migrated definition") if config else live
    paths = {d.target: d.path for d in live.disks}  # copied disks have new paths here
    dom = dom.model_copy(
        update={
            "disks": [d.model_copy(update={"path": paths.get(d.target, d.path)}) for d in dom.disks]
        }
    )
    data = domain_to_mapping(dom)
    if e.persistent:
        svc.store.update_domain(dom.name, data)
    else:
        svc.store.insert_domain(dom.name, dom.uuid or "", data)
        e.persistent = True
    e.domain = dom


async def abort(svc: Service, name: str) -> None:
    """Undo prepare: kill the waiting QEMU, remove created images and the transient domain.

    QEMU exits by itself when the incoming stream breaks (the source cancelled): then
    only the images this daemon created for it are left to remove."""
    async with svc.locks.hold(DomainKey(name), "incoming migration"):
        created = _pending(svc).pop(name, None)
        e = svc.entries.get(name)
        if (e is not None and e.active) or created is None:
            await abandon(svc, _incoming(svc, name))
        else:
            await asyncio.get_running_loop().run_in_executor(None, _remove, created)
            if e is not None and not e.persistent:
                svc.forget_definition(name)
    svc.bus.publish(name, "migration-aborted", "incoming migration abandoned")


_PENDING: weakref.WeakKeyDictionary[Service, dict[str, list[str]]] = weakref.WeakKeyDictionary()


def _pending(svc: Service) -> dict[str, list[str]]:
    """Images created for incoming migrations not finished yet (they outlive the QEMU)."""
    return _PENDING.setdefault(svc, {})


async def abandon(svc: Service, e: Entry) -> None:
    """Kill an unfinished incoming migration's QEMU (abort, or found after a restart)."""
    assert e.sup is not None and e.sup.record.migration is not None
    mig = e.sup.record.migration
    _pending(svc).pop(e.domain.name, None)
    await e.sup.destroy()
    await asyncio.get_running_loop().run_in_executor(None, _remove, list(mig.get("created", [])))
    if not mig.get("defined"):
        svc.forget_definition(e.domain.name)
    log.info("abandoned the incoming migration of %s", e.domain.name)
