"""Guests survive the daemon; QEMU dying is noticed at once; the console works."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Daemon, qemu_pids, tiny_yaml

pytestmark = pytest.mark.qemu

BOOT = "VIRTKIT-TINY-BOOT-OK"


def boot(daemon: Daemon, tiny: object, tmp_path: Path, name: str) -> None:
    f = tmp_path / f"{name}.yaml"
    f.write_text(tiny_yaml(tiny, name, extra="accel: tcg\n"))
    daemon.cli("define", str(f))
    daemon.cli("start", name)
    daemon.wait_console(name, BOOT)
    daemon.wait_console(name, "tiny# ")


def console_roundtrip(daemon: Daemon, name: str, command: str, expect: str) -> str:
    # Ctrl+] (0x1d) leaves, like an interactive user would.
    p = subprocess.Popen(
        [sys.executable, "-m", "virtkit.cli", "console", name], env=daemon.env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert p.stdin is not None
    time.sleep(0.5)
    p.stdin.write(command.encode() + b"\n")
    p.stdin.flush()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if expect in daemon.console_log(name).read_text(errors="replace"):
            break
        time.sleep(0.1)
    time.sleep(0.3)
    p.stdin.write(b"\x1d")
    p.stdin.flush()
    out, err = p.communicate(timeout=15)
    assert p.returncode == 0, err
    text = out.decode(errors="replace")
    assert "Connected to domain" in text and expect in text, text
    return text


def test_console_interactive_and_force(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    boot(daemon, tiny, tmp_path, "con")
    console_roundtrip(daemon, "con", "echo hello-$((6*7))", "hello-42")
    # one console at a time; --force takes it over
    holder = subprocess.Popen(
        [sys.executable, "-m", "virtkit.cli", "console", "con"], env=daemon.env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    time.sleep(1.5)
    r = daemon.cli("console", "con", check=False, input="")
    assert r.returncode != 0 and "in use" in r.stderr and "--force" in r.stderr
    console_roundtrip_force = subprocess.run(
        [sys.executable, "-m", "virtkit.cli", "console", "--force", "con"], env=daemon.env,
        input=b"echo forced-$((2+3))\n", capture_output=True, timeout=30,
    )  # fmt: skip
    assert console_roundtrip_force.returncode == 0
    assert b"forced-5" in console_roundtrip_force.stdout
    _, err = holder.communicate(timeout=15)
    assert holder.returncode == 1 and b"took over" in err


def test_guest_survives_daemon_kill9(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    boot(daemon, tiny, tmp_path, "keep")
    before = daemon.cli("list").stdout
    pids = qemu_pids(str(daemon.run_dir))
    assert len(pids) == 1
    daemon.kill9()
    time.sleep(0.5)
    assert qemu_pids(str(daemon.run_dir)) == pids  # the guest did not notice
    daemon.start()
    assert daemon.cli("list").stdout == before  # same Id, same state
    assert daemon.cli("domstate", "--reason", "keep").stdout.strip().startswith("running")
    console_roundtrip(daemon, "keep", "echo alive-$((40+2))", "alive-42")
    # and it is still controllable: ACPI shutdown through the re-attached monitor
    daemon.cli("shutdown", "--wait", "60", "keep")
    assert daemon.cli("domstate", "--reason", "keep").stdout.strip() == "shut off (shutdown)"
    assert not qemu_pids(str(daemon.run_dir))


def test_qemu_kill9_is_crashed_within_a_second(
    daemon: Daemon, tiny: object, tmp_path: Path
) -> None:
    boot(daemon, tiny, tmp_path, "victim")
    (pid,) = qemu_pids(str(daemon.run_dir))
    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    while daemon.cli("domstate", "--reason", "victim").stdout.strip() != "shut off (crashed)":
        assert time.monotonic() - t0 < 1.0 + 0.5, "crash not noticed within a second"
        time.sleep(0.02)
    assert "'crashed' for domain 'victim'" in daemon.cli("event", "--all").stdout
    assert "shut off (crashed)" in daemon.cli("dominfo", "victim").stdout
    # a crashed domain starts again normally
    daemon.cli("start", "victim")
    daemon.cli("destroy", "victim")


def test_qemu_dies_while_daemon_down(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    boot(daemon, tiny, tmp_path, "gone")
    (pid,) = qemu_pids(str(daemon.run_dir))
    daemon.kill9()
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    daemon.start()
    assert daemon.cli("domstate", "--reason", "gone").stdout.strip() == "shut off (crashed)"
    assert "while the daemon was not running" in daemon.cli("event", "--all").stdout


def test_autostart_on_daemon_start(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    f = tmp_path / "auto.yaml"
    f.write_text(tiny_yaml(tiny, "boot1", extra="accel: tcg\n"))
    daemon.cli("define", str(f))
    daemon.cli("autostart", "boot1")
    daemon.stop()
    daemon.start()
    deadline = time.monotonic() + 30
    while "running" not in daemon.cli("domstate", "boot1").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    daemon.cli("destroy", "boot1")
