"""A BIOS-bootable disk image of the tiny guest: what its installer writes to /dev/vda.

Layout: an MBR (syslinux's ``mbr.bin`` boot code, one active FAT16 partition at
1 MiB) whose partition holds SYSLINUX, Debian's ``vmlinuz`` and the normal tiny
initrd; ``syslinux.cfg`` boots them with :data:`KERNEL_ARGS`, so a guest that
booted from disk says ``virtkit.installed=1`` on its ``VIRTKIT-CMDLINE:`` line.

Nothing is mounted and nothing needs root: the tools (``mkfs.fat``, ``mcopy``,
``syslinux`` and its ``mbr.bin``) come from Debian packages unpacked with
``dpkg-deb -x`` and run on the partition as an image file; the MBR is written
here in Python.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

from virtkit.errors import HostError
from virtkit.guests import cache, debpkg
from virtkit.guests.tiny import TinyGuest, ensure_tiny

KERNEL_ARGS = "console=ttyS0 virtkit.installed=1"
SYSLINUX_CFG = f"""\
SERIAL 0 115200
DEFAULT tiny
PROMPT 0
TIMEOUT 0
LABEL tiny
  KERNEL /vmlinuz
  INITRD /initrd.img
  APPEND {KERNEL_ARGS}
"""
PACKAGES = ("syslinux", "syslinux-common", "mtools", "dosfstools")
BOOTDISK_FORMAT = 2  # bump when the disk layout changes
SECTOR = 512
MIB = 1 << 20
PART_START = MIB // SECTOR  # first partition at 1 MiB, like fdisk does
PART_TYPE_FAT16_LBA = 0x0E
DISK_SIGNATURE = 0x4B54_5656  # "VVTK"
VOLUME_LABEL = "VIRTKIT"
DISK_NAME = "boot-disk.img"


def recipe_key() -> str:
    """What the installed system's layout depends on besides the tiny guest itself."""
    h = hashlib.sha256()
    h.update(f"{SYSLINUX_CFG}\0{BOOTDISK_FORMAT}\0{PART_START}\0".encode())
    return h.hexdigest()[:10]


def install_dir(guest: TinyGuest) -> Path:
    """Where the boot disk and the install media of ``guest`` are cached."""
    return guest.kernel.parent / f"install-{recipe_key()}"


# --- MBR -------------------------------------------------------------------


def chs(lba: int, heads: int = 255, sectors: int = 63) -> bytes:
    """The 3-byte CHS address of ``lba``; past cylinder 1023 the usual 0xFEFFFF cap."""
    cyl, rest = divmod(lba, heads * sectors)
    if cyl > 1023:
        return b"\xfe\xff\xff"
    head, sec = divmod(rest, sectors)
    return bytes((head, ((cyl >> 2) & 0xC0) | (sec + 1), cyl & 0xFF))


def mbr(boot_code: bytes, start: int, count: int, ptype: int = PART_TYPE_FAT16_LBA) -> bytes:
    """A 512-byte MBR: ``boot_code`` plus one active partition of ``count`` sectors."""
    if len(boot_code) > 440:
        raise HostError(f"MBR boot code is {len(boot_code)} bytes, at most 440 fit")
    entry = struct.pack("<B3sB3sII", 0x80, chs(start), ptype, chs(start + count - 1), start, count)
    sector = bytearray(SECTOR)
    sector[: len(boot_code)] = boot_code
    struct.pack_into("<I", sector, 440, DISK_SIGNATURE)
    sector[446:462] = entry
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


def assemble(boot_code: bytes, partition: Path, out: Path) -> None:
    """Write ``out``: MBR, zeros up to :data:`PART_START`, then the partition image."""
    size = partition.stat().st_size
    if size % SECTOR:
        raise HostError(f"partition image {partition} is not a whole number of sectors")
    with out.open("wb") as f, partition.open("rb") as src:
        f.write(mbr(boot_code, PART_START, size // SECTOR))
        f.seek(PART_START * SECTOR)
        shutil.copyfileobj(src, f, MIB)


def partition_size(payload: int) -> int:
    """Bytes for a FAT partition holding ``payload`` bytes of files: whole MiB, room to spare.

    At least 15 MiB (a 16 MiB disk): mkfs.fat refuses FAT16 below ~9 MiB.
    """
    return max((payload + 3 * MIB + MIB - 1) // MIB * MIB, 15 * MIB)


# --- tools -----------------------------------------------------------------


@dataclass(frozen=True)
class Tools:
    """The unpacked tool packages."""

    root: Path

    @property
    def mbr_bin(self) -> Path:
        return self.root / "usr/lib/syslinux/mbr/mbr.bin"

    def env(self) -> dict[str, str]:
        path = f"{self.root / 'usr/bin'}:{self.root / 'sbin'}:{self.root / 'usr/sbin'}"
        return {
            **os.environ,
            "PATH": f"{path}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "MTOOLS_SKIP_CHECK": "1",
            "MTOOLSRC": os.devnull,  # ignore the user's mtools configuration
            "SOURCE_DATE_EPOCH": "946684800",  # fixed file times: reproducible images
        }

    def run(self, argv: list[str], what: str) -> None:
        exe = shutil.which(argv[0], path=self.env()["PATH"])
        if exe is None or not exe.startswith(str(self.root)):
            raise HostError(f"{argv[0]} missing from the unpacked {', '.join(PACKAGES)}")
        debpkg.run([exe, *argv[1:]], what, env=self.env())


def unpack_tools(cache_dir: Path, dest: Path) -> Tools:
    """Download (once) and unpack syslinux, mtools and dosfstools into ``dest``."""
    for name in PACKAGES:
        debpkg.extract(debpkg.download(debpkg.resolve(name), cache_dir / "debs"), dest)
    tools = Tools(dest)
    if not tools.mbr_bin.is_file():
        raise HostError(f"syslinux-common has no {tools.mbr_bin.relative_to(dest)}")
    return tools


# --- build -----------------------------------------------------------------


def build(tools: Tools, kernel: Path, initrd: Path, work: Path, out: Path) -> None:
    """Build the bootable disk image ``out`` from the tiny guest's kernel and initrd."""
    part = work / "part.img"
    cfg = work / "syslinux.cfg"
    cfg.write_text(SYSLINUX_CFG)
    with part.open("wb") as f:
        f.truncate(partition_size(kernel.stat().st_size + initrd.stat().st_size))
    tools.run(
        ["mkfs.fat", "-F", "16", "-h", str(PART_START), "-n", VOLUME_LABEL,
         "-i", f"{DISK_SIGNATURE:08X}", "--invariant", str(part)],
        "making the FAT file system",
    )  # fmt: skip
    for src, name in ((kernel, "vmlinuz"), (initrd, "initrd.img"), (cfg, "syslinux.cfg")):
        tools.run(["mcopy", "-i", str(part), str(src), f"::{name}"], f"copying {name}")
    tools.run(["syslinux", "--install", str(part)], "installing SYSLINUX")
    assemble(tools.mbr_bin.read_bytes(), part, out)
    part.unlink()


def ensure_boot_disk(cache_dir: Path | None = None) -> Path:
    """The raw BIOS-bootable image of the tiny guest, building it if the cache has none.

    Booted with no ``-kernel``, SeaBIOS runs SYSLINUX from it, which starts the
    tiny guest with :data:`KERNEL_ARGS`.  Treat the file as read-only: copy it
    (or put a qcow2 overlay on it) before booting it writable.
    """
    root = cache_dir or cache.default_cache_dir()
    guest = ensure_tiny(root)
    final = install_dir(guest) / DISK_NAME
    if final.is_file():
        return final
    with cache.build_lock(root):
        if final.is_file():
            return final
        with cache.workdir(root) as work:
            tools = unpack_tools(root, work / "tools")
            debpkg.log("writing the bootable disk image")
            tmp = work / DISK_NAME
            build(tools, guest.kernel, guest.initrd, work, tmp)
            tmp.chmod(0o644)
            final.parent.mkdir(exist_ok=True)
            cache.publish(tmp, final)
    debpkg.log(f"boot disk ready: {final}")
    return final
