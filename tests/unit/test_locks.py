"""Per-domain operation locks: one state-changing operation per domain at a time."""

from __future__ import annotations

import asyncio

import pytest

from virtkit.daemon.locks import DomainKey, OpLocks
from virtkit.errors import BusyError, StateError


def test_second_holder_gets_busy_error_naming_the_holder() -> None:
    async def main() -> BusyError:
        locks = OpLocks(wait_s=5.0)
        held = asyncio.Event()
        release = asyncio.Event()

        async def first() -> None:
            async with locks.hold(DomainKey("web"), "start"):
                held.set()
                await release.wait()

        task = asyncio.create_task(first())
        await held.wait()
        assert locks.holder(DomainKey("web")) == "start"
        try:
            with pytest.raises(BusyError) as exc:
                async with locks.hold(DomainKey("web"), "destroy", wait_s=0.05):
                    pass
        finally:
            release.set()
            await task
        assert locks.holder(DomainKey("web")) is None
        return exc.value

    err = asyncio.run(main())
    assert isinstance(err, StateError)
    assert "busy" in err.message
    assert "start" in err.message
    assert "'web'" in err.message
    assert err.details == {"current": "start", "required": "idle"}


def test_waiter_gets_the_lock_when_the_holder_finishes() -> None:
    async def main() -> list[str]:
        locks = OpLocks(wait_s=0.05)
        order: list[str] = []
        held = asyncio.Event()

        async def first() -> None:
            async with locks.hold(DomainKey("web"), "shutdown"):
                held.set()
                await asyncio.sleep(0.02)
                order.append("shutdown done")

        task = asyncio.create_task(first())
        await held.wait()
        async with locks.hold(DomainKey("web"), "start", wait_s=2.0):
            order.append("start runs")
            assert locks.holder(DomainKey("web")) == "start"
        await task
        return order

    assert asyncio.run(main()) == ["shutdown done", "start runs"]


def test_default_wait_is_used() -> None:
    async def main() -> None:
        locks = OpLocks(wait_s=0.01)
        async with locks.hold(DomainKey("web"), "migrate"):
            with pytest.raises(BusyError, match="migrate"):
                async with locks.hold(DomainKey("web"), "start"):
                    pass

    asyncio.run(main())


def test_domains_do_not_block_each_other() -> None:
    async def main() -> None:
        locks = OpLocks(wait_s=0.01)
        async with locks.hold(DomainKey("web"), "start"), locks.hold(DomainKey("db"), "start"):
            assert locks.holder(DomainKey("web")) == locks.holder(DomainKey("db")) == "start"

    asyncio.run(main())


def test_lock_released_on_error() -> None:
    async def main() -> None:
        locks = OpLocks(wait_s=0.01)
        with pytest.raises(RuntimeError):
            async with locks.hold(DomainKey("web"), "start"):
                raise RuntimeError("launch failed")
        assert locks.holder(DomainKey("web")) is None
        async with locks.hold(DomainKey("web"), "start"):
            pass

    asyncio.run(main())


def test_forget() -> None:
    async def main() -> None:
        locks = OpLocks(wait_s=0.01)
        async with locks.hold(DomainKey("web"), "undefine"):
            locks.forget(DomainKey("web"))  # held: kept
            assert locks.holder(DomainKey("web")) == "undefine"
        locks.forget(DomainKey("web"))
        locks.forget(DomainKey("never-seen"))
        async with locks.hold(DomainKey("web"), "define"):
            pass

    asyncio.run(main())
