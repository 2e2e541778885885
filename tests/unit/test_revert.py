"""RevertStack: undos in reverse on any exception (cancellation too), none after commit."""

from __future__ import annotations

import asyncio

import pytest

from virtkit.revert import RevertStack


def test_undos_run_in_reverse_and_failures_do_not_hide_the_error() -> None:
    done: list[str] = []

    async def undo_b() -> None:
        done.append("b")

    def broken() -> None:
        raise OSError("undo failed")

    async def go() -> None:
        async with RevertStack() as revert:
            revert.push(lambda: done.append("a"), "a")
            revert.push(broken, "broken")
            revert.push(undo_b, "b")
            raise ValueError("step failed")

    with pytest.raises(ValueError, match="step failed"):
        asyncio.run(go())
    assert done == ["b", "a"]


def test_cancellation_reverts_and_commit_keeps() -> None:
    done: list[str] = []

    async def cancelled() -> None:
        async with RevertStack() as revert:
            revert.push(lambda: done.append("x"), "x")
            await asyncio.sleep(10)

    async def go() -> None:
        t = asyncio.create_task(cancelled())
        await asyncio.sleep(0)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        async with RevertStack() as revert:
            revert.push(lambda: done.append("kept"), "kept")
            revert.commit()

    asyncio.run(go())
    assert done == ["x"]
