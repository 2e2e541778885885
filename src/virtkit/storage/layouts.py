"""Where install media keep their kernel and initrd (pure data, no I/O).

The lists follow virt-install's ``virtinst/install/urldetect.py``: ``.treeinfo``
first, then the fixed layouts of each distribution family (x86_64 only).
"""

from __future__ import annotations

import configparser
import posixpath
from dataclasses import dataclass
from typing import Literal

from virtkit.errors import ConfigError

Kind = Literal["cd", "net", "any"]  # cd: kernel expects the CD attached; net: a netboot tree

TREEINFO_NAMES = (".treeinfo", "treeinfo")
TREEINFO_SECTION = "images-x86_64"


@dataclass(frozen=True)
class Layout:
    distro: str
    kernel: str
    initrd: str
    kind: Kind = "any"


_DI = "netboot/debian-installer/amd64"
_UI = "netboot/ubuntu-installer/amd64"
_LEGACY = f"current/legacy-images/{_DI}"

LAYOUTS: tuple[Layout, ...] = (
    # RHEL / CentOS / Fedora / Rocky / Alma (trees without .treeinfo)
    Layout("rhel", "images/pxeboot/vmlinuz", "images/pxeboot/initrd.img"),
    # Debian CD/DVD, then Debian netboot trees (.../main/installer-amd64/)
    Layout("debian", "install.amd/vmlinuz", "install.amd/initrd.gz", "cd"),
    Layout("debian", f"current/images/{_DI}/linux", f"current/images/{_DI}/initrd.gz", "net"),
    Layout("debian", f"{_LEGACY}/linux", f"{_LEGACY}/initrd.gz", "net"),
    Layout("debian", f"daily/{_DI}/linux", f"daily/{_DI}/initrd.gz", "net"),
    Layout("debian", f"install/{_DI}/linux", f"install/{_DI}/initrd.gz", "net"),
    Layout("debian", "debian-installer/amd64/linux", "debian-installer/amd64/initrd.gz", "net"),
    # Ubuntu live (casper) and legacy installer media
    Layout("ubuntu", "casper/vmlinuz", "casper/initrd"),
    Layout("ubuntu", "casper/vmlinuz", "casper/initrd.gz"),
    Layout("ubuntu", "casper/vmlinuz.efi", "casper/initrd.lz"),
    Layout("ubuntu", "casper/vmlinuz", "casper/initrd.lz"),
    Layout("ubuntu", f"current/images/{_UI}/linux", f"current/images/{_UI}/initrd.gz", "net"),
    Layout("ubuntu", f"install/{_UI}/linux", f"install/{_UI}/initrd.gz", "net"),
    Layout("ubuntu", "ubuntu-installer/amd64/linux", "ubuntu-installer/amd64/initrd.gz", "net"),
    # Debian or Ubuntu CD (told apart by .disk/info)
    Layout("debian", "install/vmlinuz", "install/initrd.gz", "cd"),
    # SUSE / openSUSE
    Layout("suse", "boot/x86_64/loader/linux", "boot/x86_64/loader/initrd"),
    Layout("suse", "boot/x86_64/linux", "boot/x86_64/initrd"),
    Layout("suse", "boot/loader/linux64", "boot/loader/initrd64"),
    # Alpine (standard and virt ISOs)
    Layout("alpine", "boot/vmlinuz-lts", "boot/initramfs-lts"),
    Layout("alpine", "boot/vmlinuz-virt", "boot/initramfs-virt"),
    # Arch Linux
    Layout("arch", "arch/boot/x86_64/vmlinuz-linux", "arch/boot/x86_64/initramfs-linux.img"),
    # older RHEL-family CDs
    Layout("rhel", "isolinux/vmlinuz", "isolinux/initrd.img", "cd"),
)


def candidates(is_iso: bool) -> list[Layout]:
    """Layouts in probing order: an ISO prefers CD kernels, a tree netboot kernels."""
    first: Kind = "cd" if is_iso else "net"
    return sorted(LAYOUTS, key=lambda lay: 0 if lay.kind in (first, "any") else 1)


def inner_path(text: str, what: str = "path") -> str:
    """Normalize a path inside the media ('/a/./b' -> 'a/b'); refuse '..' and empty."""
    raw = text.strip().replace("\\", "/")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ConfigError(
            f"bad {what} {text!r}: give a path inside the install media, "
            "e.g. kernel=images/pxeboot/vmlinuz"
        )
    return posixpath.join(*parts)


def treeinfo_images(text: str) -> tuple[str, str] | None:
    """(kernel, initrd) from ``[images-x86_64]`` of a .treeinfo, or None."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
        kernel = parser.get(TREEINFO_SECTION, "kernel", fallback=None)
        initrd = parser.get(TREEINFO_SECTION, "initrd", fallback=None)
    except configparser.Error:
        return None
    if not kernel or not initrd:
        return None
    try:
        return inner_path(kernel), inner_path(initrd)
    except ConfigError:
        return None


def refine_distro(layout: Layout, disk_info: str | None) -> str:
    """Tell Debian from Ubuntu for the shared ``install/vmlinuz`` layout."""
    if layout.kernel == "install/vmlinuz" and disk_info and "ubuntu" in disk_info.lower():
        return "ubuntu"
    return layout.distro
