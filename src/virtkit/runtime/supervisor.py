"""One Supervisor per running domain: spawn QEMU, pump its events, stop it.

QEMU is started in its own session with a clean environment, paused (-S), with
QMP and the serial port on Unix sockets in a 0700 directory. The supervisor
attaches to QMP, subscribes to events, then lets the guest run. A pidfd tells
us the moment QEMU exits, whether or not it is our child (after a daemon
restart it is not), so crashes are seen at once.

Shutdown is soft-then-hard: ``shutdown`` presses the ACPI power button;
``destroy`` sends SIGTERM, waits, then SIGKILL (``graceful`` stops at SIGTERM).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from virtkit.errors import LaunchError, QmpError, StateError
from virtkit.model.domain import Action
from virtkit.model.state import Reason, State
from virtkit.qemu.qmp import Event, Monitor
from virtkit.runtime import proc
from virtkit.runtime.record import RuntimeRecord

LAUNCH_TIMEOUT_S = 30.0
TERM_TIMEOUT_S = 10.0
QUIT_TIMEOUT_S = 5.0
RECONNECT_INTERVAL_S = 1.0
ATTACH_TIMEOUT_S = 2.0
LOG_TAIL_BYTES = 4096
INCOMING_TIMEOUT_S = 600.0  # loading a saved state runs at disk speed


@dataclass
class Hooks:
    """How a supervisor reports to the daemon (called on the event loop)."""

    state_changed: Callable[[Supervisor], None]
    event: Callable[[str, str, str], None]  # domain name, event type, detail
    exited: Callable[[Supervisor, Reason], None]


@dataclass(frozen=True)
class Policy:
    """What to do on guest power-off/reboot/crash, and how long to wait for QMP."""

    on_poweroff: Action = Action.DESTROY
    on_reboot: Action = Action.RESTART
    on_crash: Action = Action.DESTROY
    qmp_timeout_s: float = 10.0


def log_tail(path: str, limit: int = LOG_TAIL_BYTES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def clean_env() -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


class Supervisor:
    def __init__(self, record: RuntimeRecord, hooks: Hooks, policy: Policy) -> None:
        self.record = record
        self.hooks = hooks
        self.policy = policy
        self.state = State.RUNNING
        self.reason = Reason.BOOTED
        self.monitor: Monitor | None = None
        self._exited: asyncio.Future[Reason] = asyncio.get_running_loop().create_future()
        self._expect: Reason | None = None
        self._reboot_pending = False
        self._recovering = False
        self._pidfd: int | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.console_close: Callable[[], None] | None = None

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def alive(self) -> bool:
        return not self._exited.done()

    # -- start / attach --------------------------------------------------------------------

    @classmethod
    async def launch(
        cls, record: RuntimeRecord, log_path: str, hooks: Hooks, policy: Policy,
        pass_fds: tuple[int, ...] = (), timeout_s: float = LAUNCH_TIMEOUT_S,
        paused: bool = False, setup: Callable[[Monitor], Awaitable[None]] | None = None,
        incoming: bool = False, wrapper: tuple[str, ...] = (),
    ) -> Supervisor:  # fmt: skip
        """Spawn QEMU from record.argv, attach QMP, and start the guest.

        ``incoming``: QEMU was started with ``-incoming``; wait until it has loaded
        the guest's state before the setup steps and ``cont``. ``wrapper``: a command
        prefix that execs QEMU in place (confinement, see runtime/confine.py).

        Raises LaunchError (with exit code, argv and log tail) when QEMU exits or its
        monitor does not come up within timeout_s; nothing is left running then.
        """
        for p in (record.qmp, record.serial, record.pidfile):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)
        with open(log_path, "ab") as log:
            log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} starting: ".encode())
            log.write(" ".join(record.argv).encode() + b"\n")
            log.flush()
            log_start = log.tell()
            try:
                popen = subprocess.Popen(
                    [*wrapper, *record.argv], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    start_new_session=True, close_fds=True, pass_fds=pass_fds,
                    env=clean_env(), cwd="/",
                )  # fmt: skip
            except OSError as exc:
                raise LaunchError(
                    f"cannot execute {record.argv[0]}: {exc.strerror}",
                    exit_code=None, argv=record.argv, log_tail="",
                ) from None  # fmt: skip
        record.pid = popen.pid
        sup = cls(record, hooks, policy)
        sup._popen = popen
        try:
            await sup._wait_for_monitor(timeout_s, log_path, log_start)
            st = proc.start_time(popen.pid)
            if st is None:
                raise QmpError("QEMU exited right after start")
            record.start_time = st
            sup._watch_exit()
            if incoming:
                await sup._wait_incoming()
            if setup is not None:  # runs before the first guest instruction
                await setup(sup._require_monitor())
            if not paused:
                await sup._require_monitor().cont()
        except (QmpError, LaunchError) as exc:
            await sup._kill_now()
            if isinstance(exc, LaunchError):
                raise
            code = popen.poll()
            raise LaunchError(
                f"QEMU for domain {record.name!r} did not start: {exc.message}",
                exit_code=code, argv=record.argv, log_tail=_tail_from(log_path, log_start),
            ) from None  # fmt: skip
        sup.state, sup.reason = (
            (State.PAUSED, Reason.USER) if paused
            else (State.RUNNING, Reason.RESTORED if incoming else Reason.BOOTED)
        )  # fmt: skip
        sup._spawn(sup._monitor_loop(connected=True))
        return sup

    async def _wait_for_monitor(self, timeout_s: float, log_path: str, log_start: int) -> None:
        assert self._popen is not None
        deadline = time.monotonic() + timeout_s
        while not os.path.exists(self.record.qmp):
            code = self._popen.poll()
            if code is not None:
                raise LaunchError(
                    f"QEMU for domain {self.record.name!r} exited with status {code} "
                    "before its monitor came up",
                    exit_code=code, argv=self.record.argv,
                    log_tail=_tail_from(log_path, log_start),
                )  # fmt: skip
            if time.monotonic() > deadline:
                raise QmpError(f"no QMP socket after {timeout_s:g} s")
            await asyncio.sleep(0.003)  # QEMU makes the socket early in its start-up
        while True:  # the socket file exists from bind(), connect() works after listen()
            mon = self._new_monitor()
            try:
                await mon.connect(max(0.5, deadline - time.monotonic()))
                break
            except QmpError:
                if self._popen.poll() is not None or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.01)
        self.monitor = mon

    async def _wait_incoming(self) -> None:
        """Wait until QEMU has loaded the incoming state (its status leaves 'inmigrate')."""
        mon = self._require_monitor()
        deadline = time.monotonic() + INCOMING_TIMEOUT_S
        while (status := (await mon.query_status()).status) == "inmigrate":
            if time.monotonic() > deadline:
                raise QmpError(f"the saved state was not loaded within {INCOMING_TIMEOUT_S:g} s")
            await asyncio.sleep(0.02)
        if status not in ("paused", "prelaunch", "running"):
            raise QmpError(f"loading the saved state left QEMU in state {status!r}")

    @classmethod
    async def attach(cls, record: RuntimeRecord, hooks: Hooks, policy: Policy) -> Supervisor:
        """Re-attach to a QEMU started by an earlier daemon (identity already checked)."""
        sup = cls(record, hooks, policy)
        sup._watch_exit()
        sup.state, sup.reason = State.UNKNOWN, Reason.NO_MONITOR
        mon = sup._new_monitor()
        try:
            await mon.connect(timeout_s=ATTACH_TIMEOUT_S)
            status = await mon.query_status(timeout_s=ATTACH_TIMEOUT_S)
        except QmpError:
            await mon.close()
            sup._spawn(sup._monitor_loop(connected=False))
            return sup
        sup.monitor = mon
        sup._apply_status(status.status)
        sup._spawn(sup._monitor_loop(connected=True))
        return sup

    def _watch_exit(self) -> None:
        pid = self.record.pid
        loop = asyncio.get_running_loop()
        try:
            self._pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            loop.call_soon(self._on_exit)
            return
        loop.add_reader(self._pidfd, self._on_exit)

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _new_monitor(self) -> Monitor:
        return Monitor(self.name, self.record.qmp, timeout_s=self.policy.qmp_timeout_s,
                       on_timeout=self._monitor_stalled)  # fmt: skip

    def _monitor_stalled(self) -> None:
        """A QMP command timed out: the state is unknown until the monitor answers again."""
        if not self.alive or self._recovering:
            return
        self._recovering = True
        self._set_state(State.UNKNOWN, Reason.NO_MONITOR)
        self._spawn(self._recover())

    async def _recover(self) -> None:
        try:
            while self.alive:
                mon = self.monitor
                if mon is not None and mon.connected:
                    try:
                        status = await mon.execute(
                            "query-status", timeout_s=RECONNECT_INTERVAL_S * 5
                        )
                    except QmpError:
                        await asyncio.sleep(RECONNECT_INTERVAL_S)
                        continue
                    self._apply_status(str(status["status"]))
                    return
                await asyncio.sleep(RECONNECT_INTERVAL_S)
        finally:
            self._recovering = False

    def _require_monitor(self) -> Monitor:
        if self.monitor is None or not self.monitor.connected:
            raise QmpError(
                f"the QEMU monitor of domain {self.name!r} is not connected; "
                "virtkit keeps retrying, try again in a moment"
            )
        return self.monitor

    # -- the monitor loop: connect, pump events, reconnect while QEMU lives ----------------

    async def _monitor_loop(self, connected: bool) -> None:
        while self.alive:
            if not connected:
                mon = self._new_monitor()
                try:
                    await mon.connect(timeout_s=5.0)
                    status = await mon.query_status(timeout_s=5.0)
                except QmpError:
                    await mon.close()
                    self._set_state(State.UNKNOWN, Reason.NO_MONITOR)
                    await asyncio.sleep(RECONNECT_INTERVAL_S)
                    continue
                self.monitor = mon
                self._apply_status(status.status)
            connected = False
            mon = self._require_monitor()
            pump = asyncio.get_running_loop().create_task(self._pump(mon))
            try:
                await mon.wait_disconnected()
            finally:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
            if self.alive:
                await asyncio.sleep(0.05)  # give the pidfd a chance to report an exit first
            if self.alive:
                self._set_state(State.UNKNOWN, Reason.NO_MONITOR)

    def _apply_status(self, status: str) -> None:
        if status == "running":
            self._set_state(State.RUNNING, Reason.BOOTED)
        elif status in ("paused", "prelaunch", "suspended", "debug"):
            self._set_state(State.PAUSED, Reason.USER)
        elif status == "shutdown":
            self._set_state(State.IN_SHUTDOWN, Reason.SHUTDOWN)
            self._spawn(self._after_guest_shutdown("guest-shutdown"))
        elif status in ("guest-panicked", "internal-error"):
            self._set_state(State.PAUSED, Reason.GUEST_PANIC)
        elif status == "io-error":
            self._set_state(State.PAUSED, Reason.IO_ERROR)
        else:
            self._set_state(State.RUNNING, Reason.UNKNOWN)

    async def _pump(self, mon: Monitor) -> None:
        async for ev in mon.events():
            self._on_event(ev)

    def _on_event(self, ev: Event) -> None:
        name = ev.name
        if name == "SHUTDOWN":
            why = str(ev.data.get("reason", ""))
            self.hooks.event(self.name, "shutdown", why)
            if why.startswith("host-") and self._expect is None:
                self._expect = Reason.CRASHED if why == "host-signal" else Reason.SHUTDOWN
            if not why.startswith("host-"):
                self._set_state(State.IN_SHUTDOWN, Reason.SHUTDOWN)
                self._spawn(self._after_guest_shutdown(why))
        elif name == "STOP":
            if self.state not in (State.IN_SHUTDOWN,):
                self._set_state(State.PAUSED, Reason.USER)
        elif name == "RESUME":
            if self.state is not State.RUNNING:  # not the launch's own cont (booted/restored)
                self._set_state(State.RUNNING, Reason.UNPAUSED)
        elif name == "RESET":
            self.hooks.event(self.name, "reboot", str(ev.data.get("reason", "")))
        elif name == "GUEST_PANICKED":
            self.hooks.event(self.name, "crashed", "guest panicked")
            self._spawn(self._after_guest_shutdown("guest-panic"))
        elif name == "DEVICE_DELETED":
            self.hooks.event(self.name, "device-removed", str(ev.data))
        elif name in ("BLOCK_IO_ERROR", "BALLOON_CHANGE"):
            self.hooks.event(self.name, name.lower(), str(ev.data))
        elif name == "JOB_STATUS_CHANGE":
            job = f"{ev.data.get('id', '')} {ev.data.get('status', '')}"
            self.hooks.event(self.name, "job", job)
        elif name in ("BLOCK_JOB_COMPLETED", "BLOCK_JOB_ERROR", "BLOCK_JOB_CANCELLED"):
            self.hooks.event(self.name, "block-job", f"{name[10:].lower()} {dict(ev.data)}")
        elif name == "MIGRATION":
            self.hooks.event(self.name, "migration", str(ev.data.get("status", "")))

    async def _after_guest_shutdown(self, why: str) -> None:
        """QEMU is stopped after a guest-side shutdown (-no-shutdown): decide what next."""
        if why == "guest-panic":
            action, reason = self.policy.on_crash, Reason.CRASHED
        elif why == "guest-reset":
            action, reason = self.policy.on_reboot, Reason.SHUTDOWN
        else:
            action, reason = self.policy.on_poweroff, Reason.SHUTDOWN
        if self._reboot_pending:
            self._reboot_pending = False
            action = Action.RESTART
        try:
            if action is Action.RESTART:
                mon = self._require_monitor()
                await mon.system_reset()
                await mon.cont()
                self.hooks.event(self.name, "reboot", "restarted after " + why)
                self._set_state(State.RUNNING, Reason.BOOTED)
            elif action is Action.DESTROY:
                await self._quit(reason)
        except QmpError:
            await self._terminate(reason, graceful=False)

    # -- exit ------------------------------------------------------------------------------

    def _on_exit(self) -> None:
        if self._exited.done():
            return
        if self._pidfd is not None:
            asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        status = None
        if self._popen is not None:
            status = self._popen.poll()
        else:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.record.pid, os.WNOHANG)
        reason = self._expect or Reason.CRASHED
        if reason is Reason.CRASHED and status == 0 and self.state is State.IN_SHUTDOWN:
            reason = Reason.SHUTDOWN
        self._set_state(State.SHUTOFF, reason)
        for p in (self.record.qmp, self.record.serial, self.record.pidfile):
            with contextlib.suppress(OSError):
                os.unlink(p)
        if self.console_close is not None:
            self.console_close()
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        if self.monitor is not None:
            self._spawn(self.monitor.close())
        self._exited.set_result(reason)
        self.hooks.exited(self, reason)

    async def wait_exit(self, timeout_s: float | None = None) -> Reason:
        return await asyncio.wait_for(asyncio.shield(self._exited), timeout_s)

    async def _kill_now(self) -> None:
        self._expect = self._expect or Reason.FAILED
        proc.kill(self.record.pid, signal.SIGKILL)
        if self._popen is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._popen.wait)
        if self._pidfd is None and self._popen is not None:
            self._on_exit()
        elif self._pidfd is not None:
            with contextlib.suppress(TimeoutError):
                await self.wait_exit(5)

    async def _quit(self, reason: Reason) -> None:
        self._expect = reason
        with contextlib.suppress(QmpError):  # the connection drops as QEMU exits
            await self._require_monitor().quit()
        try:
            await self.wait_exit(QUIT_TIMEOUT_S)
        except TimeoutError:
            proc.kill(self.record.pid, signal.SIGKILL)
            await self.wait_exit(QUIT_TIMEOUT_S)

    async def _terminate(
        self, reason: Reason, graceful: bool, timeout_s: float = TERM_TIMEOUT_S
    ) -> None:
        self._expect = reason
        proc.kill(self.record.pid, signal.SIGTERM)
        try:
            await self.wait_exit(timeout_s)
        except TimeoutError:
            if graceful:
                self._expect = None
                raise StateError(
                    f"domain {self.name!r} did not stop within {timeout_s:g} s of SIGTERM; "
                    "run destroy without --graceful to kill it",
                    current=str(self.state),
                    required="shut off",
                ) from None
            proc.kill(self.record.pid, signal.SIGKILL)
            await self.wait_exit(timeout_s)

    # -- verbs -----------------------------------------------------------------------------

    async def destroy(self, graceful: bool = False) -> Reason:
        if self.alive:
            await self._terminate(Reason.DESTROYED, graceful)
        return await self.wait_exit()

    async def quit(self, reason: Reason) -> Reason:
        """Stop QEMU with QMP ``quit`` (SIGKILL if it hangs); the domain ends with ``reason``."""
        if self.alive:
            await self._quit(reason)
        return await self.wait_exit()

    async def shutdown(self) -> None:
        """Press the ACPI power button; returns at once (like virsh)."""
        await self._require_monitor().system_powerdown()

    async def reboot(self) -> None:
        """Ask the guest to reboot: power button, then reset instead of power off."""
        self._reboot_pending = True
        try:
            await self._require_monitor().system_powerdown()
        except QmpError:
            self._reboot_pending = False
            raise

    async def reset(self) -> None:
        await self._require_monitor().system_reset()

    async def suspend(self) -> None:
        await self._require_monitor().stop()
        self._set_state(State.PAUSED, Reason.USER)

    async def resume(self) -> None:
        await self._require_monitor().cont()
        self._set_state(State.RUNNING, Reason.UNPAUSED)

    def _set_state(self, state: State, reason: Reason) -> None:
        if (state, reason) == (self.state, self.reason):
            return
        self.state, self.reason = state, reason
        self.hooks.state_changed(self)

    def stats(self) -> tuple[float, int]:
        """(cpu time in seconds, RSS in KiB) of the QEMU process."""
        return proc.cpu_time_s(self.record.pid), proc.rss_kib(self.record.pid)


def _tail_from(path: str, start: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read()
    except OSError:
        return ""
    return data[-LOG_TAIL_BYTES:].decode(errors="replace")


def read_pidfile(path: str) -> int | None:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None
