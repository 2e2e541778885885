"""An ``on_crash: restart`` scheduled when the daemon is killed -9 during the back-off is
not lost: the next daemon restarts the guest when due; a user's start/destroy in between
cancels it (issue 12). Real QEMU (TCG), real daemons."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import Daemon, qemu_pids, tiny_yaml

pytestmark = pytest.mark.qemu

BACKOFF_S = 4.0


def wait_for(cond: object, timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def state(daemon: Daemon, name: str) -> str:
    return daemon.cli("domstate", "--reason", name).stdout.strip()


def crash_then_kill_daemon(daemon: Daemon, tiny: object, tmp_path: Path, name: str) -> float:
    """Boot ``name`` (on_crash: restart), SIGKILL its QEMU, kill -9 the daemon during the
    back-off and start a new one; when the restart was due."""
    daemon.stop()
    daemon.env["VIRTKIT_RESTART_BACKOFF_S"] = str(BACKOFF_S)
    daemon.start()
    f = tmp_path / f"{name}.yaml"
    f.write_text(tiny_yaml(tiny, name, extra="accel: tcg\non_crash: restart\n"))
    daemon.cli("define", str(f))
    daemon.cli("start", name)
    [pid] = qemu_pids(str(daemon.run_dir))
    os.kill(pid, signal.SIGKILL)
    due = time.monotonic() + BACKOFF_S
    wait_for(lambda: "restart-scheduled" in daemon.cli("event", "--all").stdout,
             what="restart-scheduled")  # fmt: skip
    assert state(daemon, name) == "shut off (crashed)"
    daemon.kill9()  # during the back-off
    assert time.monotonic() < due - 1, "too slow: the back-off had already run out"
    daemon.start()
    return due


def test_pending_restart_survives_a_daemon_kill9(daemon: Daemon, tiny: object,
                                                 tmp_path: Path) -> None:  # fmt: skip
    due = crash_then_kill_daemon(daemon, tiny, tmp_path, "lazarus")
    wait_for(lambda: state(daemon, "lazarus") == "running (booted)", timeout=60,
             what="the restart by the new daemon")  # fmt: skip
    assert time.monotonic() >= due - 0.5, "restarted before the back-off ran out"
    assert len(qemu_pids(str(daemon.run_dir))) == 1
    events = daemon.cli("event", "--all").stdout
    assert "resumed by a new daemon" in events and "'restarted'" in events, events
    # done: another daemon restart schedules nothing more
    daemon.stop()
    daemon.start()
    time.sleep(1)
    assert state(daemon, "lazarus") == "running (booted)"
    assert len(qemu_pids(str(daemon.run_dir))) == 1
    daemon.cli("destroy", "lazarus")


def test_user_start_and_destroy_cancel_the_pending_restart(daemon: Daemon, tiny: object,
                                                           tmp_path: Path) -> None:  # fmt: skip
    due = crash_then_kill_daemon(daemon, tiny, tmp_path, "stays")
    daemon.cli("start", "stays")  # the user's own start, then a destroy: nothing restarts it
    daemon.cli("destroy", "stays")
    time.sleep(max(0.0, due - time.monotonic()) + 1.5)
    assert state(daemon, "stays") == "shut off (destroyed)"
    assert not qemu_pids(str(daemon.run_dir))
    assert "'restarted'" not in daemon.cli("event", "--all").stdout
    daemon.kill9()  # and nothing is left for a later daemon either
    daemon.start()
    time.sleep(1)
    assert state(daemon, "stays") == "shut off (destroyed)"
    assert not qemu_pids(str(daemon.run_dir))
