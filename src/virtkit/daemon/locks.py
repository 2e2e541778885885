"""Per-domain operation locks: one state-changing operation per domain at a time.

A second operation waits up to its timeout, then fails with BusyError naming the
operation that holds the lock and for how long it has held it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from virtkit.errors import BusyError

DEFAULT_WAIT_S = 30.0


class OpLocks:
    def __init__(self, wait_s: float = DEFAULT_WAIT_S) -> None:
        self.wait_s = wait_s
        self._locks: dict[str, asyncio.Lock] = {}
        self._holders: dict[str, tuple[str, float]] = {}

    def holder(self, name: str) -> str | None:
        held = self._holders.get(name)
        return held[0] if held else None

    @contextlib.asynccontextmanager
    async def hold(self, name: str, op: str, wait_s: float | None = None) -> AsyncIterator[None]:
        lock = self._locks.setdefault(name, asyncio.Lock())
        wait = self.wait_s if wait_s is None else wait_s
        try:
            await asyncio.wait_for(lock.acquire(), wait)
        except TimeoutError:
            op_held, since = self._holders.get(name, ("another operation", time.monotonic()))
            raise BusyError(
                f"busy: domain {name!r} is held by {op_held} "
                f"(for {time.monotonic() - since:.1f} s); "
                f"waited {wait:g} s for it, try again when it finishes",
                current=op_held,
                required="idle",
            ) from None
        self._holders[name] = (op, time.monotonic())
        try:
            yield
        finally:
            self._holders.pop(name, None)
            lock.release()

    def forget(self, name: str) -> None:
        lock = self._locks.get(name)
        if lock is not None and not lock.locked():
            del self._locks[name]
