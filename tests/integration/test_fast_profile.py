"""The fast boot profile (machine microvm) on the real tiny guest under TCG: it boots
through PVH with virtio-mmio devices the guest finds, answers on its serial console and
powers off on the ACPI power button; a bzImage kernel is refused with the fix."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import Daemon
from tests.integration.test_survival import console_roundtrip

pytestmark = pytest.mark.qemu


def fast_yaml(tiny: object, name: str, kernel: object, disk: Path) -> str:
    return (
        f"name: {name}\nmemory_mib: 256\nmachine: microvm\naccel: tcg\n"
        f"boot:\n  kernel: {kernel}\n  initrd: {tiny.initrd}\n"  # type: ignore[attr-defined]
        '  cmdline: "console=ttyS0"\n'
        f"disks:\n  - path: {disk}\nnics:\n  - type: user\n"
    )


def test_fast_profile_boots_and_powers_off(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    pvh = tiny.pvh_kernel  # type: ignore[attr-defined]
    assert pvh is not None, "the tiny guest has no vmlinux"
    disk = tmp_path / "fast.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    f = tmp_path / "fast.yaml"
    f.write_text(fast_yaml(tiny, "fast", pvh, disk))
    daemon.cli("define", str(f))
    daemon.cli("start", "fast")
    daemon.wait_console("fast", "tiny# ")
    # the disk and the NIC are on the MMIO transport, and the guest found both
    console_roundtrip(daemon, "fast", "echo MMIO-$(ls /sys/block | grep -c ^vda)-"
                      "$(ls /sys/class/net | grep -c ^eth0)", "MMIO-1-1")  # fmt: skip
    daemon.cli("shutdown", "fast", "--wait", "60")
    assert "shut off" in daemon.cli("domstate", "fast").stdout


def test_fast_profile_refuses_a_bzimage(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    disk = tmp_path / "fast.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    f = tmp_path / "bz.yaml"
    f.write_text(fast_yaml(tiny, "bz", tiny.kernel, disk))  # type: ignore[attr-defined]
    r = daemon.cli("define", str(f), check=False)
    assert r.returncode == 2, r
    assert "bzImage" in r.stderr and "vmlinux" in r.stderr
    assert "bz" not in daemon.cli("list", "--all").stdout.split()
