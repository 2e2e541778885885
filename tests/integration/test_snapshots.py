"""Snapshots on a real tiny guest: with RAM (revert restores a running guest's memory),
shut-off internal ones, external disk-only overlays merged back on delete."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import Daemon, tiny_yaml
from tests.integration.test_survival import console_roundtrip

pytestmark = pytest.mark.qemu


def boot_with_disk(daemon: Daemon, tiny: object, tmp_path: Path, name: str) -> Path:
    img = tmp_path / f"{name}.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "64M"], check=True)
    f = tmp_path / f"{name}.yaml"
    f.write_text(tiny_yaml(tiny, name, extra=f"accel: tcg\ndisks:\n  - path: {img}\n"))
    daemon.cli("define", str(f))
    daemon.cli("start", name)
    daemon.wait_console(name, "tiny# ")
    return img


def test_snapshot_with_ram_revert_restores_marker(
    daemon: Daemon, tiny: object, tmp_path: Path
) -> None:
    boot_with_disk(daemon, tiny, tmp_path, "snap")
    console_roundtrip(daemon, "snap", "echo old > /root/marker; echo W1-$((1+1))", "W1-2")
    r = daemon.cli("snapshot-create-as", "snap", "s1", "--description", "before the change")
    assert "Domain snapshot s1 created" in r.stdout
    console_roundtrip(daemon, "snap", "echo new > /root/marker; echo W2-$((2+2))", "W2-4")
    daemon.cli("snapshot-revert", "snap", "s1")
    assert daemon.cli("domstate", "snap").stdout.strip() == "running"
    out = console_roundtrip(daemon, "snap", "echo MARK-$(cat /root/marker)", "MARK-")
    assert "MARK-old" in out and "MARK-new" not in out.split("echo MARK-")[-1]
    info = daemon.cli("snapshot-info", "snap", "s1").stdout
    assert "State:          running" in info and "Current:        yes" in info
    assert "Location:       internal" in info
    daemon.cli("snapshot-create-as", "snap", "s2")
    tree = daemon.cli("snapshot-list", "snap", "--tree").stdout
    assert tree.splitlines()[:2] == ["s1", "  +- s2"]
    assert daemon.cli("snapshot-current", "snap", "--name").stdout.strip() == "s2"
    daemon.cli("snapshot-delete", "snap", "s1")
    assert daemon.cli("snapshot-list", "snap", "--name").stdout.split() == ["s2"]
    daemon.cli("destroy", "snap")


def test_disk_only_external_snapshot_and_merge(
    daemon: Daemon, tiny: object, tmp_path: Path
) -> None:
    img = boot_with_disk(daemon, tiny, tmp_path, "ext")
    daemon.cli("snapshot-create-as", "ext", "e1", "--disk-only")
    overlay = tmp_path / "ext.e1.qcow2"
    assert overlay.exists()
    assert str(overlay) in daemon.cli("dumpconfig", "ext").stdout  # the guest writes there now
    console_roundtrip(daemon, "ext", "echo data | dd of=/dev/vda bs=512 seek=2048 conv=fsync "
                      "2>/dev/null; echo DD-$((5+5))", "DD-10")  # fmt: skip
    daemon.cli("snapshot-delete", "ext", "e1")  # live block-commit back into the base
    assert not overlay.exists()
    assert str(img) in daemon.cli("dumpconfig", "ext").stdout
    daemon.cli("destroy", "ext")
    got = subprocess.run(["qemu-io", "-f", "qcow2", "-r", "-c", "read -P 0x64 1048576 1",
                          str(img)], capture_output=True, text=True, check=False)  # fmt: skip
    assert "read 1/1 bytes" in got.stdout, got.stdout + got.stderr  # 'd' of "data" reached base


def test_shut_off_internal_snapshot(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    img = boot_with_disk(daemon, tiny, tmp_path, "off")
    daemon.cli("destroy", "off")
    daemon.cli("snapshot-create-as", "off", "cold")
    listed = subprocess.run(["qemu-img", "snapshot", "-l", str(img)],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "cold" in listed
    assert "shut off" in daemon.cli("snapshot-list", "off").stdout
    daemon.cli("snapshot-revert", "off", "cold")
    assert daemon.cli("domstate", "off").stdout.strip() == "shut off"
    r = daemon.cli("snapshot-create-as", "off", "cold", check=False)
    assert r.returncode == 2 and "already has a snapshot" in r.stderr
    r = daemon.cli("snapshot-revert", "off", "nosuch", check=False)
    assert r.returncode == 3 and "snapshot-list" in r.stderr
    r = daemon.cli("snapshot-create-as", "off", "../x", check=False)
    assert r.returncode == 2 and "invalid snapshot name" in r.stderr
