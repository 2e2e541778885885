"""Unit tests of the tiny-guest builder: cpio writer, module closure, media, cache."""

from __future__ import annotations

import configparser
import gzip
import io
import lzma
import os
import stat
import struct
from pathlib import Path

import pytest

from virtkit.errors import HostError
from virtkit.guests import cache, debpkg, kmods, media, tiny
from virtkit.guests.__main__ import main
from virtkit.guests.cpio import CpioWriter, write_gzip_cpio

# --- helpers ---------------------------------------------------------------


def parse_newc(data: bytes) -> list[dict[str, object]]:
    """A small independent newc reader: list of entries up to the trailer."""
    out: list[dict[str, object]] = []
    pos = 0
    while True:
        assert data[pos : pos + 6] == b"070701", f"bad magic at {pos}"
        f = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = f[11], f[6]
        name_start = pos + 110
        name = data[name_start : name_start + namesize - 1].decode()
        assert data[name_start + namesize - 1] == 0
        body = name_start + namesize
        body += -body % 4
        content = data[body : body + filesize]
        pos = body + filesize
        pos += -pos % 4
        if name == "TRAILER!!!":
            assert pos == len(data)
            return out
        out.append(
            {"name": name, "mode": f[1], "uid": f[2], "rdev": (f[9], f[10]), "data": content}
        )


def fake_ko(modinfo: dict[str, str]) -> bytes:
    """A minimal ELF64 LE relocatable with a ``.modinfo`` section."""
    info = b"".join(f"{k}={v}".encode() + b"\0" for k, v in modinfo.items())
    shstr = b"\0.modinfo\0.shstrtab\0"
    info_off = 64
    shstr_off = info_off + len(info)
    shoff = shstr_off + len(shstr)
    shoff += -shoff % 8
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x28, shoff)
    struct.pack_into("<HHH", header, 0x3A, 64, 3, 2)

    def sh(name: int, off: int, size: int) -> bytes:
        return struct.pack("<IIQQQQIIQQ", name, 1, 0, 0, off, size, 0, 0, 1, 0)

    body = bytes(header) + info + shstr
    body += b"\0" * (shoff - len(body))
    return body + bytes(64) + sh(1, info_off, len(info)) + sh(10, shstr_off, len(shstr))


# --- cpio ------------------------------------------------------------------


def test_cpio_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "initrd.img"
    write_gzip_cpio(
        path,
        [
            ("init", b"#!/bin/sh\necho hi\n", 0o755),
            ("bin/busybox", b"\x7fELF" + bytes(1001), 0o755),
            ("bin/sh", "busybox", 0),
            ("root", None, 0o700),
            ("lib/modules/6.1/kernel/a.ko", b"abc", 0o644),
        ],
    )
    entries = parse_newc(gzip.decompress(path.read_bytes()))
    by_name = {e["name"]: e for e in entries}
    assert list(by_name)[:2] == ["dev", "dev/console"]
    console = by_name["dev/console"]
    assert stat.S_ISCHR(int(console["mode"])) and console["rdev"] == (5, 1)  # type: ignore[call-overload]
    assert by_name["init"]["data"] == b"#!/bin/sh\necho hi\n"
    assert int(by_name["init"]["mode"]) & 0o7777 == 0o755  # type: ignore[call-overload]
    assert len(by_name["bin/busybox"]["data"]) == 1005  # type: ignore[arg-type]
    assert stat.S_ISLNK(int(by_name["bin/sh"]["mode"]))  # type: ignore[call-overload]
    assert by_name["bin/sh"]["data"] == b"busybox"
    assert stat.S_ISDIR(int(by_name["root"]["mode"]))  # type: ignore[call-overload]
    names = [e["name"] for e in entries]
    # parents come before children, each exactly once
    for d in ("bin", "lib", "lib/modules", "lib/modules/6.1", "lib/modules/6.1/kernel"):
        assert names.count(d) == 1
        assert names.index(d) < names.index("lib/modules/6.1/kernel/a.ko") or d == "bin"
    assert all(e["uid"] == 0 for e in entries)


def test_cpio_rejects_duplicates() -> None:
    w = CpioWriter(io.BytesIO())
    w.add_file("a", b"1")
    with pytest.raises(ValueError, match="duplicate"):
        w.add_file("a", b"2")


def test_cpio_is_reproducible(tmp_path: Path) -> None:
    entries: list[tuple[str, bytes | str | None, int]] = [("x", b"data", 0o644)]
    write_gzip_cpio(tmp_path / "a", entries)
    write_gzip_cpio(tmp_path / "b", entries)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


# --- kernel modules --------------------------------------------------------

FAKE_DEP = """\
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko \
kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko \
kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/char/hw_random/virtio-rng.ko.xz: kernel/drivers/virtio/virtio.ko \
kernel/drivers/virtio/virtio_ring.ko
"""


def test_modules_dep_closure_is_in_load_order() -> None:
    paths, deps = kmods.parse_modules_dep(FAKE_DEP)
    assert paths["virtio_rng"] == "kernel/drivers/char/hw_random/virtio-rng.ko.xz"
    order, missing = kmods.closure(
        ["virtio_net", "virtio-rng", "virtio_pci", "evdev", "unix"], deps, builtin=["evdev"]
    )
    assert missing == ["unix"]
    assert "evdev" not in order
    assert sorted(order) == sorted(set(order))
    for mod, needed in deps.items():
        if mod in order:
            assert all(order.index(d) < order.index(mod) for d in needed), mod


def test_closure_survives_cycles() -> None:
    order, missing = kmods.closure(["a"], {"a": ("b",), "b": ("a",)})
    assert sorted(order) == ["a", "b"] and missing == []


def test_modname_and_builtin() -> None:
    assert kmods.modname("kernel/fs/9p/9p.ko.zst") == "9p"
    assert kmods.modname("crc-t10dif") == "crc_t10dif"
    assert kmods.parse_builtin("kernel/drivers/acpi/button.ko\n\n") == {"button"}


def test_modinfo_and_scan_without_modules_dep(tmp_path: Path) -> None:
    root = tmp_path / "6.1.0-1-amd64"
    (root / "kernel" / "a").mkdir(parents=True)
    (root / "kernel" / "a" / "top.ko").write_bytes(fake_ko({"name": "top", "depends": "mid"}))
    (root / "kernel" / "a" / "mid.ko.xz").write_bytes(
        lzma.compress(fake_ko({"depends": "low-level,gone"}))
    )
    (root / "kernel" / "a" / "low_level.ko").write_bytes(fake_ko({"license": "GPL"}))
    (root / "modules.builtin").write_text("kernel/x/gone.ko\n")
    assert kmods.modinfo(fake_ko({"depends": "x,y", "vermagic": "6.1"}))["depends"] == "x,y"
    tree = kmods.scan_tree(root)
    order, missing = kmods.closure(["top"], tree.deps, tree.builtin)
    assert order == ["low_level", "mid", "top"] and missing == []
    assert kmods.read_ko(root / tree.paths["mid"])[:4] == b"\x7fELF"


def test_rootfs_layout(tmp_path: Path) -> None:
    root = tmp_path / "6.1.0-9-amd64"
    (root / "kernel").mkdir(parents=True)
    for name in tiny.MODULES:
        deps = "virtio" if name.startswith("virtio_") else ""
        (root / "kernel" / f"{name}.ko").write_bytes(fake_ko({"depends": deps}))
    (root / "kernel" / "virtio.ko").write_bytes(fake_ko({}))
    entries = {name: content for name, content, _ in tiny._rootfs(b"BB", root)}
    load = entries["etc/modules.load"]
    assert isinstance(load, bytes)
    order = load.decode().split()
    assert order[0] == "kernel/crc32c_generic.ko"
    assert order.index("kernel/virtio.ko") < order.index("kernel/virtio_pci.ko")
    assert all(f"lib/modules/6.1.0-9-amd64/{p}" in entries for p in order)
    dep = entries["lib/modules/6.1.0-9-amd64/modules.dep"]
    assert isinstance(dep, bytes)
    assert "kernel/virtio_blk.ko: kernel/virtio.ko" in dep.decode().splitlines()
    init = entries["init"]
    assert isinstance(init, bytes)
    for marker in ("VIRTKIT-TINY-BOOT-OK", "VIRTKIT-CMDLINE: ", "VIRTKIT-PROBE-OK"):
        assert marker.encode() in init
    assert b"VIRTKIT-POWER-BUTTON" in entries["etc/acpi/PWRF/00000080"]  # type: ignore[operator]
    assert entries["bin/sh"] == "busybox"


def test_rootfs_requires_core_modules(tmp_path: Path) -> None:
    (tmp_path / "6.1" / "kernel").mkdir(parents=True)
    with pytest.raises(HostError, match="virtio_pci"):
        tiny._rootfs(b"BB", tmp_path / "6.1")


def test_uncompress_bzimage() -> None:
    elf = b"\x7fELF" + bytes(5000)
    assert tiny.uncompress_bzimage(b"setup" * 100 + lzma.compress(elf) + b"tail") == elf
    assert tiny.uncompress_bzimage(b"MZ" + gzip.compress(elf, mtime=0)) == elf
    assert tiny.uncompress_bzimage(b"no payload") is None


# --- media -----------------------------------------------------------------


def test_treeinfo_content() -> None:
    cp = configparser.ConfigParser()
    cp.read_string(media.treeinfo())
    assert cp["general"]["family"] == "VirtkitTiny"
    assert cp["general"]["version"] == "1"
    assert cp["general"]["arch"] == "x86_64"
    assert cp["images-x86_64"]["kernel"] == "images/pxeboot/vmlinuz"
    assert cp["images-x86_64"]["initrd"] == "images/pxeboot/initrd.img"


def _fake_guest(root: Path) -> tiny.TinyGuest:
    d = root / f"tiny-6.1.0-1-amd64-1-bb1-{tiny._recipe_hash()}"
    d.mkdir(parents=True)
    (d / "vmlinuz").write_bytes(b"KERNEL" * 1000)
    (d / "initrd.img").write_bytes(b"INITRD" * 500)
    (d / "version").write_text("6.1.0-1-amd64 1 busybox 1\n")
    guest = tiny.find_tiny(root)
    assert guest is not None
    return guest


@pytest.fixture
def no_apt(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_a: object) -> object:
        raise AssertionError("apt must not be consulted when a guest is cached")

    monkeypatch.setattr(debpkg, "resolve", refuse)
    monkeypatch.setattr(debpkg, "depends_on", refuse)


@pytest.fixture
def fake_disk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A stand-in for the boot disk, so media tests need no syslinux."""
    disk = tmp_path / "fake-boot-disk.img"
    disk.write_bytes(b"\x55\xaa" * 4096)
    monkeypatch.setattr(media, "ensure_boot_disk", lambda _root=None: disk)
    return disk


FAKE_ISOLINUX_BIN = b"\xfa\xeb\x3e" + b"I" * (38912 - 3)  # 19 sectors, like the real one


@pytest.fixture
def fake_isolinux(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Path, Path]:
    """Stand-ins for ``isolinux.bin`` and ``ldlinux.c32``, so ISO tests need no apt."""
    isolinux_bin, ldlinux = tmp_path / "isolinux.bin", tmp_path / "ldlinux.c32"
    isolinux_bin.write_bytes(FAKE_ISOLINUX_BIN)
    ldlinux.write_bytes(b"LDLINUX" * 100)
    monkeypatch.setattr(media, "isolinux_files", lambda _root, _dest: (isolinux_bin, ldlinux))
    return isolinux_bin, ldlinux


def test_tree_and_iso(
    tmp_path: Path, no_apt: None, fake_disk: Path, fake_isolinux: tuple[Path, Path]
) -> None:
    import pycdlib

    guest = _fake_guest(tmp_path)
    tree = media.ensure_tree(tmp_path)
    assert tree.parent.name.startswith("install-")
    assert (tree / ".treeinfo").read_text() == media.treeinfo()
    assert (tree / "images/pxeboot/vmlinuz").read_bytes() == guest.kernel.read_bytes()
    installer = tree / "images/pxeboot/initrd.img"
    media.write_installer_initrd(tmp_path / "want.img", guest.initrd, fake_disk)
    assert installer.read_bytes() == (tmp_path / "want.img").read_bytes()
    assert installer.read_bytes().startswith(guest.initrd.read_bytes())
    assert media.ensure_tree(tmp_path) == tree

    iso_path = media.ensure_iso(tmp_path)
    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "VIRTKIT_TINY"
        assert iso.has_rock_ridge() and iso.has_joliet()
        for kw, prefix in (("rr_path", ""), ("joliet_path", "")):
            for rel, src in (("images/pxeboot/vmlinuz", guest.kernel), (".treeinfo", None)):
                buf = io.BytesIO()
                iso.get_file_from_iso_fp(buf, **{kw: f"/{prefix}{rel}"})
                want = src.read_bytes() if src else media.treeinfo().encode()
                assert buf.getvalue() == want
        buf = io.BytesIO()
        iso.get_file_from_iso_fp(buf, rr_path="/images/pxeboot/initrd.img")
        assert buf.getvalue() == installer.read_bytes()
        for name, want in (
            ("isolinux.cfg", media.ISOLINUX_CFG.encode()),
            ("ldlinux.c32", fake_isolinux[1].read_bytes()),
        ):
            buf = io.BytesIO()
            iso.get_file_from_iso_fp(buf, rr_path=f"/isolinux/{name}")
            assert buf.getvalue() == want
        assert iso.eltorito_boot_catalog is not None
    finally:
        iso.close()
    assert iso_path.name == media.iso_name()
    assert media.ensure_iso(tmp_path) == iso_path
    check_eltorito(iso_path.read_bytes(), FAKE_ISOLINUX_BIN)


def check_eltorito(image: bytes, isolinux_bin: bytes) -> None:
    """Check, by hand, the El Torito boot record, catalog and boot info table of ``image``."""
    sector = 2048
    brvd = image[17 * sector : 18 * sector]  # the boot record follows the PVD (sector 16)
    assert brvd[:7] == b"\x00CD001\x01"
    assert brvd[7:39] == b"EL TORITO SPECIFICATION".ljust(32, b"\0")
    (catalog_lba,) = struct.unpack_from("<I", brvd, 0x47)
    cat = image[catalog_lba * sector : catalog_lba * sector + 64]
    assert cat[0] == 1 and cat[1] == 0  # validation entry, platform x86
    assert cat[0x1E:0x20] == b"\x55\xaa"
    assert sum(struct.unpack_from("<16H", cat, 0)) & 0xFFFF == 0  # checksum
    indicator, media_type, seg, _sys, count, rba = struct.unpack_from("<BBHBxHI", cat, 32)
    assert (indicator, media_type, seg) == (0x88, 0, 0)  # bootable, no emulation, 0x7C0
    assert count == media.BOOT_LOAD_SIZE
    boot = image[rba * sector : rba * sector + len(isolinux_bin)]
    assert boot[:8] == isolinux_bin[:8] and boot[64:] == isolinux_bin[64:]
    pvd_lba, file_lba, length, csum = struct.unpack_from("<IIII", boot, 8)
    assert (pvd_lba, file_lba, length) == (16, rba, len(isolinux_bin))
    assert csum == sum(struct.unpack_from(f"<{(len(boot) - 64) // 4}I", boot, 64)) & 0xFFFFFFFF


def test_iso_without_isolinux_is_not_bootable(tmp_path: Path) -> None:
    import pycdlib

    kernel, initrd = tmp_path / "vmlinuz", tmp_path / "initrd.img"
    kernel.write_bytes(b"K" * 100)
    initrd.write_bytes(b"I" * 100)
    media.write_iso(tmp_path / "plain.iso", kernel, initrd)
    iso = pycdlib.PyCdlib()
    iso.open(str(tmp_path / "plain.iso"))
    try:
        assert iso.eltorito_boot_catalog is None
    finally:
        iso.close()


def test_isolinux_cfg_boots_the_installer_on_the_serial_port() -> None:
    lines = [line.split() for line in media.ISOLINUX_CFG.splitlines()]
    assert lines[0] == ["SERIAL", "0", "115200"]
    assert ["KERNEL", f"/{media.KERNEL_PATH}"] in lines
    assert ["INITRD", f"/{media.INITRD_PATH}"] in lines
    assert ["APPEND", "console=ttyS0"] in lines
    assert ["PROMPT", "0"] in lines and ["TIMEOUT", "0"] in lines


def test_iso_name_tracks_the_isolinux_cfg(monkeypatch: pytest.MonkeyPatch) -> None:
    name = media.iso_name()
    assert name != "virtkit-tiny.iso"  # the old, unbootable ISO's name
    monkeypatch.setattr(media, "ISOLINUX_CFG", media.ISOLINUX_CFG + "# changed\n")
    assert media.iso_name() != name


def test_isolinux_files_reports_missing_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    got: list[str] = []

    def extract(deb: Path, dest: Path) -> Path:
        got.append(deb.name)
        return dest

    monkeypatch.setattr(debpkg, "resolve", lambda name: debpkg.Package(name, "1"))
    monkeypatch.setattr(debpkg, "download", lambda pkg, _d: tmp_path / pkg.deb_name)
    monkeypatch.setattr(debpkg, "extract", extract)
    with pytest.raises(HostError, match=r"without isolinux\.bin"):
        media.isolinux_files(tmp_path, tmp_path / "x")
    assert got == ["isolinux_1_amd64.deb", "syslinux-common_1_amd64.deb"]
    got.clear()
    for rel in (media.ISOLINUX_BIN, media.LDLINUX_C32):
        (tmp_path / "x" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "x" / rel).write_bytes(b"x")
    assert media.isolinux_files(tmp_path, tmp_path / "x") == (
        tmp_path / "x" / media.ISOLINUX_BIN,
        tmp_path / "x" / media.LDLINUX_C32,
    )


# --- cache and CLI ---------------------------------------------------------


def test_cached_guest_is_returned_without_apt(tmp_path: Path, no_apt: None) -> None:
    guest = _fake_guest(tmp_path)
    assert tiny.ensure_tiny(tmp_path) == guest
    assert guest.pvh_kernel is None


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VIRTKIT_CACHE_DIR", str(tmp_path))
    assert cache.default_cache_dir() == tmp_path / "guests"
    monkeypatch.delenv("VIRTKIT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache.default_cache_dir() == tmp_path / "x" / "virtkit" / "guests"


def test_stale_build_dirs_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / ".build-999999999-abc"
    dead.mkdir()
    live = tmp_path / f".build-{os.getpid()}-xyz"
    live.mkdir()
    cache.clean_stale(tmp_path)
    assert not dead.exists() and live.exists()


def test_publish_keeps_the_first(tmp_path: Path) -> None:
    for n in ("a", "b"):
        (tmp_path / n).mkdir()
        (tmp_path / n / "f").write_text(n)
    cache.publish(tmp_path / "a", tmp_path / "final")
    cache.publish(tmp_path / "b", tmp_path / "final")
    assert (tmp_path / "final" / "f").read_text() == "a"


def test_missing_tools_give_host_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("shutil.which", lambda _name: None)
    with pytest.raises(HostError, match="install apt"):
        debpkg.resolve("busybox-static")
    with pytest.raises(HostError, match="install dpkg"):
        debpkg.extract(tmp_path / "x.deb", tmp_path / "out")


def test_failed_command_gives_host_error() -> None:
    with pytest.raises(HostError, match="exit 3"):
        debpkg.run(["sh", "-c", "echo oops >&2; exit 3"], "testing")


def test_cli_path(
    tmp_path: Path, no_apt: None, fake_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    guest = _fake_guest(tmp_path)
    assert main(["path", "tiny", "--cache-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split() == [str(guest.kernel), str(guest.initrd)]
    assert main(["--cache-dir", str(tmp_path), "build", "tree"]) == 0
    assert "tree " in capsys.readouterr().out
