"""Operation locks: one state-changing operation per object at a time.

Objects are named by typed keys (:class:`DomainKey`, :class:`PoolKey`, :class:`VolumeKey`,
:class:`NetworkKey`), never by ad-hoc strings: a pool and a domain of the same name are
different locks. A second operation waits up to its timeout, then fails with BusyError
naming the object, the operation that holds it and for how long it has held it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from virtkit.errors import BusyError

DEFAULT_WAIT_S = 30.0


@dataclass(frozen=True, slots=True)
class DomainKey:
    name: str

    def __str__(self) -> str:
        return f"domain {self.name!r}"


@dataclass(frozen=True, slots=True)
class PoolKey:
    name: str

    def __str__(self) -> str:
        return f"pool {self.name!r}"


@dataclass(frozen=True, slots=True)
class VolumeKey:
    pool: str
    name: str

    def __str__(self) -> str:
        return f"volume {self.pool}/{self.name}"


@dataclass(frozen=True, slots=True)
class NetworkKey:
    name: str

    def __str__(self) -> str:
        return f"network {self.name!r}"


LockKey = DomainKey | PoolKey | VolumeKey | NetworkKey


class OpLocks:
    def __init__(self, wait_s: float = DEFAULT_WAIT_S) -> None:
        self.wait_s = wait_s
        self._locks: dict[LockKey, asyncio.Lock] = {}
        self._holders: dict[LockKey, tuple[str, float]] = {}

    def holder(self, key: LockKey) -> str | None:
        held = self._holders.get(key)
        return held[0] if held else None

    @contextlib.asynccontextmanager
    async def hold(self, key: LockKey, op: str, wait_s: float | None = None) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        wait = self.wait_s if wait_s is None else wait_s
        try:
            await asyncio.wait_for(lock.acquire(), wait)
        except TimeoutError:
            op_held, since = self._holders.get(key, ("another operation", time.monotonic()))
            raise BusyError(
                f"busy: {key} is held by {op_held} "
                f"(for {time.monotonic() - since:.1f} s); "
                f"waited {wait:g} s for it, try again when it finishes",
                current=op_held,
                required="idle",
            ) from None
        self._holders[key] = (op, time.monotonic())
        try:
            yield
        finally:
            self._holders.pop(key, None)
            lock.release()

    def forget(self, key: LockKey) -> None:
        lock = self._locks.get(key)
        if lock is not None and not lock.locked():
            del self._locks[key]
