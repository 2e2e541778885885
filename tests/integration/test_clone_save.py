"""clone (full and linked), save/restore, managedsave, block devices and undefine with
storage, on real tiny guests under TCG, driven through the CLI."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Daemon, qemu_pids, tiny_yaml
from tests.integration.test_survival import console_roundtrip

pytestmark = pytest.mark.qemu

BOOT = "VIRTKIT-TINY-BOOT-OK"
PROMPT = "tiny# "


def qcow2(path: Path, size: str = "64M") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    return path


def img_info(path: Path) -> dict[str, object]:
    out = subprocess.run(
        ["qemu-img", "info", "-U", "--output=json", "-f", "qcow2", str(path)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    info: dict[str, object] = json.loads(out.stdout)
    return info


def define(daemon: Daemon, tiny: object, tmp_path: Path, name: str,
           disks: tuple[str, ...] = (), extra: str = "") -> None:  # fmt: skip
    text = "accel: tcg\n" + extra
    if disks:
        text += "disks:\n" + "".join(f"  - {d}\n" for d in disks)
    f = tmp_path / f"{name}.yaml"
    f.write_text(tiny_yaml(tiny, name, extra=text))
    daemon.cli("define", str(f))


@pytest.fixture
def vk(daemon: Daemon) -> Daemon:
    return daemon


def boot(daemon: Daemon, name: str) -> None:
    mark = daemon.console_size(name)
    daemon.cli("start", name)
    daemon.wait_console(name, BOOT, start=mark)
    daemon.wait_console(name, PROMPT, start=mark)


def state(daemon: Daemon, name: str) -> str:
    return daemon.cli("domstate", "--reason", name).stdout.strip()


def test_linked_clone_boots_alongside_original(vk: Daemon, tiny: object, tmp_path: Path) -> None:
    base = qcow2(vk.state_dir / "images" / "orig.qcow2")
    define(vk, tiny, tmp_path, "orig", (f"path: {base}",), extra="nics:\n  - type: user\n")
    t0 = time.monotonic()
    out = vk.cli("clone", "--original", "orig", "--name", "lnk", "--auto-clone", "--linked")
    took = time.monotonic() - t0
    assert "Clone 'lnk' created successfully." in out.stdout
    overlay = vk.state_dir / "images" / "lnk.qcow2"
    assert img_info(overlay)["backing-filename"] == str(base)
    # the original now writes to its own overlay on the same (frozen) base
    orig_list = vk.cli("domblklist", "orig").stdout
    (orig_top,) = [ln.split()[1] for ln in orig_list.splitlines() if ln.startswith(" vda")]
    assert orig_top != str(base) and img_info(Path(orig_top))["backing-filename"] == str(base)
    c1, c2 = vk.cli("dumpconfig", "--json", "orig").stdout, vk.cli("dumpconfig", "--json", "lnk")
    a, b = json.loads(c1), json.loads(c2.stdout)
    assert a["uuid"] != b["uuid"] and a["nics"][0]["mac"] != b["nics"][0]["mac"]
    vk.cli("start", "orig")
    vk.cli("start", "lnk")
    vk.wait_console("orig", BOOT)
    vk.wait_console("lnk", BOOT)
    assert state(vk, "orig").startswith("running") and state(vk, "lnk").startswith("running")
    assert len(qemu_pids(str(vk.run_dir))) == 2
    vk.cli("destroy", "lnk")
    vk.cli("destroy", "orig")
    print(f"linked clone: {took * 1000:.0f} ms (CLI round trip)")
    # the clone's overlay goes; the base stays while the original needs it
    r = vk.cli("undefine", "lnk", "--remove-all-storage").stdout
    assert f"Volume 'vda'({overlay}) removed." in r and not overlay.exists() and base.exists()
    r = vk.cli("undefine", "orig", "--remove-all-storage").stdout
    assert f"({orig_top}) removed." in r and f"({base}) removed." in r and not base.exists()


def test_full_clone_and_running_source_refused(vk: Daemon, tiny: object, tmp_path: Path) -> None:
    src_img = qcow2(tmp_path / "src.qcow2")
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 1M", str(src_img)],
                   check=True, capture_output=True)  # fmt: skip
    iso = tmp_path / "media.iso"
    iso.write_bytes(b"\0" * 4096)
    define(vk, tiny, tmp_path, "src", (f"path: {src_img}", f"path: {iso}\n    device: cdrom"))
    vk.cli("start", "src")
    r = vk.cli("clone", "--original", "src", "--name", "cp", "--auto-clone", check=False)
    assert r.returncode == 4 and "shut off" in r.stderr
    vk.cli("destroy", "src")
    r = vk.cli("clone", "--original", "src", "--name", "cp", check=False)
    assert r.returncode == 2 and "--auto-clone" in r.stderr
    dest = tmp_path / "copy.qcow2"
    out = vk.cli("clone", "-o", "src", "-n", "cp", "--file", str(dest)).stdout
    assert "Allocating 'copy.qcow2'" in out
    info = img_info(dest)
    assert "backing-filename" not in info and info["virtual-size"] == 64 << 20
    cmp = subprocess.run(["qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", str(src_img),
                          str(dest)], capture_output=True)  # fmt: skip
    assert cmp.returncode == 0
    blk = vk.cli("domblklist", "--details", "cp").stdout
    assert f" file   disk     vda      {dest}" in blk and f"cdrom    sda      {iso}" in blk
    boot(vk, "cp")  # the copy boots while the source stays off
    vk.cli("destroy", "cp")
    # a failed clone leaves nothing behind
    r = vk.cli("clone", "-o", "src", "-n", "bad", "--file", str(tmp_path / "no/dir/x.qcow2"),
               check=False)  # fmt: skip
    assert r.returncode != 0 and "bad" not in vk.cli("list", "--all").stdout


def test_save_and_restore_keep_guest_ram(vk: Daemon, tiny: object, tmp_path: Path) -> None:
    define(vk, tiny, tmp_path, "sv")
    boot(vk, "sv")
    console_roundtrip(vk, "sv", "export VKMARK=ram-$((6*7)); echo set-$VKMARK", "set-ram-42")
    file = tmp_path / "sv.save"
    t0 = time.monotonic()
    out = vk.cli("save", "sv", str(file)).stdout
    t_save = time.monotonic() - t0
    assert f"Domain 'sv' saved to {file}" in out
    assert state(vk, "sv") == "shut off (saved)" and not qemu_pids(str(vk.run_dir))
    assert file.read_bytes()[:16] == b"virtkit-save v1 "
    t0 = time.monotonic()
    assert f"Domain restored from {file}" in vk.cli("restore", str(file)).stdout
    t_restore = time.monotonic() - t0
    assert state(vk, "sv") == "running (restored)"
    console_roundtrip(vk, "sv", "echo got-$VKMARK", "got-ram-42")
    print(f"save {t_save:.2f} s, restore {t_restore:.2f} s, file {file.stat().st_size} bytes")
    # restore --paused leaves it paused; a save of a running domain is refused for restore
    vk.cli("save", "sv", str(file))
    vk.cli("restore", "--paused", str(file))
    assert state(vk, "sv").startswith("paused")
    r = vk.cli("restore", str(file), check=False)
    assert r.returncode == 4 and "already" in r.stderr
    vk.cli("resume", "sv")
    console_roundtrip(vk, "sv", "echo again-$VKMARK", "again-ram-42")
    vk.cli("destroy", "sv")
    bad = tmp_path / "junk.save"
    bad.write_bytes(b"not a save file")
    r = vk.cli("restore", str(bad), check=False)
    assert r.returncode == 2 and "not a virtkit save file" in r.stderr


def test_managedsave_then_start_resumes(vk: Daemon, tiny: object, tmp_path: Path) -> None:
    define(vk, tiny, tmp_path, "ms")
    boot(vk, "ms")
    console_roundtrip(vk, "ms", "export VKMARK=ms-$((6*7)); echo set-$VKMARK", "set-ms-42")
    assert "state saved by virtkit" in vk.cli("managedsave", "ms").stdout
    assert state(vk, "ms") == "shut off (saved)"
    assert "Managed save:   yes" in vk.cli("dominfo", "ms").stdout
    r = vk.cli("undefine", "ms", check=False)
    assert r.returncode == 4 and "--managed-save" in r.stderr
    vk.cli("start", "ms")
    assert state(vk, "ms") == "running (restored)"
    assert "Managed save:   no" in vk.cli("dominfo", "ms").stdout
    console_roundtrip(vk, "ms", "echo got-$VKMARK", "got-ms-42")
    # --force-boot discards the image and boots afresh
    vk.cli("managedsave", "ms")
    mark = vk.console_size("ms")
    vk.cli("start", "--force-boot", "ms")
    vk.wait_console("ms", BOOT, start=mark)
    assert "Managed save:   no" in vk.cli("dominfo", "ms").stdout
    vk.cli("managedsave", "ms")
    assert "Removed managedsave image" in vk.cli("managedsave-remove", "ms").stdout
    assert "removal skipped" in vk.cli("managedsave-remove", "ms").stdout
    vk.cli("managedsave", "ms", check=False)  # not running: refused
    vk.cli("undefine", "ms")


def test_block_list_info_resize(vk: Daemon, tiny: object, tmp_path: Path) -> None:
    img = qcow2(tmp_path / "data.qcow2")
    define(vk, tiny, tmp_path, "blk", (f"path: {img}",))
    out = vk.cli("domblklist", "blk").stdout.splitlines()
    assert out[0].split() == ["Target", "Source"] and out[2].split() == ["vda", str(img)]
    info = vk.cli("domblkinfo", "blk", "vda").stdout
    assert f"Capacity:       {64 << 20}\n" in info and "Allocation:" in info
    vk.cli("blockresize", "blk", "vda", "96M")
    assert f"Capacity:       {96 << 20}" in vk.cli("domblkinfo", "blk", str(img)).stdout
    r = vk.cli("blockresize", "blk", "vda", "32M", check=False)
    assert r.returncode == 2 and "--shrink" in r.stderr
    boot(vk, "blk")
    vk.cli("blockresize", "blk", "vda", "128M")
    info = vk.cli("domblkinfo", "blk", "vda").stdout
    assert f"Capacity:       {128 << 20}" in info
    console_roundtrip(vk, "blk", "cat /sys/block/vda/size", str((128 << 20) // 512))
    human = vk.cli("domblkinfo", "--human", "blk", "vda").stdout
    assert "Capacity:       128.000 MiB" in human
    r = vk.cli("domblkinfo", "blk", "vdz", check=False)
    assert r.returncode == 3 and "vda" in r.stderr
    vk.cli("destroy", "blk")


def test_undefine_remove_all_storage(vk: Daemon, tiny: object, tmp_path: Path) -> None:
    managed = qcow2(vk.state_dir / "images" / "u1.qcow2")
    managed2 = qcow2(vk.state_dir / "images" / "u2.qcow2")
    outside = qcow2(tmp_path / "outside.qcow2")
    iso = vk.state_dir / "images" / "u.iso"
    iso.write_bytes(b"\0" * 4096)
    disks = [f"path: {managed}", f"path: {outside}", f"path: {managed2}",
             f"path: {iso}\n    device: cdrom"]  # fmt: skip
    define(vk, tiny, tmp_path, "u", tuple(disks))
    vk.cli("start", "u")
    r = vk.cli("undefine", "u", "--remove-all-storage", check=False)
    assert r.returncode == 4 and managed.exists()
    vk.cli("destroy", "u")
    r = vk.cli("undefine", "u", "--storage", "vdz", check=False)
    assert r.returncode == 2 and "u" in vk.cli("list", "--all", "--name").stdout
    out = vk.cli("undefine", "u", "--remove-all-storage").stdout
    assert "Domain 'u' has been undefined" in out
    assert f"Volume 'vda'({managed}) removed." in out and not managed.exists()
    assert f"Volume 'vdc'({managed2}) removed." in out and not managed2.exists()
    assert f"Storage volume 'vdb'({outside}) is not managed by virtkit." in out
    assert outside.exists() and iso.exists() and f"'sda'({iso}) not removed" in out
    # --storage picks
    a, b = qcow2(vk.state_dir / "images" / "p1.qcow2"), qcow2(vk.state_dir / "images" / "p2.qcow2")
    define(vk, tiny, tmp_path, "p", (f"path: {a}", f"path: {b}"))
    out = vk.cli("undefine", "p", "--storage", "vdb").stdout
    assert f"Volume 'vdb'({b}) removed." in out and a.exists() and not b.exists()
