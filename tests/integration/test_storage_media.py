"""--location against the real tiny-guest install ISO and tree (built on demand, cached)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.unit.test_storage_download import serve
from virtkit.guests import media as tiny_media
from virtkit.storage.isoread import IsoImage
from virtkit.storage.location import resolve_location

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="no QEMU"),
]


@pytest.fixture(scope="module")
def tree() -> Path:
    return tiny_media.ensure_tree()


@pytest.fixture(scope="module")
def iso() -> Path:
    return tiny_media.ensure_iso()


def _same(a: Path, b: Path) -> bool:
    return a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes()


def test_tiny_iso(iso: Path, tree: Path, tmp_path: Path) -> None:
    media = resolve_location(str(iso), tmp_path)
    assert media.distro == "treeinfo" and media.iso == iso and media.tree is None
    assert _same(media.kernel, tree / tiny_media.KERNEL_PATH)
    assert _same(media.initrd, tree / tiny_media.INITRD_PATH)
    assert media.files_created == [media.kernel, media.initrd]


def test_tiny_iso_plain_names(iso: Path, tree: Path) -> None:
    """The ISO9660 fallback finds the files too (as on media without Rock Ridge/Joliet)."""
    with IsoImage(iso) as image:
        assert image._iso9660_walk(tiny_media.KERNEL_PATH) == "/IMAGES/PXEBOOT/VMLINUZ;1"
        assert image._iso9660_walk(".treeinfo") is not None


def test_tiny_tree(tree: Path, tmp_path: Path) -> None:
    media = resolve_location(str(tree), tmp_path)
    assert media.distro == "treeinfo" and media.tree == tree and media.iso is None
    assert _same(media.kernel, tree / tiny_media.KERNEL_PATH)


def test_tiny_tree_and_iso_over_http(iso: Path, tree: Path, tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    shutil.copytree(tree, www / "tree")
    shutil.copyfile(iso, www / "tiny.iso")
    progress: list[tuple[int, int | None]] = []
    with serve(www) as url:
        from_tree = resolve_location(
            f"{url}/tree/", tmp_path / "w1", progress=lambda d, t: progress.append((d, t))
        )
        from_iso = resolve_location(f"{url}/tiny.iso", tmp_path / "w2")
    assert from_tree.distro == from_iso.distro == "treeinfo"
    assert _same(from_tree.kernel, tree / tiny_media.KERNEL_PATH)
    assert _same(from_iso.initrd, tree / tiny_media.INITRD_PATH)
    assert from_iso.iso is not None and _same(from_iso.iso, iso)
    size = (tree / tiny_media.KERNEL_PATH).stat().st_size
    assert (size, size) in progress
