"""Daemon faults with real QEMU (TCG): kill -9 of the daemon in the middle of a start,
and two clients starting the same domain at once."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Daemon, qemu_pids, tiny_yaml

pytestmark = pytest.mark.qemu


def settle(daemon: Daemon, name: str, timeout: float = 10) -> tuple[list[int], str]:
    """(QEMU pids, state) once they agree: one QEMU and running, or none and shut off."""
    deadline = time.monotonic() + timeout
    while True:
        pids = qemu_pids(str(daemon.run_dir))
        state = daemon.cli("domstate", name).stdout.strip()
        if (len(pids), state) in ((1, "running"), (0, "shut off")):
            return pids, state
        if time.monotonic() > deadline:
            return pids, state
        time.sleep(0.1)


def test_kill9_daemon_during_start(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    f = tmp_path / "k.yaml"
    f.write_text(tiny_yaml(tiny, "k9", extra="accel: tcg\n"))
    daemon.cli("define", str(f))
    seen = set()
    for delay in (0.0, 0.05, 0.1, 0.2, 0.35, 0.6, 1.0):
        daemon.kill9_during(delay, "start", "k9")
        pids, state = settle(daemon, "k9")
        assert (len(pids), state) in ((1, "running"), (0, "shut off")), (delay, pids, state)
        listed = daemon.cli("list", "--all").stdout
        assert ("running" in listed) == (state == "running"), listed
        seen.add(state)
        if state == "running":
            daemon.cli("destroy", "k9")
        assert not qemu_pids(str(daemon.run_dir))
    r = daemon.cli("start", "k9")  # and the domain is not stuck afterwards
    assert r.returncode == 0
    daemon.cli("destroy", "k9")


def test_two_clients_start_the_same_domain(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(tiny_yaml(tiny, "twice", extra="accel: tcg\n"))
    daemon.cli("define", str(f))
    for _ in range(2):
        procs = [subprocess.Popen([sys.executable, "-m", "virtkit.cli", "start", "twice"],
                                  env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]  # fmt: skip
        results = []
        for p in procs:
            _, err = p.communicate(timeout=60)
            results.append((p.returncode, err))
        codes = sorted(code for code, _ in results)
        assert codes == [0, 4], results
        loser = next(err for code, err in results if code == 4)
        assert "already running" in loser or "busy" in loser, loser
        assert len(qemu_pids(str(daemon.run_dir))) == 1
        daemon.cli("destroy", "twice")
        assert not qemu_pids(str(daemon.run_dir))
