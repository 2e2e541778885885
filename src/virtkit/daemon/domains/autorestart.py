"""``on_crash: restart``: a QEMU that dies on its own is started again, with back-off.

The first restart waits ``BACKOFF_S``, each further one twice as long. A domain that
crashes more than ``MAX_PER_WINDOW`` times within ``WINDOW_S`` is left shut off
(crashed) and a ``restart-abandoned`` event says why. A crash is QEMU exiting
without being asked to (killed by a signal, or its own fatal error); a destroy,
shutdown or failed start never counts. The clock is injectable.

A scheduled restart is also kept in the store (meta ``pending-restart:NAME``: when it is
due, in wall-clock time, and the crash times of the window) so that a daemon killed
during the back-off resumes it on start (``resume``, from reconcile): the guest is
restarted when due, and a crash loop across daemon restarts is still given up on. A
start, stop or undefine by the user in between cancels it (the domain is then no longer
shut off (crashed), or gone).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

from virtkit.errors import VirtkitError
from virtkit.model.domain import Action
from virtkit.model.state import Reason

TYPE_CHECKING = False
if TYPE_CHECKING:
    from virtkit.daemon.service import Service

WINDOW_S = 60.0
MAX_PER_WINDOW = 3
BACKOFF_S = 1.0
KEY = "pending-restart:"
log = logging.getLogger("virtkit.daemon")


class RestartPolicy:
    def __init__(self, max_per_window: int = MAX_PER_WINDOW, window_s: float = WINDOW_S,
                 backoff_s: float = BACKOFF_S,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.max_per_window, self.window_s, self.backoff_s = max_per_window, window_s, backoff_s
        self.clock = clock
        self._crashes: dict[str, list[float]] = {}
        self.pending: dict[str, float] = {}  # name -> wall-clock time its restart is due

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

    def history(self, name: str) -> list[float]:
        return list(self._crashes.get(name, []))

    def restore(self, name: str, crashes: list[float]) -> None:
        self._crashes[name] = list(crashes)


def after_crash(svc: Service, name: str) -> None:
    """Called when a domain with ``on_crash: restart`` crashed (on the event loop)."""
    delay = svc.restarts.on_crash(name)
    if delay is None:
        _drop(svc, name)
        p = svc.restarts
        svc.bus.publish(name, "restart-abandoned",
                        f"crashed more than {p.max_per_window} times in {p.window_s:g} s; "
                        "left shut off (start it again when fixed)")  # fmt: skip
        return
    due = _persist(svc, name, delay)
    svc.bus.publish(name, "restart-scheduled", f"after a crash, in {delay:g} s")
    svc.background(_restart(svc, name, delay, due))


def resume(svc: Service) -> None:
    """Daemon start (after reconcile): the restarts a previous daemon had scheduled."""
    rows = svc.store.db.execute("SELECT key, value FROM meta WHERE key LIKE ?", (KEY + "%",))
    for key, raw in rows.fetchall():
        name = key[len(KEY) :]
        e = svc.entries.get(name)
        try:
            data = json.loads(raw)
            due, crashes = float(data["due"]), [float(t) for t in data["crashes"]]
        except (ValueError, TypeError, KeyError):
            log.error("dropping an unreadable pending restart of %s: %r", name, raw)
            _drop(svc, name)
            continue
        if (e is None or e.active or e.reason is not Reason.CRASHED or not e.persistent
                or e.domain.on_crash is not Action.RESTART):  # fmt: skip
            log.info("pending restart of %s cancelled: the domain changed since", name)
            _drop(svc, name)
            continue
        wall, mono = time.time(), svc.restarts.clock()
        svc.restarts.restore(name, [mono - (wall - t) for t in crashes])
        svc.restarts.pending[name] = due
        delay = max(0.0, due - wall)
        svc.bus.publish(name, "restart-scheduled",
                        f"after a crash, resumed by a new daemon, in {delay:.3g} s")  # fmt: skip
        svc.background(_restart(svc, name, delay, due))


def _persist(svc: Service, name: str, delay: float) -> float:
    p = svc.restarts
    wall, mono = time.time(), p.clock()
    due = wall + delay
    crashes = [wall - (mono - t) for t in p.history(name)]
    value = json.dumps({"due": due, "crashes": crashes})
    with svc.store.tx(durable=False) as db:
        db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (KEY + name, value))
    p.pending[name] = due
    return due


def _drop(svc: Service, name: str) -> None:
    svc.restarts.pending.pop(name, None)
    with svc.store.tx(durable=False) as db:
        db.execute("DELETE FROM meta WHERE key=?", (KEY + name,))


async def _restart(svc: Service, name: str, delay: float, due: float) -> None:
    await asyncio.sleep(delay)
    if svc.restarts.pending.get(name) != due:
        return  # superseded by a later crash's restart, or dropped
    e = svc.entries.get(name)
    try:
        if e is None or e.active or e.reason is not Reason.CRASHED:
            return  # undefined, started or stopped by someone in the meantime
        try:
            await svc.start(name)
        except VirtkitError as exc:
            log.warning("restarting %s after a crash failed: %s", name, exc.message)
            svc.bus.publish(name, "restart-failed", exc.message)
            return
        svc.bus.publish(name, "restarted", "after a crash")
    finally:
        if svc.restarts.pending.get(name) == due:
            _drop(svc, name)
