"""Thin typed wrappers over ``qemu.qmp``'s QMPClient.

Every call has a deadline; every failure becomes ``virtkit.errors.QmpError``
(the command failed, timed out, or the connection is gone). The read buffer is
bounded (``READ_LIMIT_BYTES``): a peer that floods us without a newline is
disconnected, it cannot grow our memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from qemu.qmp import ConnectError, EventListener, ExecuteError, QMPClient, QMPError

from virtkit.errors import QmpError

READ_LIMIT_BYTES = 4 * 1024 * 1024
DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Event:
    name: str
    data: dict[str, Any]
    timestamp: float


@dataclass(frozen=True)
class Status:
    running: bool
    status: str  # QEMU RunState: running, paused, shutdown, prelaunch, inmigrate, ...


class Monitor:
    """One QMP connection to one QEMU.

    Raises: every public coroutine raises ``QmpError`` on failure or timeout.
    """

    def __init__(
        self, name: str, socket_path: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
        on_timeout: Callable[[], None] | None = None,
    ) -> None:  # fmt: skip
        self.name = name
        self.socket_path = socket_path
        self.timeout_s = timeout_s
        self.on_timeout = on_timeout
        self._client = QMPClient(name, readbuflen=READ_LIMIT_BYTES)
        self._listener = EventListener()
        self._client.register_listener(self._listener)

    @property
    def connected(self) -> bool:
        return str(self._client.runstate.name) == "RUNNING"

    async def connect(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Connect, read the greeting and negotiate capabilities within timeout_s."""
        try:
            await asyncio.wait_for(self._client.connect(self.socket_path), timeout_s)
        except TimeoutError:
            await self.close()
            raise QmpError(
                f"QEMU monitor at {self.socket_path} sent no greeting within {timeout_s:g} s"
            ) from None
        except (ConnectError, QMPError, OSError, EOFError) as exc:
            await self.close()
            raise QmpError(f"cannot connect to QEMU monitor {self.socket_path}: {exc}") from None

    async def close(self) -> None:
        # ValueError: the reader gave up on a line over READ_LIMIT_BYTES (a flooding peer)
        with contextlib.suppress(QMPError, OSError, EOFError, TimeoutError, ValueError):
            await asyncio.wait_for(self._client.disconnect(), 5)

    async def execute(
        self, cmd: str, args: dict[str, Any] | None = None, *, timeout_s: float | None = None
    ) -> Any:
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        try:
            return await asyncio.wait_for(self._client.execute(cmd, args), timeout_s)
        except TimeoutError:
            if self.on_timeout is not None:
                self.on_timeout()
            raise QmpError(f"QEMU did not answer {cmd!r} within {timeout_s:g} s") from None
        except ExecuteError as exc:
            raise QmpError(f"QEMU refused {cmd!r}: {exc}", qmp_class=exc.error_class) from None
        except (QMPError, OSError, EOFError) as exc:
            raise QmpError(f"QEMU monitor connection lost during {cmd!r}: {exc!r}") from None

    async def events(self) -> AsyncIterator[Event]:
        """Yield events until the connection ends."""
        while True:
            msg: dict[str, Any] = dict(await self._listener.get())
            ts = msg.get("timestamp", {})
            stamp = float(ts.get("seconds", 0)) + float(ts.get("microseconds", 0)) / 1e6
            yield Event(str(msg["event"]), dict(msg.get("data", {})), stamp)

    async def wait_disconnected(self) -> None:
        """Return when the connection has ended (QEMU exited or closed the socket)."""
        while self.connected:
            await self._client.runstate_changed()

    # -- typed commands -------------------------------------------------------------------

    async def query_status(self, timeout_s: float | None = None) -> Status:
        r = await self.execute("query-status", timeout_s=timeout_s)
        return Status(bool(r["running"]), str(r["status"]))

    async def cont(self) -> None:
        await self.execute("cont")

    async def stop(self) -> None:
        await self.execute("stop")

    async def system_powerdown(self) -> None:
        await self.execute("system_powerdown")

    async def system_reset(self) -> None:
        await self.execute("system_reset")

    async def quit(self, timeout_s: float = 2.0) -> None:
        await self.execute("quit", timeout_s=timeout_s)

    async def send_fd(self, fd: int, fdname: str) -> None:
        """Pass ``fd`` to QEMU (SCM_RIGHTS) and name it ``fdname`` (for ``fd:NAME`` URIs)."""
        try:
            self._client.send_fd_scm(fd)
        except (QMPError, OSError) as exc:
            raise QmpError(f"cannot pass a file descriptor to QEMU: {exc!r}") from None
        await self.execute("getfd", {"fdname": fdname})

    async def query_cpus_fast(self) -> list[dict[str, Any]]:
        return list(await self.execute("query-cpus-fast"))

    async def query_balloon_mib(self) -> int:
        r = await self.execute("query-balloon")
        return int(r["actual"]) // (1024 * 1024)
