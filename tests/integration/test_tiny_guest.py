"""Boot the tiny guest in plain QEMU (TCG) and check its console markers and power button."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from pathlib import Path
from typing import Any, cast

import pytest

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="no QEMU"),
]


def _argv(tiny: Any, cmdline: str) -> list[str]:
    return [
        "qemu-system-x86_64", "-accel", "tcg", "-machine", "q35", "-nodefaults",
        "-no-user-config", "-display", "none", "-m", "256", "-serial", "stdio",
        "-kernel", str(tiny.kernel), "-initrd", str(tiny.initrd), "-append", cmdline,
    ]  # fmt: skip


class Console:
    """Collects QEMU's serial output (stdout) and lets a test wait for a marker."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\r\n"))
            self._changed.set()
        self._changed.set()

    async def wait_for(self, marker: str, timeout: float) -> str:
        async def scan() -> str:
            while True:
                for line in self.lines:
                    if marker in line:
                        return line
                if self._task.done():
                    raise AssertionError(f"QEMU exited before {marker}")
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(scan(), timeout)
        except TimeoutError:
            tail = "\n".join(self.lines[-30:])
            raise AssertionError(f"no {marker} within {timeout} s; console tail:\n{tail}") from None

    async def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def _start(argv: list[str]) -> Console:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    return Console(proc)


def test_probe_guest_powers_off(tiny: Any) -> None:
    async def run() -> None:
        con = await _start(_argv(tiny, "console=ttyS0 virtkit.probe=1"))
        try:
            await con.wait_for("VIRTKIT-PROBE-OK", 60)
            assert await asyncio.wait_for(con.proc.wait(), 30) == 0
            assert any(line.startswith("VIRTKIT-CMDLINE: console=ttyS0") for line in con.lines)
        finally:
            await con.close()

    asyncio.run(run())


def test_acpi_power_button_shuts_guest_down(tiny: Any, tmp_path: Path) -> None:
    from qemu.qmp import QMPClient

    sock = tmp_path / "qmp.sock"
    argv = [*_argv(tiny, "console=ttyS0"), "-qmp", f"unix:{sock},server=on,wait=off"]

    async def run() -> None:
        con = await _start(argv)
        qmp = QMPClient("tiny-test")
        try:
            t0 = time.monotonic()
            await con.wait_for("VIRTKIT-TINY-BOOT-OK", 60)
            print(f"tiny guest up in {time.monotonic() - t0:.1f} s")
            await qmp.connect(str(sock))
            with qmp.listener("SHUTDOWN") as listener:
                await qmp.execute("system_powerdown")
                event = await asyncio.wait_for(listener.get(), 30)
            data = cast(dict[str, Any], event["data"])
            assert data["guest"] is True, event
            assert data["reason"] == "guest-shutdown", event
            await con.wait_for("VIRTKIT-POWER-BUTTON", 5)
            assert await asyncio.wait_for(con.proc.wait(), 30) == 0
        finally:
            with contextlib.suppress(Exception):
                await qmp.disconnect()
            await con.close()

    asyncio.run(run())
