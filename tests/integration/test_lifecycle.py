"""The virsh lifecycle on a real tiny guest under TCG, driven through the CLI."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import Daemon, qemu_pids, tiny_yaml

pytestmark = pytest.mark.qemu

BOOT = "VIRTKIT-TINY-BOOT-OK"


def define(daemon: Daemon, tmp_path: Path, text: str, name: str = "dom.yaml") -> None:
    f = tmp_path / name
    f.write_text(text)
    daemon.cli("define", str(f))


def wait_state(daemon: Daemon, name: str, want: str, timeout: float = 60) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        got = daemon.cli("domstate", "--reason", name).stdout.strip()
        if got == want:
            return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError(f"{name}: state {got!r}, wanted {want!r}")


def test_full_lifecycle(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    define(daemon, tmp_path, tiny_yaml(tiny, "tiny", extra="accel: tcg\n"))
    out = daemon.cli("list", "--all").stdout
    assert " -    tiny   shut off" in out.replace("  ", " ") or "shut off" in out
    assert "tiny" not in daemon.cli("list").stdout

    r = daemon.cli("start", "tiny")
    assert "Domain 'tiny' started" in r.stdout
    daemon.wait_console("tiny", BOOT)
    lines = daemon.cli("list").stdout.splitlines()
    row = next(line for line in lines if "tiny" in line).split()
    assert row[0].isdigit() and row[2] == "running"
    info = daemon.cli("dominfo", "tiny").stdout
    assert "State:          running" in info and "Accelerator:    tcg" in info
    assert "Used memory:    262144 KiB" in info

    daemon.cli("suspend", "tiny")
    assert daemon.cli("domstate", "tiny").stdout.strip() == "paused"
    daemon.cli("resume", "tiny")
    assert daemon.cli("domstate", "tiny").stdout.strip() == "running"

    # reboot: the guest powers off on the ACPI button, virtkit resets it instead
    mark = daemon.console_size("tiny")
    assert "being rebooted" in daemon.cli("reboot", "tiny").stdout
    daemon.wait_console("tiny", BOOT, start=mark)
    assert daemon.cli("domstate", "tiny").stdout.strip() == "running"

    # shutdown returns at once; the guest powers off through ACPI
    t0 = time.monotonic()
    r = daemon.cli("shutdown", "tiny")
    assert "is being shutdown" in r.stdout
    assert time.monotonic() - t0 < 5
    wait_state(daemon, "tiny", "shut off (shutdown)")
    assert "VIRTKIT-POWER-BUTTON" in daemon.console_log("tiny").read_text(errors="replace")

    daemon.cli("start", "tiny")
    daemon.cli("destroy", "tiny")
    assert daemon.cli("domstate", "--reason", "tiny").stdout.strip() == "shut off (destroyed)"
    assert not qemu_pids(str(daemon.run_dir))

    daemon.cli("autostart", "tiny")
    assert "Autostart:      enable" in daemon.cli("dominfo", "tiny").stdout
    daemon.cli("autostart", "--disable", "tiny")
    assert "Autostart:      disable" in daemon.cli("dominfo", "tiny").stdout

    daemon.cli("undefine", "tiny")
    assert "tiny" not in daemon.cli("list", "--all").stdout
    events = daemon.cli("event", "--all").stdout
    for kind in ("defined", "started", "suspended", "resumed", "reboot", "stopped", "undefined"):
        assert f"'{kind}'" in events, kind


def test_shutdown_wait_and_destroy_graceful(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    define(daemon, tmp_path, tiny_yaml(tiny, "t2", extra="accel: tcg\n"))
    daemon.cli("start", "t2")
    daemon.wait_console("t2", BOOT)
    r = daemon.cli("shutdown", "--wait", "60", "t2")
    assert "is shut off" in r.stdout
    assert daemon.cli("domstate", "t2").stdout.strip() == "shut off"
    daemon.cli("start", "t2")
    daemon.cli("destroy", "--graceful", "t2")
    assert daemon.cli("domstate", "--reason", "t2").stdout.strip() == "shut off (destroyed)"


def test_wrong_state_errors(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    define(daemon, tmp_path, tiny_yaml(tiny, "t3", extra="accel: tcg\n"))
    for verb in ("shutdown", "destroy", "suspend", "resume", "reboot", "console"):
        r = daemon.cli(verb, "t3", check=False)
        assert r.returncode == 4, (verb, r.stderr)
        assert "not running" in r.stderr and "Traceback" not in r.stderr
    daemon.cli("start", "t3")
    r = daemon.cli("start", "t3", check=False)
    assert r.returncode == 4 and "already running" in r.stderr
    r = daemon.cli("undefine", "t3", check=False)
    assert r.returncode == 4 and "destroy or shut it down" in r.stderr
    r = daemon.cli("resume", "t3", check=False)
    assert r.returncode == 4 and "not paused" in r.stderr
    r = daemon.cli("dominfo", "nope", check=False)
    assert r.returncode == 3 and "not found" in r.stderr
    daemon.cli("destroy", "t3")


def test_accel_auto_reports_tcg_fallback(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    """On a host where KVM does not boot a guest, auto falls back to TCG and says so."""
    from virtkit.host.facts import HOST

    define(daemon, tmp_path, tiny_yaml(tiny, "auto"))
    r = daemon.cli("start", "auto")
    info = daemon.cli("dominfo", "auto").stdout
    if not HOST.path("/dev/kvm").exists():
        assert "Accelerator:    tcg" in info and "warning" in r.stderr
    elif "Accelerator:    tcg" in info:
        assert "warning:" in r.stderr and "TCG" in r.stderr
    daemon.wait_console("auto", BOOT)
    daemon.cli("destroy", "auto")


def test_one_writable_image_one_guest(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    import subprocess

    img = tmp_path / "shared.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "64M"], check=True)
    link = tmp_path / "alias.qcow2"
    link.symlink_to(img)  # the same file under another name is still the same file
    disks = "disks:\n  - path: {}\n"
    define(daemon, tmp_path, tiny_yaml(tiny, "first", extra="accel: tcg\n" + disks.format(img)),
           "a.yaml")  # fmt: skip
    define(daemon, tmp_path, tiny_yaml(tiny, "second", extra="accel: tcg\n" + disks.format(link)),
           "b.yaml")  # fmt: skip
    daemon.cli("start", "first")
    r = daemon.cli("start", "second", check=False)
    assert r.returncode == 4
    assert "in use (writable) by running domain 'first'" in r.stderr
    assert daemon.cli("domstate", "first").stdout.strip() == "running"
    assert daemon.cli("domstate", "second").stdout.strip() == "shut off"
    # the daemon forgets nothing across a restart: the holder is still known
    daemon.kill9()
    daemon.start()
    r = daemon.cli("start", "second", check=False)
    assert r.returncode == 4 and "'first'" in r.stderr
    daemon.cli("destroy", "first")
    daemon.cli("start", "second")  # released when the first guest's QEMU exits
    daemon.cli("destroy", "second")


def test_uefi_boot(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    from virtkit.host.firmware import find_ovmf

    if find_ovmf() is None:
        pytest.skip("OVMF is not installed (scripts/setup installs it)")
    define(daemon, tmp_path, tiny_yaml(tiny, "efi", extra="accel: tcg\n").replace(
        "boot:\n", "boot:\n  uefi: true\n"))  # fmt: skip
    daemon.cli("start", "efi")
    daemon.wait_console("efi", BOOT, timeout=180)
    info = daemon.cli("dumpxml", "efi").stdout
    assert "loader" in info or "efi" in info
    nvram = list((daemon.state_dir / "nvram").iterdir())
    # while it runs, its QEMU's ACL entry (rw) shows as the mask in the group bits
    assert len(nvram) == 1 and nvram[0].stat().st_mode & 0o707 == 0o600
    daemon.cli("destroy", "efi")
    assert nvram[0].stat().st_mode & 0o777 == 0o600  # given back


def test_hostile_backing_chain_refused(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    import subprocess

    evil = tmp_path / "evil.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", "/etc/shadow", "-F", "raw",
                    "-u", str(evil), "64M"], check=True)  # fmt: skip
    define(
        daemon, tmp_path, tiny_yaml(tiny, "evil", extra=f"accel: tcg\ndisks:\n  - path: {evil}\n")
    )
    r = daemon.cli("start", "evil", check=False)
    assert r.returncode == 2 and "/etc/shadow" in r.stderr and "outside" in r.stderr
    assert daemon.cli("domstate", "evil").stdout.strip() == "shut off"
