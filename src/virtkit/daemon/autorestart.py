"""``on_crash: restart``: a QEMU that dies on its own is started again, with back-off.

The first restart waits ``BACKOFF_S``, each further one twice as long. A domain that
crashes more than ``MAX_PER_WINDOW`` times within ``WINDOW_S`` is left shut off
(crashed) and a ``restart-abandoned`` event says why. A crash is QEMU exiting
without being asked to (killed by a signal, or its own fatal error); a destroy,
shutdown or failed start never counts. The clock is injectable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from virtkit.errors import VirtkitError
from virtkit.model.state import Reason

TYPE_CHECKING = False
if TYPE_CHECKING:
    from virtkit.daemon.service import Service

WINDOW_S = 60.0
MAX_PER_WINDOW = 3
BACKOFF_S = 1.0
log = logging.getLogger("virtkit.daemon")


class RestartPolicy:
    def __init__(self, max_per_window: int = MAX_PER_WINDOW, window_s: float = WINDOW_S,
                 backoff_s: float = BACKOFF_S,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.max_per_window, self.window_s, self.backoff_s = max_per_window, window_s, backoff_s
        self.clock = clock
        self._crashes: dict[str, list[float]] = {}

    def on_crash(self, name: str) -> float | None:
        """Record a crash; the delay before restarting, or None to give up."""
        now = self.clock()
        recent = [t for t in self._crashes.get(name, []) if now - t < self.window_s]
        recent.append(now)
        self._crashes[name] = recent
        if len(recent) > self.max_per_window:
            return None
        return float(self.backoff_s * 2 ** (len(recent) - 1))

    def forget(self, name: str) -> None:
        self._crashes.pop(name, None)


def after_crash(svc: Service, name: str) -> None:
    """Called when a domain with ``on_crash: restart`` crashed (on the event loop)."""
    delay = svc.restarts.on_crash(name)
    if delay is None:
        p = svc.restarts
        svc.bus.publish(name, "restart-abandoned",
                        f"crashed more than {p.max_per_window} times in {p.window_s:g} s; "
                        "left shut off (start it again when fixed)")  # fmt: skip
        return
    svc.bus.publish(name, "restart-scheduled", f"after a crash, in {delay:g} s")
    svc.background(_restart(svc, name, delay))


async def _restart(svc: Service, name: str, delay: float) -> None:
    await asyncio.sleep(delay)
    e = svc.entries.get(name)
    if e is None or e.active or e.reason is not Reason.CRASHED:
        return  # undefined, started or stopped by someone in the meantime
    try:
        await svc.start(name)
    except VirtkitError as exc:
        log.warning("restarting %s after a crash failed: %s", name, exc.message)
        svc.bus.publish(name, "restart-failed", exc.message)
        return
    svc.bus.publish(name, "restarted", "after a crash")
