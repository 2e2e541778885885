"""The tiny guest's install flow in plain QEMU (TCG): boot disk, installer, boot from disk."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_tiny_guest import Console, _start
from tests.unit.test_guests import check_eltorito
from tests.unit.test_guests_install import check_boot_disk

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="no QEMU"),
]

BASE = [
    "qemu-system-x86_64", "-accel", "tcg", "-machine", "q35", "-nodefaults",
    "-no-user-config", "-display", "none", "-m", "256", "-serial", "stdio",
]  # fmt: skip
TIMEOUT = 120  # TCG: ~10 s here, slower on loaded CI machines


@pytest.fixture(scope="module")
def boot_disk() -> Path:
    from virtkit.guests.bootdisk import ensure_boot_disk

    return ensure_boot_disk()


@pytest.fixture(scope="module")
def tree() -> Path:
    from virtkit.guests.media import ensure_tree

    return ensure_tree()


@pytest.fixture(scope="module")
def iso() -> Path:
    from virtkit.guests.media import ensure_iso

    return ensure_iso()


async def _boot_from_disk(drive: str) -> tuple[str, float]:
    """Boot ``drive`` with no kernel: its VIRTKIT-CMDLINE line and seconds to reach it."""
    con = await _start([*BASE, "-drive", drive])
    try:
        t0 = time.monotonic()
        line = await con.wait_for("VIRTKIT-CMDLINE:", TIMEOUT)
        took = time.monotonic() - t0
        assert any("VIRTKIT-TINY-BOOT-OK" in seen for seen in con.lines)
        assert not any("VIRTKIT-INSTALLER-START" in seen for seen in con.lines)
        return line, took
    finally:
        await con.close()


def test_boot_disk_holds_syslinux_and_the_tiny_guest(boot_disk: Path, tiny: Any) -> None:
    from virtkit.guests import bootdisk

    files = check_boot_disk(boot_disk.read_bytes())
    assert files["VMLINUZ"] == tiny.kernel.read_bytes()
    assert files["INITRD.IMG"] == tiny.initrd.read_bytes()
    assert files["SYSLINUX.CFG"].decode() == bootdisk.SYSLINUX_CFG
    assert {"LDLINUX.SYS", "LDLINUX.C32"} <= set(files)


def test_boot_disk_boots_with_seabios(boot_disk: Path) -> None:
    drive = f"file={boot_disk},format=raw,if=virtio,snapshot=on"
    line, took = asyncio.run(_boot_from_disk(drive))
    print(f"boot disk up in {took:.1f} s")
    assert "virtkit.installed=1" in line.split()


def test_installer_writes_a_bootable_disk(tree: Path, tmp_path: Path) -> None:
    disk = tmp_path / "disk.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-f", "qcow2", str(disk), "1G"], check=True, capture_output=True
    )
    pxe = tree / "images" / "pxeboot"
    argv = [
        *BASE, "-kernel", str(pxe / "vmlinuz"), "-initrd", str(pxe / "initrd.img"),
        "-append", "console=ttyS0 hello=world", "-no-reboot",
        "-drive", f"file={disk},format=qcow2,if=virtio",
    ]  # fmt: skip

    async def install() -> float:
        con = await _start(argv)
        try:
            t0 = time.monotonic()
            line = await con.wait_for("VIRTKIT-CMDLINE:", TIMEOUT)
            assert "hello=world" in line.split()
            await con.wait_for("VIRTKIT-INSTALL-DONE", TIMEOUT)
            assert await asyncio.wait_for(con.proc.wait(), 60) == 0  # reboot + -no-reboot
            assert not any("INSTALL-FAILED" in seen for seen in con.lines)
            return time.monotonic() - t0
        finally:
            await con.close()

    print(f"installed in {asyncio.run(install()):.1f} s")
    line, took = asyncio.run(_boot_from_disk(f"file={disk},format=qcow2,if=virtio"))
    print(f"installed system up in {took:.1f} s")
    assert "virtkit.installed=1" in line.split()
    assert "hello=world" not in line.split()


def test_installer_without_a_disk_says_so(tree: Path) -> None:
    pxe = tree / "images" / "pxeboot"
    argv = [
        *BASE, "-kernel", str(pxe / "vmlinuz"), "-initrd", str(pxe / "initrd.img"),
        "-append", "console=ttyS0",
    ]  # fmt: skip

    async def run() -> None:
        con: Console = await _start(argv)
        try:
            await con.wait_for("VIRTKIT-INSTALLER-START", TIMEOUT)
            await con.wait_for("VIRTKIT-INSTALL-FAILED no disk", 60)
            await asyncio.sleep(1)
            assert con.proc.returncode is None  # still up, with a shell on the console
        finally:
            await con.close()

    asyncio.run(run())


def test_iso_is_el_torito_bootable_with_isolinux(iso: Path, tmp_path: Path) -> None:
    from virtkit.guests import cache, media

    isolinux_bin, _ = media.isolinux_files(cache.default_cache_dir(), tmp_path)
    check_eltorito(iso.read_bytes(), isolinux_bin.read_bytes())


def _log_has(log: Path, marker: bytes) -> bool:
    return log.exists() and marker in log.read_bytes()


def test_cdrom_install_then_boot_from_disk(iso: Path, tmp_path: Path) -> None:
    """``virt-install --cdrom`` style: SeaBIOS boots the ISO (SATA CD-ROM), no -kernel."""
    disk = tmp_path / "disk.qcow2"
    log = tmp_path / "serial.log"
    subprocess.run(
        ["qemu-img", "create", "-f", "qcow2", str(disk), "1G"], check=True, capture_output=True
    )
    argv = [
        "qemu-system-x86_64", "-accel", "tcg", "-machine", "q35", "-nodefaults",
        "-display", "none", "-m", "256", "-serial", f"file:{log}", "-no-reboot",
        "-blockdev", f"driver=file,filename={iso},node-name=cdf,read-only=on",
        "-blockdev", "driver=raw,file=cdf,node-name=cd,read-only=on",
        "-device", "ide-cd,bus=ide.0,drive=cd,bootindex=1",
        "-blockdev", f"driver=file,filename={disk},node-name=df",
        "-blockdev", "driver=qcow2,file=df,node-name=d",
        "-device", "virtio-blk-pci,drive=d,bootindex=2",
    ]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        took = None
        while time.monotonic() - t0 < TIMEOUT:
            exited = proc.poll() is not None  # before the check: -no-reboot exits right after
            if _log_has(log, b"VIRTKIT-INSTALL-DONE"):
                took = time.monotonic() - t0
                break
            if exited:
                break
            time.sleep(0.2)
        console = log.read_text(errors="replace") if log.exists() else ""
        assert took is not None, (
            f"no VIRTKIT-INSTALL-DONE after {time.monotonic() - t0:.0f} s (QEMU exit status "
            f"{proc.poll()}); console tail:\n{console[-3000:]}"
        )
        assert proc.wait(60) == 0  # the installer reboots; -no-reboot makes QEMU exit
    finally:
        if proc.poll() is None:
            proc.kill()
        out = proc.communicate()[0]
    console = log.read_text(errors="replace")
    assert "ISOLINUX" in console, "ISOLINUX did not print to the serial port"
    cmdline = next(line for line in console.splitlines() if "VIRTKIT-CMDLINE:" in line)
    assert "console=ttyS0" in cmdline.split() and "BOOT_IMAGE=/images/pxeboot/vmlinuz" in cmdline
    assert "INSTALL-FAILED" not in console, out
    print(f"CD boot to VIRTKIT-INSTALL-DONE in {took:.1f} s")

    line, boot = asyncio.run(_boot_from_disk(f"file={disk},format=qcow2,if=virtio"))
    print(f"installed system up in {boot:.1f} s")
    assert "virtkit.installed=1" in line.split()
