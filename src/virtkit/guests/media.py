"""The tiny guest as install media: a ``--location`` tree and an ISO image.

Both use the layout virt-install users know from RHEL-family trees: a
``.treeinfo`` naming ``images/pxeboot/vmlinuz`` and ``images/pxeboot/initrd.img``.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

from virtkit.guests import cache, debpkg
from virtkit.guests.tiny import TinyGuest, ensure_tiny

VOLUME_ID = "VIRTKIT_TINY"
KERNEL_PATH = "images/pxeboot/vmlinuz"
INITRD_PATH = "images/pxeboot/initrd.img"


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
    guest = ensure_tiny(cache_dir)
    return guest, guest.kernel.parent


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


def ensure_iso(cache_dir: Path | None = None) -> Path:
    """An ISO9660 (Rock Ridge + Joliet) image of the install tree, volume ``VIRTKIT_TINY``."""
    guest, home = _guest(cache_dir)
    final = home / "virtkit-tiny.iso"
    if final.is_file():
        return final
    root = cache_dir or cache.default_cache_dir()
    with cache.build_lock(root):
        if final.is_file():
            return final
        with cache.workdir(root) as work:
            tmp = work / final.name
            write_iso(tmp, guest.kernel, guest.initrd)
            cache.publish(tmp, final)
    debpkg.log(f"install ISO ready: {final}")
    return final


def write_iso(path: Path, kernel: Path, initrd: Path) -> None:
    """Write the install-tree layout as an ISO image with pycdlib."""
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
        iso.write(str(path))
    finally:
        iso.close()
