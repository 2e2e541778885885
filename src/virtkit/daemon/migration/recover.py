"""A daemon restarted while a migration was in flight: leave the guest on exactly one side.

The runtime record's ``migration`` says the role and phase the old daemon was in.
  - destination (not finished): kill the waiting QEMU, remove what prepare created;
    the source keeps (or takes back) the guest.
  - source: ask QEMU (query-migrate). Completed: the destination is asked to finish
    (idempotent); if it runs the guest, our QEMU stops (and --undefinesource applies).
    Anything else: cancel what still runs, tell the destination to abort, resume the
    guest here if the migration had paused it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from virtkit.daemon.locks import DomainKey
from virtkit.daemon.migration import dest as migrate_in
from virtkit.daemon.migration import disks as migrate_disks
from virtkit.daemon.migration.peer import Peer
from virtkit.daemon.migration.source import (
    ACTIVE,
    cancel_migration,
    finish_source,
    resume_if,
    set_phase,
)
from virtkit.errors import VirtkitError
from virtkit.formats.domfile import domain_to_mapping

if TYPE_CHECKING:
    from virtkit.daemon.service import Entry, Service

log = logging.getLogger("virtkit.migrate")
MONITOR_WAIT_S = 10.0


async def recover(svc: Service, e: Entry) -> None:
    sup = e.sup
    mig = sup.record.migration if sup is not None else None
    if sup is None or not mig:
        return
    name = e.domain.name
    deadline = time.monotonic() + MONITOR_WAIT_S
    while sup.alive and (sup.monitor is None or not sup.monitor.connected):
        if time.monotonic() > deadline:
            log.error("cannot recover the migration of %s: its monitor does not answer", name)
            return
        await asyncio.sleep(0.1)
    try:
        async with svc.locks.hold(DomainKey(name), "migration recovery"):
            if mig.get("role") == "destination":
                await migrate_in.abandon(svc, e)
                svc.bus.publish(name, "migration-aborted",
                                "daemon restarted before the migration finished")  # fmt: skip
                return
            await _recover_source(svc, e)
    except VirtkitError as exc:
        log.error("recovering the migration of %s failed: %s", name, exc.message)


async def _recover_source(svc: Service, e: Entry) -> None:
    sup = e.sup
    assert sup is not None and sup.record.migration is not None
    mig = sup.record.migration
    name = e.domain.name
    mon = sup._require_monitor()
    peer = Peer(str(mig.get("dest", "")))
    status = str((await mon.execute("query-migrate")).get("status", ""))
    if status in ACTIVE:
        await cancel_migration(mon)
        status = str((await mon.execute("query-migrate")).get("status", ""))
    if status == "completed" and mig.get("phase") in ("migrating", "finishing", "done"):
        config = domain_to_mapping(e.domain) if e.persistent else None
        try:
            await peer.finish(name, {"persistent": bool(mig.get("persistent")), "config": config,
                                     "paused": not mig.get("was_running", True)})  # fmt: skip
        except VirtkitError as exc:
            log.error("destination did not take %s after the restart: %s", name, exc.message)
        else:
            set_phase(svc, e, None, "done")
            await finish_source(svc, name, sup, bool(mig.get("undefine_source")))
            svc.bus.publish(name, "migrated", "completed while the daemon was restarting")
            return
    for job_id in [j["id"] for j in await mon.execute("query-jobs")]:
        if str(job_id).startswith("mig-"):
            await migrate_disks.cancel(mon, str(job_id))
    with contextlib.suppress(VirtkitError):
        await peer.abort(name)
    await resume_if(sup, bool(mig.get("was_running", True)))
    set_phase(svc, e, None, "")
    svc.bus.publish(name, "migration-failed", "daemon restarted during the migration; "
                    "the guest stays on this host")  # fmt: skip
