"""QEMU killed by a signal while running or paused ends as crashed with its resources
cleaned; SIGSTOP changes nothing; ``on_crash: restart`` restarts with back-off and gives
up after too many crashes a minute. Real QEMU (TCG)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import Daemon, qemu_pids, tiny_yaml

pytestmark = pytest.mark.qemu


def wait_for(cond: object, timeout: float = 20, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def state(daemon: Daemon, name: str) -> str:
    return daemon.cli("domstate", "--reason", name).stdout.strip()


@pytest.mark.parametrize("paused", [False, True], ids=["running", "paused"])
def test_qemu_killed_by_signal(daemon: Daemon, tiny: object, tmp_path: Path,
                               paused: bool) -> None:  # fmt: skip
    f = tmp_path / "s.yaml"
    f.write_text(tiny_yaml(tiny, "sig", extra="accel: tcg\n"))
    daemon.cli("define", str(f))
    for sig in (signal.SIGTERM, signal.SIGSEGV, signal.SIGKILL):
        daemon.cli("start", "sig", *(["--paused"] if paused else []))
        assert state(daemon, "sig") == ("paused (user)" if paused else "running (booted)")
        [pid] = qemu_pids(str(daemon.run_dir))
        run_dirs = list((daemon.run_dir / "qemu").iterdir())
        assert run_dirs
        os.kill(pid, sig)
        wait_for(lambda: state(daemon, "sig") == "shut off (crashed)", what=f"{sig.name}")
        assert not qemu_pids(str(daemon.run_dir))
        assert not list((daemon.run_dir / "qemu").iterdir()), "run directory left behind"
        from virtkit.runtime.cgroup import cgroup2_mount

        root = cgroup2_mount()
        if root is not None:
            assert not list((root / "virtkit.slice").glob("sig-*.scope"))
        events = daemon.cli("event", "--all").stdout
        assert "'crashed'" in events


def test_sigstop_changes_nothing(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(tiny_yaml(tiny, "stopped", extra="accel: tcg\n"))
    daemon.cli("define", str(f))
    daemon.cli("start", "stopped")
    [pid] = qemu_pids(str(daemon.run_dir))
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(1.5)
        assert state(daemon, "stopped") == "running (booted)"
        assert qemu_pids(str(daemon.run_dir)) == [pid]
    finally:
        os.kill(pid, signal.SIGCONT)
    time.sleep(0.3)
    assert state(daemon, "stopped") == "running (booted)"
    daemon.cli("suspend", "stopped")  # the monitor still answers
    daemon.cli("destroy", "stopped")


def test_on_crash_restart_backs_off_then_gives_up(daemon: Daemon, tiny: object,
                                                  tmp_path: Path) -> None:  # fmt: skip
    f = tmp_path / "r.yaml"
    f.write_text(tiny_yaml(tiny, "phoenix", extra="accel: tcg\non_crash: restart\n"))
    daemon.cli("define", str(f))
    daemon.cli("start", "phoenix")
    gaps = []
    for _ in range(3):  # three crashes within a minute: each restarted, later ones slower
        [pid] = qemu_pids(str(daemon.run_dir))
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda p=pid: qemu_pids(str(daemon.run_dir)) not in ([], [p])
                 and state(daemon, "phoenix") == "running (booted)", what="restart")  # fmt: skip
        gaps.append(time.monotonic() - t0)
    assert gaps[0] >= 0.9 and gaps[1] >= 1.9 and gaps[2] >= 3.9, gaps
    [pid] = qemu_pids(str(daemon.run_dir))
    os.kill(pid, signal.SIGKILL)  # the fourth: given up
    wait_for(lambda: state(daemon, "phoenix") == "shut off (crashed)", what="crashed")
    time.sleep(1.5)
    assert not qemu_pids(str(daemon.run_dir))
    assert state(daemon, "phoenix") == "shut off (crashed)"
    events = daemon.cli("event", "--all").stdout
    assert "restart-abandoned" in events and events.count("'restarted'") == 3
    daemon.cli("destroy", "phoenix", check=False)
    # a destroy is not a crash: nothing restarts it
    daemon.cli("start", "phoenix")
    daemon.cli("destroy", "phoenix")
    time.sleep(1.5)
    assert not qemu_pids(str(daemon.run_dir))
