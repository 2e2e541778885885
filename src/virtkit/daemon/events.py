"""The event bus: every event is stored with a sequence number, then waiters wake.

A client that comes back with the last sequence number it saw misses nothing
the store still holds (the newest 10,000 events).
"""

from __future__ import annotations

import asyncio
import logging
import time

from virtkit.daemon.store import Store, StoredEvent

log = logging.getLogger("virtkit.events")


class EventBus:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._changed = asyncio.Event()

    def publish(self, domain: str, type_: str, detail: str) -> int:
        seq = self.store.add_event(domain, type_, detail, time.time())
        log.info("event %d %s %s %s", seq, domain, type_, detail)
        self._changed.set()
        self._changed = asyncio.Event()
        return seq

    def last_seq(self) -> int:
        """The newest sequence number handed out (0 before the first event)."""
        row = self.store.db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
        return int(row[0])

    async def wait(
        self, after: int, domain: str | None = None, timeout_s: float = 0.0, limit: int = 1000
    ) -> list[StoredEvent]:
        """Events after ``after``; if none yet, wait up to timeout_s for the next."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.store.events(after, domain, limit)
            remaining = deadline - time.monotonic()
            if found or remaining <= 0:
                return found
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                return []
