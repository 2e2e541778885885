"""Pools and volumes through the CLI against a real daemon (qemu-img, no guest booted)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Daemon

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="no qemu-img")
MiB = 1024**2


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pool_lifecycle(daemon: Daemon) -> None:
    out = daemon.cli("pool-list").stdout
    assert out.splitlines()[0].split() == ["Name", "State", "Autostart"]
    assert out.splitlines()[2].split() == ["default", "active", "yes"]
    target = daemon.base / "pool2"
    daemon.cli("pool-define-as", "p2", "dir", "--target", str(target))
    assert "p2" not in daemon.cli("pool-list").stdout
    rows = [ln.split() for ln in daemon.cli("pool-list", "--all").stdout.splitlines()]
    assert ["p2", "inactive", "no"] in rows
    r = daemon.cli("pool-start", "p2", check=False)
    assert r.returncode == 3 and "pool-build" in r.stderr
    assert daemon.cli("pool-build", "p2").stdout == "Pool p2 built\n"
    assert target.is_dir()
    assert daemon.cli("pool-start", "p2").stdout == "Pool p2 started\n"
    daemon.cli("pool-autostart", "p2")
    info = dict(
        line.split(":", 1) for line in daemon.cli("pool-info", "p2").stdout.splitlines() if line
    )
    assert {k: v.strip() for k, v in info.items() if k in ("Name", "State", "Autostart")} == {
        "Name": "p2", "State": "running", "Autostart": "yes"}  # fmt: skip
    assert info["Capacity"].strip().endswith("iB")
    st = os.statvfs(target)
    by = daemon.cli("pool-info", "p2", "--bytes").stdout
    assert f"Capacity:       {st.f_blocks * st.f_frsize} bytes" in by
    details = daemon.cli("pool-list", "--details").stdout
    assert "Persistent" in details and "p2" in details
    assert f"<path>{target}</path>" in daemon.cli("pool-dumpxml", "p2").stdout
    assert daemon.cli("pool-refresh", "p2").stdout == "Pool p2 refreshed\n"
    r = daemon.cli("pool-undefine", "p2", check=False)
    assert r.returncode == 4 and "pool-destroy" in r.stderr
    assert daemon.cli("pool-destroy", "p2").stdout == "Pool p2 destroyed\n"
    # persisted: a restarted daemon starts p2 again (autostart)
    daemon.stop()
    daemon.start()
    assert ["p2", "active", "yes"] in [
        ln.split() for ln in daemon.cli("pool-list").stdout.splitlines()
    ]
    daemon.cli("pool-autostart", "p2", "--disable")
    daemon.cli("pool-destroy", "p2")
    assert daemon.cli("pool-undefine", "p2").stdout == "Pool p2 has been undefined\n"
    assert target.is_dir()  # files are kept
    r = daemon.cli("pool-define-as", "lv", "logical", "--target", "/dev/vg0", check=False)
    assert r.returncode == 2 and "LVM" in r.stderr
    daemon.cli("pool-define-as", "p3", "dir", "-", "-", "-", "-", str(daemon.base / "p3"))
    assert str(daemon.base / "p3") in daemon.cli("pool-dumpxml", "p3").stdout


def test_volume_lifecycle(daemon: Daemon) -> None:
    images = daemon.state_dir / "images"
    assert daemon.cli("vol-create-as", "default", "a.img", "10M").stdout == "Vol a.img created\n"
    daemon.cli("vol-create-as", "default", "b.qcow2", "1G", "--format", "qcow2")
    daemon.cli("vol-create-as", "default", "c.qcow2", "1G", "--format", "qcow2",
               "--backing-vol", "b.qcow2", "--backing-vol-format", "qcow2")  # fmt: skip
    lines = daemon.cli("vol-list", "default").stdout.splitlines()
    assert lines[0].split() == ["Name", "Path"]
    assert [ln.split() for ln in lines[2:] if ln] == [
        ["a.img", str(images / "a.img")], ["b.qcow2", str(images / "b.qcow2")],
        ["c.qcow2", str(images / "c.qcow2")]]  # fmt: skip
    details = daemon.cli("vol-list", "--pool", "default", "--details").stdout
    assert "10.00 MiB" in details and "1.00 GiB" in details
    info = daemon.cli("vol-info", "c.qcow2", "--pool", "default").stdout
    assert "Name:           c.qcow2\nType:           file\nCapacity:       1.00 GiB\n" in info
    assert f"Backing:        {images / 'b.qcow2'} (qcow2)" in info
    assert "Capacity:       10485760 bytes" in daemon.cli(
        "vol-info", str(images / "a.img"), "--bytes").stdout  # fmt: skip
    assert daemon.cli("vol-path", "a.img", "--pool", "default").stdout == f"{images / 'a.img'}\n"
    assert daemon.cli("vol-key", str(images / "a.img")).stdout == f"{images / 'a.img'}\n"
    out = daemon.cli("vol-resize", "a.img", "20M", "--pool", "default").stdout
    assert out == "Size of volume 'a.img' successfully changed to 20M\n"
    assert (images / "a.img").stat().st_size == 20 * MiB
    r = daemon.cli("vol-resize", "a.img", "5M", "--pool", "default", check=False)
    assert r.returncode == 2 and "--shrink" in r.stderr
    daemon.cli("vol-resize", "a.img", "--pool", "default", "--shrink", "--", "-5M")
    assert (images / "a.img").stat().st_size == 15 * MiB
    daemon.cli("vol-resize", "a.img", "1M", "--pool", "default", "--delta")
    assert (images / "a.img").stat().st_size == 16 * MiB
    assert daemon.cli("vol-clone", "c.qcow2", "d.qcow2", "--pool", "default").stdout == (
        "Vol d.qcow2 cloned from c.qcow2\n")  # fmt: skip
    assert "Backing" not in daemon.cli("vol-info", "d.qcow2", "--pool", "default").stdout
    r = daemon.cli("vol-delete", "b.qcow2", "--pool", "default", check=False)
    assert r.returncode == 4 and "backing file of default/c.qcow2" in r.stderr
    for v in ("d.qcow2", "c.qcow2", "b.qcow2", "a.img"):
        assert daemon.cli("vol-delete", v, "--pool", "default").stdout == f"Vol {v} deleted\n"
    assert sorted(os.listdir(images)) == []


def test_upload_download_round_trip(daemon: Daemon) -> None:
    src = daemon.base / "src.bin"
    with open(src, "wb") as f:  # 8 MiB + a bit: data, a hole, data, odd tail
        f.write(os.urandom(MiB + 17))
        f.seek(6 * MiB, os.SEEK_CUR)
        f.write(os.urandom(MiB))
    daemon.cli("vol-create-as", "default", "up.img", "1M")
    assert daemon.cli("vol-upload", "up.img", str(src), "--pool", "default").stdout == ""
    vol = daemon.state_dir / "images" / "up.img"
    assert sha(vol) == sha(src)
    assert vol.stat().st_blocks * 512 < 4 * MiB  # the hole stayed a hole
    dst = daemon.base / "dst.bin"
    daemon.cli("vol-download", "--pool", "default", "up.img", str(dst))
    assert sha(dst) == sha(src)
    assert dst.stat().st_blocks * 512 < 4 * MiB
    assert [n for n in os.listdir(vol.parent) if n.startswith(".")] == []
    r = daemon.cli("vol-upload", "up.img", str(daemon.base / "missing"), "--pool", "default",
                   check=False)  # fmt: skip
    assert r.returncode == 2 and "cannot read" in r.stderr


def test_refused(daemon: Daemon) -> None:
    images = daemon.state_dir / "images"
    cases = [
        (["vol-create-as", "default", "../x", "1M"], 2, "invalid volume name"),
        (["vol-create-as", "default", "a/b", "1M"], 2, "invalid volume name"),
        (["vol-create-as", "default", "big", "65T"], 2, "64 TiB"),
        (["vol-create-as", "default", "zero", "0"], 2, "more than 0"),
        (["vol-create-as", "nopool", "x", "1M"], 3, "pool-list"),
        (["vol-create-as", "default", "o.qcow2", "1M", "--format", "qcow2",
          "--backing-vol", "/etc/shadow"], 3, "no storage volume"),
        (["vol-info", "nope", "--pool", "default"], 3, "vol-list"),
        (["vol-info", "nope"], 2, "--pool"),
    ]  # fmt: skip
    for argv, code, msg in cases:
        r = daemon.cli(*argv, check=False)
        assert (r.returncode, msg in r.stderr) == (code, True), (argv, r.stderr)
    # a hand-made image pointing outside every pool is found at refresh and refused on use
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", "/etc/shadow", "-F",
                    "raw", str(images / "evil.qcow2"), "1M"], check=True)  # fmt: skip
    (images / "link.img").symlink_to("/etc/passwd")
    daemon.cli("pool-refresh", "default")
    names = daemon.cli("vol-list", "default").stdout
    assert "evil.qcow2" in names and "link.img" not in names
    r = daemon.cli("vol-clone", "evil.qcow2", "copy", "--pool", "default", check=False)
    assert r.returncode == 2 and "outside every active storage pool" in r.stderr
    r = daemon.cli("vol-create-as", "default", "o.qcow2", "1M", "--format", "qcow2",
                   "--backing-vol", "evil.qcow2", check=False)  # fmt: skip
    assert r.returncode == 2 and "outside" in r.stderr
    r = daemon.cli("vol-download", "link.img", str(daemon.base / "x"), "--pool", "default",
                   check=False)  # fmt: skip
    assert r.returncode == 3
    # a volume used by a defined domain cannot be deleted
    daemon.cli("vol-create-as", "default", "disk.img", "1M")
    cfg = daemon.base / "vm.yaml"
    cfg.write_text(f"name: vm1\nmemory_mib: 64\ndisks:\n  - path: {images / 'disk.img'}\n")
    daemon.cli("define", str(cfg))
    r = daemon.cli("vol-delete", "disk.img", "--pool", "default", check=False)
    assert r.returncode == 4 and "vm1" in r.stderr
    daemon.cli("undefine", "vm1")
    daemon.cli("vol-delete", "disk.img", "--pool", "default")


def test_install_disk_from_pool_volume(daemon: Daemon, tmp_path: Path) -> None:
    """--disk vol=POOL/NAME resolves to the volume's path and recorded format."""
    from virtkit.guests.bootdisk import ensure_boot_disk

    target = tmp_path / "pool"
    daemon.cli("pool-define-as", "p1", "dir", "--target", str(target))
    daemon.cli("pool-build", "p1")
    daemon.cli("pool-start", "p1")
    (target / "boot.img").write_bytes(ensure_boot_disk().read_bytes())
    daemon.cli("pool-refresh", "p1")
    daemon.cli("install", "--name", "fromvol", "--memory", "256", "--import",
               "--disk", "vol=p1/boot.img", "--network", "none", "--noautoconsole")  # fmt: skip
    cfg = daemon.cli("dumpconfig", "fromvol").stdout
    assert str(target / "boot.img") in cfg and "format: raw" in cfg
    daemon.wait_console("fromvol", "virtkit.installed=1", timeout=120)
    daemon.cli("destroy", "fromvol")
    r = daemon.cli("install", "--name", "novol", "--memory", "256", "--import",
                   "--disk", "vol=p1/nosuch.img", "--noautoconsole", check=False)  # fmt: skip
    assert r.returncode == 3 and "nosuch.img" in r.stderr
