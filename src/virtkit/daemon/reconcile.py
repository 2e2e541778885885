"""Daemon start: load the store, re-attach to running QEMUs, reconcile, autostart,
resume pending on_crash restarts.

For every runtime record:
  - pid 0 ("starting"): a start was interrupted; kill its QEMU if one came up, mark failed;
  - the process is still the one we started (pid + start time + QMP path in its
    command line): re-attach, the guest never noticed;
  - otherwise it died while we were away: shut off (crashed), with an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil

from virtkit.errors import ConfigError, VirtkitError
from virtkit.formats.domfile import domain_from_mapping
from virtkit.model.state import Reason, State
from virtkit.network import taps
from virtkit.runtime import proc
from virtkit.runtime.record import RuntimeRecord

log = logging.getLogger("virtkit.daemon")

TYPE_CHECKING = False
if TYPE_CHECKING:
    from virtkit.daemon.service import Entry, Service


async def reconcile(svc: Service) -> None:
    from virtkit.daemon.service import Entry

    states = svc.store.load_states()
    for stored in svc.store.load_domains():
        try:
            dom = domain_from_mapping(stored.config, f"stored domain {stored.name}")
        except ConfigError as exc:
            log.error("skipping unreadable stored domain %s: %s", stored.name, exc)
            continue
        e = Entry(dom, autostart=stored.autostart)
        if stored.name in states:
            s, r = states[stored.name]
            with contextlib.suppress(ValueError):
                e.state, e.reason = State.SHUTOFF, Reason(r)
            del s
        svc.entries[stored.name] = e
    jobs = []
    for name, raw in svc.store.load_runtime().items():
        try:
            record = RuntimeRecord.from_json(raw)
        except (ValueError, TypeError) as exc:
            log.error("dropping unreadable runtime record of %s: %s", name, exc)
            svc.store.drop_runtime(name, State.SHUTOFF, Reason.UNKNOWN)
            continue
        jobs.append(_reconcile_one(svc, name, record, svc.entries.get(name)))
    await asyncio.gather(*jobs)  # attach concurrently: one stuck monitor must not delay others
    from virtkit.daemon.network.service import manager as networks

    await networks(svc).reconcile()  # before autostart: guests need their networks
    from virtkit.daemon import intents

    await intents.recover(svc)  # operations a crash cut short: finished or undone
    from virtkit.daemon.domains.autorestart import resume

    resume(svc)  # on_crash restarts the previous daemon had scheduled, when they are due
    for name in svc.store.borrowing_domains():  # guests that stopped while we were away,
        held = svc.entries.get(name)  # or a start a crash cut short: give their files back
        if held is None or not held.active:
            svc.confiner.give_back(name)
    for name, e in list(svc.entries.items()):
        if e.autostart and not e.active:
            svc.background(_autostart(svc, name))


async def _reconcile_one(
    svc: Service, name: str, record: RuntimeRecord, entry: Entry | None
) -> None:
    if record.pid == 0:
        killed = svc.kill_half_started(record)
        svc.store.drop_runtime(name, State.SHUTOFF, Reason.FAILED)
        svc.bus.publish(
            name,
            "start-failed",
            "daemon stopped during start; " + ("QEMU killed" if killed else "no QEMU"),
        )
        if entry:
            entry.state, entry.reason = State.SHUTOFF, Reason.FAILED
        with contextlib.suppress(OSError):
            shutil.rmtree(record.run_dir)
        return
    alive = proc.is_same_process(record.pid, record.start_time, record.qmp)
    if alive and entry is not None:
        await svc.adopt(entry, record)
        log.info("re-attached to %s (pid %d)", name, record.pid)
        if record.migration:  # a migration was in flight: one side keeps the guest
            from virtkit.daemon.migration.recover import recover

            svc.background(recover(svc, entry))
        return
    if alive and entry is None:
        # A running QEMU whose definition is gone: keep it running, but we cannot manage it
        # without a definition; rebuild one from the record.
        try:
            dom = domain_from_mapping(record.domain, f"runtime record {name}")
        except ConfigError:
            log.error("QEMU pid %d of unknown domain %s left running", record.pid, name)
            return
        from virtkit.daemon.service import Entry

        entry = Entry(dom, persistent=False)  # a transient domain: it lives while it runs
        svc.entries[name] = entry
        await svc.adopt(entry, record)
        if record.migration:
            from virtkit.daemon.migration.recover import recover

            svc.background(recover(svc, entry))
        return
    svc.store.drop_runtime(name, State.SHUTOFF, Reason.CRASHED)
    svc.bus.publish(name, "crashed", "QEMU exited while the daemon was not running")
    with contextlib.suppress(VirtkitError, OSError):
        booted = domain_from_mapping(record.domain, f"runtime record {name}")
        await asyncio.get_running_loop().run_in_executor(None, taps.remove_taps, booted)
    if entry:
        entry.state, entry.reason = State.SHUTOFF, Reason.CRASHED
        entry.last_record = record
    with contextlib.suppress(OSError):
        shutil.rmtree(record.run_dir)


async def _autostart(svc: Service, name: str) -> None:
    try:
        await svc.start(name)
        log.info("autostarted %s", name)
    except VirtkitError as exc:
        log.error("autostart of %s failed: %s", name, exc)
        svc.bus.publish(name, "autostart-failed", exc.message)
