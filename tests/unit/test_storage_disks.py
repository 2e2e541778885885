"""storage.disks (real qemu-img) and storage.sizes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from virtkit.errors import ConfigError, HostError, NotFoundError
from virtkit.storage.disks import create_disk, image_info, parse_size, remove_created

needs_qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="no qemu-img")
GiB = 1024**3
MiB = 1024**2


@needs_qemu_img
def test_create_qcow2(tmp_path: Path) -> None:
    path = tmp_path / "images" / "vm.qcow2"  # the pool directory is created
    assert create_disk(path, 12 * GiB) is True
    info = image_info(path, "qcow2")
    assert (info.virtual_size, info.format, info.backing) == (12 * GiB, "qcow2", None)
    assert path.stat().st_size < 2 * MiB
    assert path.stat().st_mode & 0o777 == 0o600


@needs_qemu_img
def test_create_raw_sparse(tmp_path: Path) -> None:
    path = tmp_path / "vm.img"
    assert create_disk(path, GiB, "raw") is True
    assert path.stat().st_size == GiB
    assert path.stat().st_blocks * 512 < MiB  # nothing allocated
    assert image_info(path, "raw").virtual_size == GiB


@needs_qemu_img
@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_create_preallocated(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"vm.{fmt}"
    assert create_disk(path, 4 * MiB, fmt, sparse=False) is True
    assert path.stat().st_blocks * 512 >= 4 * MiB
    assert image_info(path, fmt).actual_size >= 4 * MiB


def test_existing_regular_file_is_reused(tmp_path: Path) -> None:
    path = tmp_path / "vm.img"
    path.write_bytes(b"installed system")
    assert create_disk(path, GiB, "raw") is False
    assert path.read_bytes() == b"installed system"


def test_symlink_refused(tmp_path: Path) -> None:
    target = tmp_path / "real.img"
    target.write_bytes(b"x")
    link = tmp_path / "link.img"
    link.symlink_to(target)
    with pytest.raises(ConfigError, match="symbolic link"):
        create_disk(link, GiB)
    dangling = tmp_path / "dangling.img"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="symbolic link"):
        create_disk(dangling, GiB)
    assert not (tmp_path / "nowhere").exists()


def test_directory_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        create_disk(tmp_path, GiB)


def test_device_refused() -> None:
    with pytest.raises(ConfigError, match="not a regular file"):
        create_disk(Path("/dev/null"), GiB)


@pytest.mark.parametrize(
    "path",
    ["/proc/virtkit-test.img", "/proc/virtkit-test/disk.img"],
    ids=["in-proc", "under-proc"],
)
def test_unwritable_directory(path: str) -> None:
    # root ignores permission bits, so use /proc, where nobody can create files
    with pytest.raises(ConfigError, match=r"cannot create disk .*: directory /proc") as ei:
        create_disk(Path(path), GiB)
    assert "writable" in ei.value.message


def test_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ConfigError, match="not a directory"):
        create_disk(tmp_path / "file" / "disk.img", GiB)


@pytest.mark.parametrize(
    ("size", "fmt", "match"),
    [(0, "qcow2", "out of range"), (65 * 1024**4, "raw", "out of range"), (GiB, "vmdk", "vmdk")],
)
def test_bad_arguments(tmp_path: Path, size: int, fmt: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        create_disk(tmp_path / "d.img", size, fmt)
    assert not (tmp_path / "d.img").exists()


def test_missing_qemu_img(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(HostError, match="qemu-utils"):
        create_disk(tmp_path / "d.qcow2", GiB)
    assert not (tmp_path / "d.qcow2").exists()  # nothing half-created


def test_qemu_img_failure_removes_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "qemu-img"
    fake.write_text("#!/bin/sh\necho 'qemu-img: out of space' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    with pytest.raises(HostError, match="qemu-img failed: qemu-img: out of space"):
        create_disk(tmp_path / "d.qcow2", GiB)
    assert not (tmp_path / "d.qcow2").exists()


def test_image_info_missing(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        image_info(tmp_path / "nope.qcow2", "qcow2")


@needs_qemu_img
def test_image_info_never_probes(tmp_path: Path) -> None:
    path = tmp_path / "vm.qcow2"
    create_disk(path, GiB)
    info = image_info(path, "raw")  # read as raw, as told: the qcow2 header is just data
    assert info.format == "raw"
    assert 0 <= info.virtual_size - path.stat().st_size < 512  # rounded up to a sector


def test_remove_created(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"")
    assert remove_created([a, b, str(a)]) == []
    assert not a.exists()
    locked = tmp_path / "dir"
    locked.mkdir()
    assert remove_created([locked]) == [locked]  # a directory cannot be unlinked
    assert os.path.isdir(locked)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1048576", 1048576),
        ("512", 512),
        (4096, 4096),
        ("10G", 10 * GiB),
        ("10g", 10 * GiB),
        ("10GiB", 10 * GiB),
        ("10 GiB", 10 * GiB),
        ("10GB", 10 * 1000**3),
        ("512M", 512 * MiB),
        ("512MiB", 512 * MiB),
        ("500MB", 500 * 1000**2),
        ("64K", 64 * 1024),
        ("64KiB", 64 * 1024),
        ("64KB", 64000),
        ("2T", 2 * 1024**4),
        ("2TiB", 2 * 1024**4),
        ("2TB", 2 * 1000**4),
        ("1.5G", 1536 * MiB),
        ("0.5T", 512 * GiB),
        ("100b", 100),
        ("64T", 64 * 1024**4),
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "bad size"),
        ("G", "bad size"),
        ("ten", "bad size"),
        ("10X", "bad size"),
        ("10 G B", "bad size"),
        ("-5G", "bad size"),
        ("1e9", "bad size"),
        ("0", "more than 0"),
        ("0.1b", "more than 0"),
        ("65T", "64 TiB"),
        ("1P", "64 TiB"),
        ("1E", "64 TiB"),
    ],
)
def test_parse_size_errors(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_size(text)


def test_parse_size_default_unit() -> None:
    assert parse_size("12", default_unit="G") == 12 * GiB  # virt-install --disk size=12
    assert parse_size("512M", default_unit="G") == 512 * MiB
