"""The tiny guest as install media: a ``--location`` tree and a bootable ISO image.

Both use the layout virt-install users know from RHEL-family trees: a
``.treeinfo`` naming ``images/pxeboot/vmlinuz`` and ``images/pxeboot/initrd.img``.
The ISO also boots as a CD (El Torito, BIOS, no emulation) with ISOLINUX, which
starts that kernel and initrd with ``console=ttyS0``, so ``--cdrom`` installs
work too.  ``isolinux.bin`` (package ``isolinux``) and ``ldlinux.c32`` (package
``syslinux-common``) come from Debian packages unpacked with ``dpkg-deb -x``.

The kernel is Debian's; the initrd is the installer initrd: the normal tiny
initrd followed by a second (uncompressed) cpio archive carrying
``/etc/virtkit-installer`` and the gzipped boot disk (see :mod:`bootdisk`).
Linux unpacks concatenated archives into one root file system, and the tiny
init runs the installer when that file exists (unless the kernel command line
says ``virtkit.noinstall=1``): it writes the boot disk to ``/dev/vda``, prints
``VIRTKIT-INSTALL-DONE`` and reboots, after which the disk boots by itself.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from virtkit.errors import HostError
from virtkit.guests import cache, debpkg
from virtkit.guests.bootdisk import ensure_boot_disk, install_dir
from virtkit.guests.cpio import CpioWriter
from virtkit.guests.tiny import TinyGuest, ensure_tiny

if TYPE_CHECKING:
    import pycdlib

VOLUME_ID = "VIRTKIT_TINY"
KERNEL_PATH = "images/pxeboot/vmlinuz"
INITRD_PATH = "images/pxeboot/initrd.img"
INSTALLER_FLAG = "etc/virtkit-installer"  # the tiny init's cue to run the installer
PAYLOAD_PATH = "virtkit/disk.img.gz"  # where the init finds the disk image
INSTALLER_INITRD = "installer-initrd.img"

# ISOLINUX: El Torito boot of the ISO.  Its own output goes to the serial port too.
ISOLINUX_DIR = "isolinux"
ISOLINUX_CFG = f"""\
SERIAL 0 115200
DEFAULT install
PROMPT 0
TIMEOUT 0
LABEL install
  KERNEL /{KERNEL_PATH}
  INITRD /{INITRD_PATH}
  APPEND console=ttyS0
"""
ISOLINUX_PACKAGES = ("isolinux", "syslinux-common")
ISOLINUX_BIN = "usr/lib/ISOLINUX/isolinux.bin"  # package isolinux
LDLINUX_C32 = "usr/lib/syslinux/modules/bios/ldlinux.c32"  # package syslinux-common
ISO_FORMAT = 2  # bump when the ISO layout changes (1: not bootable)
BOOT_LOAD_SIZE = 4  # 512-byte sectors the BIOS loads, as mkisofs -boot-load-size 4


def iso_name() -> str:
    """The cached ISO's file name: changes with its layout and ISOLINUX configuration."""
    key = hashlib.sha256(f"{ISOLINUX_CFG}\0{ISO_FORMAT}\0{BOOT_LOAD_SIZE}".encode())
    return f"virtkit-tiny-{key.hexdigest()[:8]}.iso"


def treeinfo(version: str = "1") -> str:
    """The ``.treeinfo`` text of the tiny install tree."""
    return (
        "[general]\n"
        "family = VirtkitTiny\n"
        f"version = {version}\n"
        "name = VirtkitTiny 1\n"
        "arch = x86_64\n"
        "platforms = x86_64\n"
        "\n"
        "[images-x86_64]\n"
        f"kernel = {KERNEL_PATH}\n"
        f"initrd = {INITRD_PATH}\n"
    )


def _place(src: Path, dest: Path) -> None:
    """Hard-link ``src`` to ``dest`` (same cache filesystem), copying if that fails."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def _guest(cache_dir: Path | None) -> tuple[TinyGuest, Path]:
    """The tiny guest and the directory of its install media, with the installer initrd."""
    root = cache_dir or cache.default_cache_dir()
    guest = ensure_tiny(root)
    home = install_dir(guest)
    initrd = home / INSTALLER_INITRD
    if initrd.is_file():
        return TinyGuest(guest.kernel, initrd, guest.version, guest.pvh_kernel), home
    disk = ensure_boot_disk(root)  # before the lock: build_lock is not reentrant
    with cache.build_lock(root):
        if not initrd.is_file():
            home.mkdir(exist_ok=True)
            with cache.workdir(root) as work:
                tmp = work / INSTALLER_INITRD
                write_installer_initrd(tmp, guest.initrd, disk)
                tmp.chmod(0o644)
                cache.publish(tmp, initrd)
    debpkg.log(f"installer initrd ready: {initrd}")
    return TinyGuest(guest.kernel, initrd, guest.version, guest.pvh_kernel), home


def installer_flag(disk_size: int) -> bytes:
    """The content of ``/etc/virtkit-installer``, sourced by the tiny init."""
    return (
        "# virtkit tiny installer: write the boot disk to /dev/vda, then reboot\n"
        f"payload=/{PAYLOAD_PATH}\n"
        f"size={disk_size}\n"
    ).encode()


def write_installer_initrd(path: Path, initrd: Path, disk: Path) -> None:
    """Write ``initrd`` + an uncompressed cpio with the installer flag and the gzipped ``disk``."""
    base = initrd.read_bytes()
    payload = io.BytesIO()
    with disk.open("rb") as src, gzip.GzipFile(fileobj=payload, mode="wb", mtime=0) as gz:
        shutil.copyfileobj(src, gz, 1 << 20)
    with path.open("wb") as out:
        # The kernel reads a following archive only at a 4-byte aligned offset (zeros skipped).
        out.write(base + bytes(-len(base) % 4))
        w = CpioWriter(out)
        w.add_dir("etc")
        w.add_file(INSTALLER_FLAG, installer_flag(disk.stat().st_size), 0o644)
        w.add_dir(PAYLOAD_PATH.rsplit("/", 1)[0], 0o700)
        w.add_file(PAYLOAD_PATH, payload.getvalue(), 0o600)
        w.close()


def ensure_tree(cache_dir: Path | None = None) -> Path:
    """A directory usable as ``virt-install --location DIR`` that boots the tiny guest."""
    guest, home = _guest(cache_dir)
    final = home / "tree"
    if (final / ".treeinfo").is_file():
        return final
    root = cache_dir or cache.default_cache_dir()
    with cache.build_lock(root):
        if (final / ".treeinfo").is_file():
            return final
        with cache.workdir(root) as work:
            tree = work / "tree"
            _place(guest.kernel, tree / KERNEL_PATH)
            _place(guest.initrd, tree / INITRD_PATH)
            (tree / ".treeinfo").write_text(treeinfo())
            cache.publish(tree, final)
    debpkg.log(f"install tree ready: {final}")
    return final


def isolinux_files(cache_dir: Path, dest: Path) -> tuple[Path, Path]:
    """Download (once) and unpack ISOLINUX into ``dest``: ``isolinux.bin`` and ``ldlinux.c32``."""
    for name in ISOLINUX_PACKAGES:
        debpkg.extract(debpkg.download(debpkg.resolve(name), cache_dir / "debs"), dest)
    files = (dest / ISOLINUX_BIN, dest / LDLINUX_C32)
    for f in files:
        if not f.is_file():
            raise HostError(f"{' / '.join(ISOLINUX_PACKAGES)} unpacked without {f.name}")
    return files


def ensure_iso(cache_dir: Path | None = None) -> Path:
    """A CD-bootable ISO9660 (Rock Ridge + Joliet) image of the install tree.

    Volume ``VIRTKIT_TINY``; El Torito (BIOS) boots ISOLINUX, which runs the installer.
    """
    guest, home = _guest(cache_dir)
    final = home / iso_name()
    if final.is_file():
        return final
    root = cache_dir or cache.default_cache_dir()
    with cache.build_lock(root):
        if final.is_file():
            return final
        with cache.workdir(root) as work:
            isolinux = isolinux_files(root, work / "isolinux")
            tmp = work / final.name
            write_iso(tmp, guest.kernel, guest.initrd, isolinux)
            tmp.chmod(0o644)
            cache.publish(tmp, final)
    debpkg.log(f"install ISO ready: {final}")
    return final


def write_iso(
    path: Path, kernel: Path, initrd: Path, isolinux: tuple[Path, Path] | None = None
) -> None:
    """Write the install-tree layout as an ISO image with pycdlib.

    With ``isolinux`` (``isolinux.bin``, ``ldlinux.c32``) the image is El Torito
    bootable: ``/isolinux`` holds those, ``isolinux.cfg`` and the boot catalog.
    """
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, rock_ridge="1.09", joliet=3, vol_ident=VOLUME_ID)
    try:
        iso.add_directory("/IMAGES", rr_name="images", joliet_path="/images")
        iso.add_directory("/IMAGES/PXEBOOT", rr_name="pxeboot", joliet_path="/images/pxeboot")
        info = treeinfo().encode()
        iso.add_fp(
            io.BytesIO(info), len(info), "/TREEINFO.;1", rr_name=".treeinfo",
            joliet_path="/.treeinfo",
        )  # fmt: skip
        for src, rel in ((kernel, KERNEL_PATH), (initrd, INITRD_PATH)):
            iso9660 = "/" + rel.upper().replace("-", "_") + ";1"
            iso.add_file(str(src), iso9660, rr_name=rel.rsplit("/", 1)[-1], joliet_path="/" + rel)
        if isolinux is not None:
            _add_isolinux(iso, *isolinux)
        iso.write(str(path))
    finally:
        iso.close()


def _add_isolinux(iso: pycdlib.PyCdlib, isolinux_bin: Path, ldlinux_c32: Path) -> None:
    """Add ``/isolinux`` and an El Torito no-emulation entry booting ``isolinux.bin``."""
    d = ISOLINUX_DIR
    iso.add_directory(f"/{d.upper()}", rr_name=d, joliet_path=f"/{d}")
    cfg = ISOLINUX_CFG.encode()
    files: list[tuple[str, io.BytesIO]] = [
        ("isolinux.bin", io.BytesIO(isolinux_bin.read_bytes())),  # patched: boot info table
        ("ldlinux.c32", io.BytesIO(ldlinux_c32.read_bytes())),
        ("isolinux.cfg", io.BytesIO(cfg)),
    ]
    for name, fp in files:
        iso9660 = f"/{d.upper()}/{name.upper()};1"
        size = len(fp.getbuffer())
        iso.add_fp(fp, size, iso9660, rr_name=name, joliet_path=f"/{d}/{name}")
    iso.add_eltorito(
        f"/{d.upper()}/ISOLINUX.BIN;1",
        bootcatfile=f"/{d.upper()}/BOOT.CAT;1",
        rr_bootcatname="boot.cat",
        joliet_bootcatfile=f"/{d}/boot.cat",
        boot_load_size=BOOT_LOAD_SIZE,
        boot_info_table=True,
    )
