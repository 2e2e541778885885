"""One mechanism for multi-step work: a revert stack (Incus' revert pattern).

Each step that changes something pushes the undo of that change; when a later step
fails, the undos run in reverse order; when every step succeeded, ``commit()`` forgets
them::

    async with RevertStack() as revert:
        await blockdev_add(mon, proto, undo=revert)   # pushes blockdev-del
        revert.push(lambda: path.unlink(missing_ok=True), f"disk {path}")
        ...
        revert.commit()                                # success: keep everything

Any exception leaving the block, ``CancelledError`` and ``KeyboardInterrupt``
included, runs the undos, then propagates unchanged. An undo that fails is logged
and the rest still run: the original error is never hidden by a failed undo. This is
the only module that catches ``BaseException``: everywhere else, undo is pushed here.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType

log = logging.getLogger("virtkit.revert")

Undo = Callable[[], Awaitable[object] | object]


class RevertStack:
    """Undo, in reverse order, the steps that succeeded, unless committed."""

    def __init__(self) -> None:
        self._undo: list[tuple[Undo, str]] = []

    def push(self, undo: Undo, label: str) -> None:
        """Register ``undo`` (a plain or async callable) for the step named ``label``."""
        self._undo.append((undo, label))

    def commit(self) -> None:
        """Every step succeeded: forget the undos (nothing will be reverted)."""
        self._undo.clear()

    def __len__(self) -> int:
        return len(self._undo)

    async def revert(self) -> None:
        """Run the undos now, newest first, and forget them. Never raises ``Exception``:
        each failure is logged; a ``BaseException`` from an undo (a second cancellation)
        is re-raised after the remaining undos ran."""
        late: BaseException | None = None
        while self._undo:
            undo, label = self._undo.pop()
            try:
                result = undo()
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:  # keep undoing the rest
                log.error("revert of %s failed: %r", label, exc)
            except BaseException as exc:  # cancelled again while undoing: finish first
                log.error("revert of %s interrupted: %r", label, exc)
                late = late or exc
        if late is not None:
            raise late

    async def __aenter__(self) -> RevertStack:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # None: the original error propagates
        if exc is not None:
            await self.revert()
