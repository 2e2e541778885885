"""Intents: multi-step operations that a kill -9 of the daemon could cut in half.

Before its first step that changes a running QEMU or a disk, such an operation writes
what it is about to do into the store's table ``intents`` (one row per domain and operation),
and removes the row when it ends, whether it succeeded or failed and undid itself. A
daemon that finds a row on start was killed in the middle: before it serves requests it
finishes the operation when the hard part already happened (QEMU has the device, the
snapshot job ran), or undoes what was done (blockdev nodes without a device, a snapshot
tag on some disks only), so that the store again says what QEMU and the images hold.
Each recovery is published as an event ``recovered`` naming the outcome.

Operations with intents: attach-disk (live), snapshot-create (internal and external).
define, undefine, start and destroy need none: define/undefine are one store
transaction; start writes its runtime record before spawning (reconcile.py); a
migration keeps its phase in the runtime record (migrate_recover.py).

``crash_point(NAME)`` is a test hook: when ``VIRTKIT_CRASH_AT`` names it, the daemon
dies right there (``os._exit``, like a kill -9: no cleanup, QEMUs keep running), so the
fault tests can stop an operation at each step deterministically.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from virtkit.daemon.locks import DomainKey
from virtkit.errors import VirtkitError

if TYPE_CHECKING:
    from virtkit.daemon.service import Entry, Service

log = logging.getLogger("virtkit.daemon")

Handler = Callable[["Service", "Entry", dict[str, Any]], Awaitable[str]]


def crash_point(name: str) -> None:
    """Test hook: die here (as if killed -9) when VIRTKIT_CRASH_AT names this point."""
    if os.environ.get("VIRTKIT_CRASH_AT") == name:
        log.warning("VIRTKIT_CRASH_AT=%s: exiting as if killed", name)
        os._exit(137)


@contextlib.contextmanager
def recorded(svc: Service, domain: str, op: str, data: dict[str, Any]) -> Iterator[None]:
    """Record the intent for the duration of the block (call it under the domain lock)."""
    with svc.store.tx() as db:
        db.execute("INSERT OR REPLACE INTO intents VALUES (?,?,?,?)",
                   (domain, op, json.dumps(data), time.time()))  # fmt: skip
    try:
        yield
    finally:
        _drop(svc, domain, op)


def _drop(svc: Service, domain: str, op: str) -> None:
    with svc.store.tx() as db:
        db.execute("DELETE FROM intents WHERE domain=? AND op=?", (domain, op))


def pending(svc: Service) -> list[tuple[str, str, dict[str, Any]]]:
    rows = svc.store.db.execute("SELECT domain, op, data FROM intents ORDER BY ts").fetchall()
    return [(d, o, json.loads(x)) for d, o, x in rows]


def _handlers() -> dict[str, Handler]:
    from virtkit.daemon.domains.snapshots import recover_create
    from virtkit.daemon.hotplug.disks import recover_attach_disk

    return {"attach-disk": recover_attach_disk, "snapshot-create": recover_create}


async def recover(svc: Service) -> None:
    """At daemon start, after reconcile re-attached the QEMUs: settle every open intent."""
    handlers = _handlers()
    for domain, op, data in pending(svc):
        e = svc.entries.get(domain)
        handler = handlers.get(op)
        outcome = "nothing to do: the domain is gone"
        if e is not None and handler is not None:
            async with svc.locks.hold(DomainKey(domain), f"recover {op}"):
                try:
                    outcome = await handler(svc, e, data)
                except (VirtkitError, OSError) as exc:
                    outcome = f"failed, left as found: {exc}"
                    log.error("domain %s: recovering %s failed: %s", domain, op, exc)
        elif handler is None:
            outcome = "unknown operation (from a newer virtkit?): dropped"
        log.warning("domain %s: %s cut short by a daemon crash: %s", domain, op, outcome)
        svc.bus.publish(domain, "recovered", f"{op} cut short by a daemon crash: {outcome}")
        _drop(svc, domain, op)
