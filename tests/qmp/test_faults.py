"""QMP protocol faults, with a fake QEMU as the domain's emulator.

The daemon must stay responsive, give clear errors, leave nothing running after
a failed start, and report a live QEMU whose monitor misbehaves as 'unknown',
never as gone.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import Daemon
from virtkit.errors import QmpError
from virtkit.qemu.qmp import READ_LIMIT_BYTES, Monitor

FAKE = Path(__file__).with_name("fakeqemu.py")


def fake_emulator(tmp_path: Path, mode: str) -> Path:
    w = tmp_path / f"qemu-{mode}"
    w.write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE} {mode} "$@"\n')
    w.chmod(w.stat().st_mode | stat.S_IXUSR)
    return w


def define_fake(daemon: Daemon, tmp_path: Path, name: str, mode: str) -> None:
    f = tmp_path / f"{name}.yaml"
    f.write_text(f"name: {name}\nmemory_mib: 64\naccel: tcg\nserial: false\n"
                 f"emulator: {fake_emulator(tmp_path, mode)}\n")  # fmt: skip
    daemon.cli("define", str(f))


def fake_pids(tag: str) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes()
            except OSError:
                continue
            if b"fakeqemu.py" in cmd and tag.encode() in cmd:
                out.append(int(p.name))
    return out


@pytest.fixture
def fast_daemon(daemon: Daemon) -> Daemon:
    daemon.stop()
    # The fake QEMU is the test's Python (maybe under root's 0700 home, pyenv): not
    # confined, it runs as root (confinement has its own tests, tests/security).
    daemon.env.update(VIRTKIT_LAUNCH_TIMEOUT_S="2", VIRTKIT_QMP_TIMEOUT_S="1",
                      VIRTKIT_LOCK_WAIT_S="1", VIRTKIT_CONFINE="off")  # fmt: skip
    daemon.start()
    return daemon


@pytest.mark.parametrize("mode", ["nogreeting", "garbage"])
def test_bad_monitor_fails_start_cleanly(fast_daemon: Daemon, tmp_path: Path, mode: str) -> None:
    define_fake(fast_daemon, tmp_path, "f1", mode)
    t0 = time.monotonic()
    r = fast_daemon.cli("start", "f1", check=False)
    assert r.returncode == 7, r.stderr
    assert "did not start" in r.stderr and "Traceback" not in r.stderr
    assert time.monotonic() - t0 < 10
    assert not fake_pids(str(fast_daemon.run_dir))  # nothing left running
    assert fast_daemon.cli("domstate", "--reason", "f1").stdout.strip() == "shut off (failed)"


def test_stalled_monitor_is_unknown_not_gone(fast_daemon: Daemon, tmp_path: Path) -> None:
    define_fake(fast_daemon, tmp_path, "f2", "stall")
    fast_daemon.cli("start", "f2")
    # a command to the stalled monitor times out with a clear error ...
    r = fast_daemon.cli("suspend", "f2", check=False)
    assert r.returncode == 7 and "did not answer" in r.stderr
    # ... the daemon stays responsive, and the domain is 'unknown', not gone
    t0 = time.monotonic()
    out = fast_daemon.cli("list", "--all").stdout
    assert time.monotonic() - t0 < 2
    assert "f2" in out and "unknown" in out
    # after a daemon restart the stalled QEMU is still listed, as unknown
    fast_daemon.kill9()
    fast_daemon.start()
    assert "unknown" in fast_daemon.cli("domstate", "f2").stdout
    assert fake_pids(str(fast_daemon.run_dir))
    # destroy still works without the monitor (signals)
    fast_daemon.cli("destroy", "f2")
    assert fast_daemon.cli("domstate", "--reason", "f2").stdout.strip() == "shut off (destroyed)"
    assert not fake_pids(str(fast_daemon.run_dir))


def test_busy_lock_names_the_holder(fast_daemon: Daemon, tmp_path: Path) -> None:
    fast_daemon.stop()
    fast_daemon.env["VIRTKIT_LAUNCH_TIMEOUT_S"] = "10"
    fast_daemon.start()
    define_fake(fast_daemon, tmp_path, "f3", "slowgreet")
    results: dict[str, object] = {}

    def start() -> None:
        results["start"] = fast_daemon.cli("start", "f3", check=False)

    t = threading.Thread(target=start)
    t.start()
    time.sleep(0.8)
    r = fast_daemon.cli("destroy", "f3", check=False)
    t.join(30)
    assert r.returncode == 4
    assert "busy: domain 'f3' is held by start" in r.stderr
    assert results["start"].returncode == 0  # type: ignore[attr-defined]
    fast_daemon.cli("destroy", "f3")


def test_monitor_flood_is_bounded(tmp_path: Path) -> None:
    """A peer that sends 64 MiB without a newline is cut off; our memory stays bounded."""
    sock = str(tmp_path / "qmp.sock")
    pidfile = tmp_path / "pid"
    import subprocess

    p = subprocess.Popen([sys.executable, str(FAKE), "flood", "-pidfile", str(pidfile),
                          f"socket,id=monitor,path={sock}"])  # fmt: skip
    try:
        while not os.path.exists(sock):
            time.sleep(0.01)

        async def go() -> None:
            mon = Monitor("flood", sock, timeout_s=5)
            with pytest.raises(QmpError):
                await mon.connect(5)
                for _ in range(50):
                    await mon.query_status()
            await mon.close()

        asyncio.run(go())
        assert READ_LIMIT_BYTES <= 4 << 20
    finally:
        p.kill()
        p.wait()
