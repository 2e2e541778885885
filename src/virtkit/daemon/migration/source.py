"""Live migration, the source's side: virsh migrate to another virtkit daemon.

1. prepare: the destination daemon defines the domain as it runs here (the runtime
   record: hot-plugged devices, same accelerator) and starts QEMU with
   ``-incoming defer`` listening on the address we ask for (migrate_in.py);
2. --copy-storage-all: the destination exported empty same-size images over NBD;
   we mirror every writable disk into them and wait until all mirrors are READY;
3. capabilities and parameters (auto-converge, postcopy-ram, pause-before-switchover
   for disks, max-bandwidth, downtime-limit), ``migrate``, progress from query-migrate;
   with disks, QEMU pauses before the switchover and we complete the mirrors first;
4. the destination resumes the guest and owns it (``finish``); we stop our QEMU and,
   with --undefinesource, drop the definition.
Any failure or domjobabort undoes what was done (revert stack): the guest keeps
running here (resumed if the migration paused it), the destination QEMU is killed
and its transient definition and images removed.

The phase is kept in the runtime record (``migration``) for a daemon restarted
mid-way: migrate_recover.py leaves the guest running on exactly one side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from virtkit.daemon.locks import DomainKey
from virtkit.daemon.migration.dest import set_caps
from virtkit.daemon.migration.disks import complete_mirrors, copy_targets, mirror, sizes_of
from virtkit.daemon.migration.job import Job, JobType, current, jobs
from virtkit.daemon.migration.layout import describe
from virtkit.daemon.migration.peer import Peer
from virtkit.errors import ConfigError, QmpError, StateError, VirtkitError
from virtkit.formats.domfile import domain_from_mapping, domain_to_mapping
from virtkit.model.state import Reason, State
from virtkit.revert import RevertStack

if TYPE_CHECKING:
    from virtkit.daemon.service import Entry, Service
    from virtkit.qemu.qmp import Monitor
    from virtkit.runtime.supervisor import Supervisor

log = logging.getLogger("virtkit.migrate")

POLL_S = 0.01  # query-migrate is cheap; the source notices the end sooner
MIRROR_READY_TIMEOUT_S = 600.0
UNLIMITED_BANDWIDTH = 1 << 40  # bytes/s (QEMU's own default throttles to 32-128 MiB/s)
MIB = 1 << 20
ACTIVE = ("setup", "active", "postcopy-active", "postcopy-paused", "postcopy-recover",
          "pre-switchover", "device", "wait-unplug", "cancelling")  # fmt: skip


@dataclass(frozen=True)
class MigrateOptions:
    dest_uri: str
    live: bool = True
    persistent: bool = False
    undefine_source: bool = False
    copy_storage_all: bool = False
    auto_converge: bool = False
    postcopy: bool = False
    bandwidth_mib_s: int | None = None
    timeout_s: float | None = None


class Cancelled(StateError):
    pass


def _cancelled(name: str) -> Cancelled:
    return Cancelled(
        f"the migration of domain {name!r} was cancelled (domjobabort); the guest keeps "
        "running on this host", current="cancelled", required="migrating",
    )  # fmt: skip


def _running(svc: Service, name: str) -> Supervisor:
    e = svc.entry(name)
    if e.sup is None or not e.sup.alive or e.state not in (State.RUNNING, State.PAUSED):
        raise StateError(
            f"cannot migrate domain {name!r}: it is not running (state: {e.state}); "
            "only running or paused guests migrate live",
            current=str(e.state), required="running",
        )  # fmt: skip
    return e.sup


def start(svc: Service, name: str, opts: MigrateOptions) -> Job:
    """Check what can be checked now, then run the migration as a background job."""
    peer = Peer(opts.dest_uri)
    if peer.addr.socket is not None and peer.addr.socket == str(svc.paths.socket):
        raise ConfigError(f"{opts.dest_uri} is this daemon; migrate to another one")
    _running(svc, name)
    if current(svc, name) is not None:
        raise StateError(f"domain {name!r} is already being migrated; see `virtkit domjobinfo "
                         f"{name}`", current="migrating", required="no job")  # fmt: skip
    if opts.bandwidth_mib_s is not None and opts.bandwidth_mib_s <= 0:
        raise ConfigError("--bandwidth must be a positive number of MiB/s")
    holder = svc.locks.holder(DomainKey(name))
    if holder is not None:
        raise StateError(f"domain {name!r} is busy ({holder}); try again when it finishes",
                         current=holder, required="idle")  # fmt: skip
    job = Job(name, opts.dest_uri)
    jobs(svc)[name] = job
    svc.background(_run(svc, name, opts, peer, job))
    return job


async def _run(svc: Service, name: str, opts: MigrateOptions, peer: Peer, job: Job) -> None:
    try:
        async with svc.locks.hold(DomainKey(name), "migrate"):
            await _migrate(svc, name, opts, peer, job)
        job.end(JobType.COMPLETED)
        svc.bus.publish(name, "migrated", f"to {opts.dest_uri}")
    except Cancelled as exc:
        job.end(JobType.CANCELLED, exc)
        svc.bus.publish(name, "migration-cancelled", exc.message)
    except VirtkitError as exc:
        job.end(JobType.FAILED, exc)
        svc.bus.publish(name, "migration-failed", exc.message)
    except Exception as exc:  # a bug: the job must still end, with a readable message
        log.exception("migration of %s failed", name)
        job.end(JobType.FAILED, VirtkitError(f"internal error during the migration: {exc!r}"))


def set_phase(svc: Service, e: Entry, job: Job | None, phase: str, **extra: Any) -> None:
    """Record the phase in the runtime record (what a restarted daemon acts on)."""
    if job is not None:
        job.phase = phase
        log.debug("migration of %s: %s after %.1f ms", e.domain.name, phase,
                  (time.monotonic() - job.started_mono) * 1000)  # fmt: skip
    if e.sup is None:
        return
    rec = e.sup.record
    rec.migration = None if phase == "" else (rec.migration or {}) | {"phase": phase, **extra}
    svc.store.put_runtime(e.domain.name, rec.to_json(), e.state, e.reason)


async def _migrate(svc: Service, name: str, opts: MigrateOptions, peer: Peer, job: Job) -> None:
    sup = _running(svc, name)
    e = svc.entry(name)
    mon = sup._require_monitor()
    was_running = sup.state is State.RUNNING
    live = dict(sup.record.domain) | {"accel": sup.record.accel}
    booted = domain_from_mapping(live, "runtime record")
    revert = RevertStack()
    set_phase(svc, e, job, "preparing", role="source", dest=opts.dest_uri,
              was_running=was_running, persistent=opts.persistent,
              undefine_source=opts.undefine_source)  # fmt: skip
    revert.push(lambda: set_phase(svc, e, None, ""), "migration record")
    revert.push(lambda: resume_if(sup, was_running), "source guest")
    try:
        targets = copy_targets(booted) if opts.copy_storage_all else []
        layout = (await describe(mon)).to_mapping()
        spec = {"domain": live, "listen_host": peer.addr.migration_host, "layout": layout,
                "postcopy": opts.postcopy,
                "copy_storage": await sizes_of(mon, targets)}  # fmt: skip
        # before the call: if its answer is lost, the destination is still told to clean up
        revert.push(lambda: peer.abort(name), "destination")
        prep = await peer.prepare(spec)
        _check_abort(job)
        if targets:
            job.phase = "mirroring"
            await mirror(mon, job, targets, str(prep["nbd_host"]), int(prep["nbd_port"]), revert)
        _check_abort(job)
        await _configure(mon, e, opts, bool(targets))
        if not opts.live and sup.state is State.RUNNING:
            await sup.suspend()  # virsh migrate without --live: paused while it moves
        set_phase(svc, e, job, "migrating")
        revert.push(lambda: cancel_migration(mon), "migration")
        await mon.execute("migrate", {"uri": str(prep["uri"])})
        await _wait(sup, mon, job, opts, targets)
        set_phase(svc, e, job, "finishing")
        config = domain_to_mapping(e.domain) if e.persistent else None
        body = {"persistent": opts.persistent, "config": config, "paused": not was_running}
        await peer.finish(name, body)
    except BaseException:
        if job.postcopy_started:  # the destination has the newest state: do not resume here
            log.error("postcopy migration of %s failed after the switch", name)
            revert.commit()
        await revert.revert()
        raise
    set_phase(svc, e, job, "done")
    await finish_source(svc, name, sup, opts.undefine_source)


async def finish_source(svc: Service, name: str, sup: Supervisor, undefine: bool) -> None:
    """The destination owns the guest: stop ours, and drop the definition if asked."""
    await sup.quit(Reason.MIGRATED)
    e = svc.entries.get(name)
    if undefine and e is not None and e.persistent and not e.active:
        svc.store.delete_domain(name)
        del svc.entries[name]
        svc.bus.publish(name, "undefined", "removed after the migration (--undefinesource)")


def _check_abort(job: Job) -> None:
    if job.abort_requested:
        raise _cancelled(job.name)


async def resume_if(sup: Supervisor, was_running: bool) -> None:
    if not sup.alive:
        return
    status = (await sup._require_monitor().query_status()).status
    if was_running and status != "running":
        await sup.resume()


async def cancel_migration(mon: Monitor) -> None:
    with contextlib.suppress(QmpError):
        await mon.execute("migrate_cancel")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        info = await mon.execute("query-migrate")
        if info.get("status") not in ACTIVE:
            return
        await asyncio.sleep(POLL_S)


async def _configure(mon: Monitor, e: Entry, opts: MigrateOptions, disks: bool) -> None:
    caps = {"auto-converge": opts.auto_converge, "postcopy-ram": opts.postcopy,
            "pause-before-switchover": disks}  # fmt: skip
    await set_caps(mon, caps)
    params: dict[str, Any] = {}
    if opts.bandwidth_mib_s is not None:
        params["max-bandwidth"] = opts.bandwidth_mib_s * MIB
    elif not e.extra.get("migrate_speed_set"):
        params["max-bandwidth"] = UNLIMITED_BANDWIDTH  # as libvirt: unlimited unless asked
    if opts.postcopy:
        params["max-postcopy-bandwidth"] = params.get("max-bandwidth", 0)
    if params:
        await mon.execute("migrate-set-parameters", params)


async def _wait(sup: Supervisor, mon: Monitor, job: Job, opts: MigrateOptions,
                targets: list[str]) -> None:  # fmt: skip
    t0 = time.monotonic()
    while True:
        info = await mon.execute("query-migrate")
        job.qemu = info
        status = str(info.get("status", ""))
        if status == "completed":
            return
        if status == "pre-switchover":  # paused, RAM sent: the disks must be in sync too
            job.phase = "switchover"
            await complete_mirrors(mon, job, targets)
            await mon.execute("migrate-continue", {"state": "pre-switchover"})
        elif status in ("failed", "cancelled", "none"):
            if job.abort_requested or status == "cancelled":
                raise _cancelled(job.name)
            why = info.get("error-desc") or status
            raise QmpError(f"QEMU could not migrate the guest: {why}; it keeps running here")
        elif status == "active":
            late = opts.timeout_s is not None and time.monotonic() - t0 > opts.timeout_s
            iterations = int(info.get("ram", {}).get("dirty-sync-count", 0))
            if opts.postcopy and not job.postcopy_started and (late or iterations >= 2):
                await mon.execute("migrate-start-postcopy")
                job.postcopy_started = True
            elif late and not opts.postcopy and sup.state is State.RUNNING:
                await sup.suspend()  # virsh --timeout: pause so the migration can converge
                job.paused_by_timeout = True
        if job.abort_requested and not job.postcopy_started:
            await cancel_migration(mon)
            raise _cancelled(job.name)
        await asyncio.sleep(POLL_S)


async def abort(svc: Service, name: str) -> dict[str, Any]:
    """domjobabort: the job notices and reverts (the guest stays here)."""
    from virtkit.daemon.migration.job import require_current

    job = require_current(svc, name)
    if job.postcopy_started:
        raise StateError(
            f"the migration of {name!r} is in postcopy: the guest already runs on the "
            "destination and cannot come back; wait for it to finish",
            current="postcopy", required="precopy",
        )  # fmt: skip
    job.abort_requested = True
    e = svc.entry(name)
    if job.phase in ("migrating", "switchover") and e.sup is not None and e.sup.monitor:
        with contextlib.suppress(QmpError):
            await e.sup.monitor.execute("migrate_cancel")
    deadline = time.monotonic() + 30
    while job.active and time.monotonic() < deadline:
        await asyncio.sleep(POLL_S)
    return job.view()


# -- migrate-setmaxdowntime / getmaxdowntime / setspeed / getspeed ----------------------


def _monitor(svc: Service, name: str) -> Monitor:
    return _running(svc, name)._require_monitor()


async def get_params(svc: Service, name: str) -> dict[str, Any]:
    p = await _monitor(svc, name).execute("query-migrate-parameters")
    return {"max_downtime_ms": int(p.get("downtime-limit", 300)),
            "max_bandwidth_mib_s": int(p.get("max-bandwidth", 0)) // MIB}  # fmt: skip


async def set_params(svc: Service, name: str, max_downtime_ms: int | None,
                     max_bandwidth_mib_s: int | None) -> dict[str, Any]:  # fmt: skip
    """Takes effect at once, also on a migration in progress (QEMU keeps them)."""
    params: dict[str, Any] = {}
    if max_downtime_ms is not None:
        params["downtime-limit"] = max_downtime_ms
    if max_bandwidth_mib_s is not None:
        params["max-bandwidth"] = max_bandwidth_mib_s * MIB
        svc.entry(name).extra["migrate_speed_set"] = True
    if params:
        await _monitor(svc, name).execute("migrate-set-parameters", params)
    return await get_params(svc, name)
