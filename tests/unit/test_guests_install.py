"""Unit tests of the tiny guest's boot disk (MBR, FAT reader) and installer initrd."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest

from tests.unit.test_guests import parse_newc
from virtkit.errors import HostError
from virtkit.guests import bootdisk, media, tiny
from virtkit.guests.cpio import write_gzip_cpio

# --- a small independent FAT16 reader (also used by the integration tests) -------


def fat_files(part: bytes) -> dict[str, bytes]:
    """``{"NAME.EXT": content}`` of the root directory of a FAT16 file system."""
    assert part[510:512] == b"\x55\xaa", "no boot sector signature"
    assert part[54:62] == b"FAT16   ", "not FAT16"
    bps, spc, reserved, nfats, root_entries, _total, _media, fat_sz = struct.unpack_from(
        "<HBHBHHBH", part, 11
    )
    fat = part[reserved * bps : (reserved + fat_sz) * bps]
    root = (reserved + nfats * fat_sz) * bps
    data = root + root_entries * 32
    cluster_size = bps * spc

    files: dict[str, bytes] = {}
    for off in range(root, data, 32):
        entry = part[off : off + 32]
        if entry[0] == 0:
            break
        attr = entry[11]
        if entry[0] == 0xE5 or attr & 0x08 or attr & 0x10:  # deleted, label/LFN, directory
            continue
        name = entry[:8].decode().rstrip()
        ext = entry[8:11].decode().rstrip()
        cluster, size = struct.unpack_from("<HI", entry, 26)
        chunks = []
        while 2 <= cluster < 0xFFF0:
            start = data + (cluster - 2) * cluster_size
            chunks.append(part[start : start + cluster_size])
            cluster = int(struct.unpack_from("<H", fat, 2 * cluster)[0])
        files[f"{name}.{ext}" if ext else name] = b"".join(chunks)[:size]
    return files


def check_boot_disk(disk: bytes) -> dict[str, bytes]:
    """Check the MBR of a boot disk image; the files of its FAT partition."""
    assert disk[510:512] == b"\x55\xaa"
    boot, ptype, start, count = struct.unpack_from("<B3xB3xII", disk, 446)
    assert boot == 0x80 and ptype == bootdisk.PART_TYPE_FAT16_LBA
    assert start == bootdisk.PART_START
    assert (start + count) * 512 == len(disk)
    assert disk[462:510] == bytes(48), "only one partition"
    return fat_files(disk[start * 512 :])


# --- MBR ---------------------------------------------------------------------


def test_chs() -> None:
    assert bootdisk.chs(0) == bytes((0, 1, 0))
    assert bootdisk.chs(2048) == bytes((32, 33, 0))  # 2048 = head 32 * 63 + sector 32
    assert bootdisk.chs(255 * 63 * 1023 + 62) == bytes((0, 0xC0 | 63, 0xFF))
    assert bootdisk.chs(255 * 63 * 1024) == b"\xfe\xff\xff"


def test_mbr_layout() -> None:
    sector = bootdisk.mbr(b"\xfa" * 440, 2048, 30720)
    assert len(sector) == 512 and sector[510:] == b"\x55\xaa"
    assert sector[:440] == b"\xfa" * 440
    assert struct.unpack_from("<I", sector, 440)[0] == bootdisk.DISK_SIGNATURE
    status, chs_first, ptype, chs_last, lba, count = struct.unpack_from("<B3sB3sII", sector, 446)
    assert (status, ptype, lba, count) == (0x80, 0x0E, 2048, 30720)
    assert chs_first == bootdisk.chs(2048) and chs_last == bootdisk.chs(2048 + 30720 - 1)
    with pytest.raises(HostError, match="at most 440"):
        bootdisk.mbr(bytes(446), 2048, 1)


def test_assemble(tmp_path: Path) -> None:
    part = tmp_path / "part.img"
    part.write_bytes(b"P" * 4096)
    out = tmp_path / "disk.img"
    bootdisk.assemble(b"\xeb\x63", part, out)
    disk = out.read_bytes()
    assert len(disk) == 1024 * 1024 + 4096
    assert disk[:2] == b"\xeb\x63" and disk[510:512] == b"\x55\xaa"
    assert disk[512 : 1024 * 1024] == bytes(1024 * 1024 - 512)
    assert disk[1024 * 1024 :] == b"P" * 4096
    assert struct.unpack_from("<II", disk, 454) == (2048, 8)
    part.write_bytes(b"odd")
    with pytest.raises(HostError, match="whole number of sectors"):
        bootdisk.assemble(b"", part, out)


def test_partition_size_leaves_room() -> None:
    mib = 1 << 20
    assert bootdisk.partition_size(0) == 15 * mib
    assert bootdisk.partition_size(11 * mib + 1) == 15 * mib
    assert bootdisk.partition_size(12 * mib + 1) == 16 * mib
    assert bootdisk.partition_size(30 * mib) == 33 * mib


def test_syslinux_cfg_boots_the_installed_system() -> None:
    lines = [line.split() for line in bootdisk.SYSLINUX_CFG.splitlines()]
    assert ["APPEND", *bootdisk.KERNEL_ARGS.split()] in lines
    assert "virtkit.installed=1" in bootdisk.KERNEL_ARGS.split()
    assert ["KERNEL", "/vmlinuz"] in lines and ["INITRD", "/initrd.img"] in lines
    assert ["PROMPT", "0"] in lines  # no menu: boot at once


def test_recipe_key_tracks_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    key = bootdisk.recipe_key()
    monkeypatch.setattr(bootdisk, "SYSLINUX_CFG", bootdisk.SYSLINUX_CFG + "# changed\n")
    assert bootdisk.recipe_key() != key


# --- installer initrd ----------------------------------------------------------


def test_installer_initrd_is_tiny_initrd_plus_cpio(tmp_path: Path) -> None:
    base = tmp_path / "initrd.img"
    write_gzip_cpio(base, [("init", b"#!/bin/sh\n", 0o755)])
    if len(base.read_bytes()) % 4 == 0:  # make the alignment padding matter
        base.write_bytes(base.read_bytes() + b"\0")
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(512) + b"bootable" * 1000)
    out = tmp_path / "installer.img"
    media.write_installer_initrd(out, base, disk)

    data = out.read_bytes()
    head = base.read_bytes()
    assert data.startswith(head)
    rest_at = len(head) + (-len(head) % 4)
    assert rest_at % 4 == 0 and data[len(head) : rest_at] == bytes(rest_at - len(head))
    entries = {str(e["name"]): e for e in parse_newc(data[rest_at:])}
    assert set(entries) == {"etc", "etc/virtkit-installer", "virtkit", "virtkit/disk.img.gz"}
    payload = entries["virtkit/disk.img.gz"]["data"]
    assert isinstance(payload, bytes) and gzip.decompress(payload) == disk.read_bytes()
    flag = entries["etc/virtkit-installer"]["data"]
    assert isinstance(flag, bytes)
    settings = dict(
        line.split("=", 1) for line in flag.decode().splitlines() if not line.startswith("#")
    )
    assert settings == {"payload": "/virtkit/disk.img.gz", "size": str(len(disk.read_bytes()))}


def test_init_runs_the_installer_only_with_the_flag() -> None:
    init = tiny.init_script()
    flag = f"/{media.INSTALLER_FLAG}"
    assert f"[ -e {flag} ] && ! has virtkit.noinstall=1" in init
    for marker in ("VIRTKIT-INSTALLER-START", "VIRTKIT-INSTALL-DONE", "INSTALL-FAILED no disk"):
        assert marker in init
    # the boot markers (read by tests for the installer's cmdline) come first
    assert init.index('"VIRTKIT-CMDLINE: ') < init.index("VIRTKIT-INSTALLER-START")
