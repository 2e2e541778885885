"""--location: kernel/initrd from ISOs (built here with pycdlib), trees and URLs."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pycdlib
import pytest

from tests.unit.test_storage_download import serve
from virtkit.errors import ConfigError, NotFoundError
from virtkit.storage.location import resolve_location

TREEINFO = "[general]\narch = x86_64\n\n[images-x86_64]\nkernel = boot/k\ninitrd = boot/i\n"

# layout name -> (files on the media, expected distro, kernel path, initrd path)
LAYOUTS: dict[str, tuple[dict[str, bytes], str, str, str]] = {
    "treeinfo": ({".treeinfo": TREEINFO.encode()}, "treeinfo", "boot/k", "boot/i"),
    "rhel": ({}, "rhel", "images/pxeboot/vmlinuz", "images/pxeboot/initrd.img"),
    "rhel-isolinux": ({}, "rhel", "isolinux/vmlinuz", "isolinux/initrd.img"),
    "debian": ({}, "debian", "install.amd/vmlinuz", "install.amd/initrd.gz"),
    "ubuntu": ({}, "ubuntu", "casper/vmlinuz", "casper/initrd"),
    "ubuntu-install": (
        {".disk/info": b'Ubuntu-Server 18.04.6 LTS "Bionic Beaver"'},
        "ubuntu",
        "install/vmlinuz",
        "install/initrd.gz",
    ),
    "suse": ({}, "suse", "boot/x86_64/loader/linux", "boot/x86_64/loader/initrd"),
    "alpine": ({}, "alpine", "boot/vmlinuz-lts", "boot/initramfs-lts"),
    "arch": ({}, "arch", "arch/boot/x86_64/vmlinuz-linux", "arch/boot/x86_64/initramfs-linux.img"),
}


def _iso9660(component: str, is_dir: bool) -> str:
    name = re.sub(r"[^A-Z0-9_.]", "_", component.upper().lstrip("."))
    if is_dir:
        return name.replace(".", "_")
    return (name if "." in name else name + ".") + ";1"


def build_iso(path: Path, files: dict[str, bytes], *, rr: bool = True, joliet: bool = True) -> Path:
    """An ISO with ``files`` (relative paths); Rock Ridge / Joliet names when asked."""
    iso = pycdlib.PyCdlib()
    iso.new(
        interchange_level=3, rock_ridge="1.09" if rr else None, joliet=3 if joliet else None,
        vol_ident="TESTMEDIA",
    )  # fmt: skip
    made: set[str] = set()
    for rel, data in sorted(files.items()):
        parts = rel.split("/")
        for depth in range(1, len(parts) + 1):
            sub = "/".join(parts[:depth])
            is_dir = depth < len(parts)
            if is_dir and sub in made:
                continue
            names = [_iso9660(p, i < depth - 1 or is_dir) for i, p in enumerate(parts[:depth])]
            iso_path = "/" + "/".join(names)
            kw: dict[str, Any] = {}
            if rr:
                kw["rr_name"] = parts[depth - 1]
            if joliet:
                kw["joliet_path"] = "/" + sub
            if is_dir:
                iso.add_directory(iso_path, **kw)
                made.add(sub)
            else:
                iso.add_fp(io.BytesIO(data), len(data), iso_path, **kw)
    iso.write(str(path))
    iso.close()
    return path


def build_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def media_files(name: str) -> tuple[dict[str, bytes], str, str, str]:
    extra, distro, kernel, initrd = LAYOUTS[name]
    files = {**extra, kernel: b"KERNEL " + kernel.encode(), initrd: b"INITRD " + initrd.encode()}
    return files, distro, kernel, initrd


def make_media(tmp_path: Path, kind: str, files: dict[str, bytes]) -> Path:
    if kind == "dir":
        return build_tree(tmp_path / "tree", files)
    rr, joliet = {"iso": (True, True), "iso-joliet": (False, True), "iso-plain": (False, False)}[
        kind
    ]
    return build_iso(tmp_path / "media.iso", files, rr=rr, joliet=joliet)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return tmp_path / "work"


@pytest.mark.parametrize("kind", ["iso", "iso-joliet", "iso-plain", "dir"])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_layouts(tmp_path: Path, work: Path, layout: str, kind: str) -> None:
    files, distro, kernel, initrd = media_files(layout)
    src = make_media(tmp_path, kind, files)
    media = resolve_location(str(src), work)
    assert media.distro == distro
    assert media.kernel.read_bytes() == files[kernel]
    assert media.initrd.read_bytes() == files[initrd]
    assert media.kernel.parent == work and media.initrd.parent == work
    assert media.files_created == [media.kernel, media.initrd]
    if kind == "dir":
        assert media.tree == src and media.iso is None
    else:
        assert media.iso == src and media.tree is None
    assert sorted(p.name for p in work.iterdir()) == sorted(p.name for p in media.files_created)


def test_treeinfo_wins_over_known_layouts(tmp_path: Path, work: Path) -> None:
    files, *_ = media_files("treeinfo")
    files |= media_files("rhel")[0]
    media = resolve_location(str(build_iso(tmp_path / "m.iso", files)), work)
    assert media.distro == "treeinfo" and media.kernel.read_bytes() == b"KERNEL boot/k"


def test_treeinfo_without_x86_64_images_falls_back(tmp_path: Path, work: Path) -> None:
    files, *_ = media_files("debian")
    files[".treeinfo"] = b"[general]\narch = aarch64\n[images-aarch64]\nkernel = a\ninitrd = b\n"
    media = resolve_location(str(build_tree(tmp_path / "t", files)), work)
    assert media.distro == "debian"


def test_debian_netboot_tree(tmp_path: Path, work: Path) -> None:
    base = "current/images/netboot/debian-installer/amd64"
    files = {f"{base}/linux": b"K", f"{base}/initrd.gz": b"I"}
    media = resolve_location(str(build_tree(tmp_path / "installer-amd64", files)), work)
    assert media.distro == "debian" and media.kernel.read_bytes() == b"K"


def test_rock_ridge_symlink_is_followed(tmp_path: Path, work: Path) -> None:
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, rock_ridge="1.09", vol_ident="LINKS")
    iso.add_directory("/BOOT", rr_name="boot")
    for name, data in (("VMLINUZ_6_1.;1", b"K61"), ("INITRD_6_1.;1", b"I61")):
        iso.add_fp(io.BytesIO(data), len(data), f"/BOOT/{name}", rr_name=name[:-3].lower())
    iso.add_symlink("/BOOT/VMLINUZ.;1", rr_symlink_name="vmlinuz", rr_path="vmlinuz_6_1")
    iso.add_symlink("/BOOT/INITRD.;1", rr_symlink_name="initrd", rr_path="initrd_6_1")
    path = tmp_path / "links.iso"
    iso.write(str(path))
    iso.close()
    media = resolve_location(str(path), work, kernel="boot/vmlinuz", initrd="boot/initrd")
    assert media.kernel.read_bytes() == b"K61" and media.initrd.read_bytes() == b"I61"


@pytest.mark.parametrize("kind", ["iso", "iso-plain", "dir"])
def test_override(tmp_path: Path, work: Path, kind: str) -> None:
    files = {"weird/place/kern": b"K", "weird/place/rd.img": b"I"}
    src = make_media(tmp_path, kind, files)
    media = resolve_location(
        str(src), work, kernel="/weird/place/kern", initrd="./weird/place/rd.img"
    )
    assert media.distro == "override"
    assert media.kernel.read_bytes() == b"K" and media.initrd.read_bytes() == b"I"


def test_override_missing_file(tmp_path: Path, work: Path) -> None:
    src = build_iso(tmp_path / "m.iso", {"a/kern": b"K"})
    with pytest.raises(NotFoundError, match=r"initrd=a/nothing"):
        resolve_location(str(src), work, kernel="a/kern", initrd="a/nothing")
    assert not work.exists() or list(work.iterdir()) == []


@pytest.mark.parametrize(
    ("kernel", "initrd", "match"),
    [("a/kern", None, "both"), (None, "a/rd", "both"), ("../etc/passwd", "a/rd", "bad kernel")],
)
def test_override_bad(
    tmp_path: Path, work: Path, kernel: str | None, initrd: str | None, match: str
) -> None:
    src = build_tree(tmp_path / "t", {"a/kern": b"K", "a/rd": b"I"})
    with pytest.raises(ConfigError, match=match):
        resolve_location(str(src), work, kernel=kernel, initrd=initrd)


@pytest.mark.parametrize("kind", ["iso", "dir"])
def test_nothing_found_lists_every_path(tmp_path: Path, work: Path, kind: str) -> None:
    src = make_media(tmp_path, kind, {"README": b"hello"})
    with pytest.raises(ConfigError) as ei:
        resolve_location(str(src), work)
    msg = ei.value.message
    for path in (
        ".treeinfo", "images/pxeboot/vmlinuz", "isolinux/vmlinuz", "install.amd/vmlinuz",
        "casper/vmlinuz", "boot/x86_64/loader/linux", "boot/vmlinuz-lts",
        "arch/boot/x86_64/vmlinuz-linux", "current/images/netboot/debian-installer/amd64/linux",
    ):  # fmt: skip
        assert path in msg
    assert "--location SRC,kernel=PATH,initrd=PATH" in msg
    assert ei.value.details["looked_for"]
    assert list(work.iterdir()) == []


def test_missing_local_path(tmp_path: Path, work: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        resolve_location(str(tmp_path / "nope.iso"), work)


@pytest.mark.parametrize(
    "location", ["ftp://mirror/x.iso", "nfs:server:/export/tree", "nfs://server/export", "x:"]
)
def test_unsupported_scheme(work: Path, location: str) -> None:
    with pytest.raises(ConfigError, match=r"not supported|absolute"):
        resolve_location(location, work)


@pytest.mark.parametrize("location", ["relative/dir", "", "   "])
def test_relative_or_empty(work: Path, location: str) -> None:
    with pytest.raises(ConfigError):
        resolve_location(location, work)


def test_file_url(tmp_path: Path, work: Path) -> None:
    files, *_ = media_files("rhel")
    src = build_iso(tmp_path / "m.iso", files)
    assert resolve_location(f"file://{src}", work).distro == "rhel"


def test_not_an_iso(tmp_path: Path, work: Path) -> None:
    junk = tmp_path / "junk.iso"
    junk.write_bytes(b"\0" * 100_000)
    with pytest.raises(ConfigError, match="not a readable ISO"):
        resolve_location(str(junk), work)


def test_local_iso_checksum(tmp_path: Path, work: Path) -> None:
    files, *_ = media_files("rhel")
    src = build_iso(tmp_path / "m.iso", files)
    good = "sha256:" + hashlib.sha256(src.read_bytes()).hexdigest()
    assert resolve_location(str(src), work, checksum=good).iso == src
    with pytest.raises(ConfigError, match="checksum mismatch"):
        resolve_location(str(src), tmp_path / "w2", checksum="sha256:" + "0" * 64)
    assert list((tmp_path / "w2").iterdir()) == []
    with pytest.raises(ConfigError, match="directory"):
        resolve_location(str(build_tree(tmp_path / "t", files)), work, checksum=good)


# -- http(s) locations ----------------------------------------------------------


@pytest.fixture
def www(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "www"
    root.mkdir()
    with serve(root) as url:
        yield root, url


def test_url_tree_with_treeinfo(www: tuple[Path, str], work: Path) -> None:
    root, url = www
    files, *_ = media_files("treeinfo")
    build_tree(root / "os", files)
    seen: list[int] = []
    media = resolve_location(f"{url}/os/", work, progress=lambda d, t: seen.append(d))
    assert media.distro == "treeinfo" and media.iso is None and media.tree is None
    assert media.kernel.read_bytes() == b"KERNEL boot/k"
    assert media.files_created == [media.kernel, media.initrd]
    assert seen


def test_url_tree_without_trailing_slash(www: tuple[Path, str], work: Path) -> None:
    root, url = www
    base = "current/images/netboot/debian-installer/amd64"
    build_tree(root / "installer-amd64", {f"{base}/linux": b"K", f"{base}/initrd.gz": b"I"})
    media = resolve_location(f"{url}/installer-amd64", work)
    assert media.distro == "debian" and media.initrd.read_bytes() == b"I"


def test_url_tree_nothing_found(www: tuple[Path, str], work: Path) -> None:
    root, url = www
    (root / "empty").mkdir()
    with pytest.raises(ConfigError, match="images/pxeboot/vmlinuz"):
        resolve_location(f"{url}/empty/", work)
    assert list(work.iterdir()) == []


def test_url_tree_refuses_checksum(www: tuple[Path, str], work: Path) -> None:
    _, url = www
    with pytest.raises(ConfigError, match="install tree"):
        resolve_location(f"{url}/os/", work, checksum="sha256:" + "0" * 64)


def test_url_iso(www: tuple[Path, str], work: Path) -> None:
    root, url = www
    files, *_ = media_files("ubuntu")
    iso = build_iso(root / "ubuntu.iso", files)
    digest = "sha256:" + hashlib.sha256(iso.read_bytes()).hexdigest()
    media = resolve_location(f"{url}/ubuntu.iso", work, checksum=digest)
    assert media.distro == "ubuntu"
    assert media.iso == work / "ubuntu.iso" and media.iso.read_bytes() == iso.read_bytes()
    assert media.files_created == [media.iso, media.kernel, media.initrd]


def test_url_iso_checksum_mismatch_leaves_nothing(www: tuple[Path, str], work: Path) -> None:
    root, url = www
    build_iso(root / "x.iso", media_files("rhel")[0])
    with pytest.raises(ConfigError, match="checksum mismatch"):
        resolve_location(f"{url}/x.iso", work, checksum="sha512:" + "0" * 128)
    assert list(work.iterdir()) == []


def test_url_iso_without_kernel_is_removed(www: tuple[Path, str], work: Path) -> None:
    root, url = www
    build_iso(root / "x.iso", {"README": b"hi"})
    with pytest.raises(ConfigError, match="kernel=PATH"):
        resolve_location(f"{url}/x.iso", work)
    assert list(work.iterdir()) == []


def test_url_iso_404(www: tuple[Path, str], work: Path) -> None:
    _, url = www
    with pytest.raises(NotFoundError, match="404"):
        resolve_location(f"{url}/missing.iso", work)
