"""storage.pools / storage.volumes / storage.transfer with real qemu-img in tmp dirs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from virtkit.errors import ConfigError, NotFoundError
from virtkit.storage import pools as P
from virtkit.storage import volumes as V
from virtkit.storage.sizes import parse_size
from virtkit.storage.transfer import Upload, read_chunk, remove_stale_temps

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="no qemu-img")
MiB, GiB, TiB = 1024**2, 1024**3, 1024**4


def qimg(*args: str) -> str:
    return subprocess.run(["qemu-img", *args], check=True, capture_output=True, text=True).stdout


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "a/b", "../x", "/etc/passwd", "a\0b", "a\nb", "x" * 256, ".hidden", "é" * 128],
)
def test_bad_volume_names(name: str) -> None:
    with pytest.raises(ConfigError, match="invalid volume name"):
        V.check_volume_name(name)


@pytest.mark.parametrize("name", ["vm1.qcow2", "disk-1.img", "x" * 255, "a b", "é" * 127])
def test_good_volume_names(name: str) -> None:
    assert V.check_volume_name(name) == name


@pytest.mark.parametrize(
    ("text", "size"),
    [("1", 1), ("10K", 10 * 1024), ("1KiB", 1024), ("1G", GiB), ("2GiB", 2 * GiB),
     ("1.5M", 3 * MiB // 2), ("1GB", 10**9), ("64T", 64 * TiB)],
)  # fmt: skip
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["0", "-1G", "65T", "1X", "", "G"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_size(text)


def test_pool_rules(tmp_path: Path) -> None:
    assert P.check_target("/srv//images/") == Path("/srv/images")
    for bad in ("", "rel/dir", "/"):
        with pytest.raises(ConfigError):
            P.check_target(bad)
    with pytest.raises(ConfigError, match="LVM"):
        P.check_pool_type("logical")
    with pytest.raises(ConfigError, match="invalid pool name"):
        P.check_pool_name("../x")
    target = tmp_path / "a" / "pool"
    assert P.build(target) is True and P.build(target) is False
    assert target.stat().st_mode & 0o777 == 0o711
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        P.build(tmp_path / "file")
    with pytest.raises(NotFoundError, match="pool-build"):
        P.check_startable(tmp_path / "missing")


def test_capacity(tmp_path: Path) -> None:
    c = P.capacity(tmp_path)
    st = os.statvfs(tmp_path)
    assert c.capacity == st.f_blocks * st.f_frsize
    assert 0 <= c.available <= c.capacity and 0 <= c.allocation <= c.capacity


def test_symlink_escapes_refused(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    pool.mkdir()
    secret = tmp_path / "secret"
    secret.write_text("s")
    (pool / "link").symlink_to(secret)
    (pool / "dirlink").symlink_to(tmp_path)
    (pool / "sub").mkdir()
    with pytest.raises(ConfigError, match="symbolic link"):
        V.volume_path(pool, "link")
    with pytest.raises(ConfigError, match="symbolic link"):
        V.volume_path(pool, "dirlink")
    with pytest.raises(ConfigError, match="not a regular file"):
        V.volume_path(pool, "sub")
    with pytest.raises(ConfigError, match="already exists"):
        V.create_volume(pool, "link", MiB, "raw")
    with pytest.raises(ConfigError, match="symbolic link"):
        read_chunk(pool, "link", 0, 10)
    assert set(V.scan(pool)) == set()  # links and dirs are no volumes
    assert secret.read_text() == "s"


def test_create_info_resize_clone_delete(tmp_path: Path) -> None:
    V.create_volume(tmp_path, "a.img", GiB, "raw")
    V.create_volume(tmp_path, "b.qcow2", GiB, "qcow2")
    V.create_volume(tmp_path, "c.img", 4 * MiB, "raw", allocation=4 * MiB)
    st = V.stat_volume(tmp_path / "a.img", "raw")
    assert (st.capacity, st.backing) == (GiB, None) and st.allocation < MiB
    assert V.stat_volume(tmp_path / "b.qcow2", "qcow2").capacity == GiB
    assert V.stat_volume(tmp_path / "c.img", "raw").allocation >= 4 * MiB
    with pytest.raises(ConfigError, match="already exists"):
        V.create_volume(tmp_path, "a.img", GiB, "raw")
    with pytest.raises(ConfigError, match="out of range"):
        V.create_volume(tmp_path, "big", 65 * TiB, "raw")
    with pytest.raises(ConfigError, match="not supported"):
        V.create_volume(tmp_path, "v", MiB, "vmdk")
    V.resize_volume(tmp_path / "b.qcow2", "qcow2", 2 * GiB, shrink=False)
    assert V.stat_volume(tmp_path / "b.qcow2", "qcow2").capacity == 2 * GiB
    (tmp_path / "a.img").write_bytes(b"hello")  # now 5 bytes of data
    V.resize_volume(tmp_path / "a.img", "raw", MiB, shrink=False)
    V.clone_volume(tmp_path / "a.img", "raw", tmp_path, "copy.img")
    assert (tmp_path / "copy.img").read_bytes()[:5] == b"hello"
    assert (tmp_path / "copy.img").stat().st_blocks * 512 < MiB  # sparse
    with pytest.raises(ConfigError, match="already exists"):
        V.clone_volume(tmp_path / "a.img", "raw", tmp_path, "c.img")
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]
    V.delete_volume(tmp_path, "copy.img")
    assert not (tmp_path / "copy.img").exists()


def test_detect_format_never_trusts_raw(tmp_path: Path) -> None:
    V.create_volume(tmp_path, "q", MiB, "qcow2")
    (tmp_path / "r").write_bytes(b"QFI\xfb" + b"garbage" * 100)  # magic but not qcow2
    (tmp_path / "plain").write_bytes(b"\0" * 4096)
    assert V.detect_format(tmp_path, "q") == "qcow2"
    assert V.detect_format(tmp_path, "r") == "raw"
    assert V.detect_format(tmp_path, "plain") == "raw"


def test_backing_chain_inside_and_outside(tmp_path: Path) -> None:
    pool, outside = tmp_path / "pool", tmp_path / "outside"
    pool.mkdir()
    outside.mkdir()
    V.create_volume(pool, "base.img", 64 * MiB, "raw")
    V.create_volume(pool, "top.qcow2", 64 * MiB, "qcow2", backing=(pool / "base.img", "raw"))
    assert V.check_chain(pool / "top.qcow2", "qcow2", [pool]) == [str(pool / "base.img")]
    assert V.stat_volume(pool / "top.qcow2", "qcow2").backing_format == "raw"
    # an image whose backing file is outside every pool (e.g. /etc/shadow)
    qimg("create", "-q", "-f", "qcow2", "-u", "-b", "/etc/shadow", "-F", "raw",
         str(pool / "evil.qcow2"), "1M")  # fmt: skip
    with pytest.raises(ConfigError, match="outside every active"):
        V.check_chain(pool / "evil.qcow2", "qcow2", [pool])
    (outside / "b.img").write_bytes(b"\0" * MiB)
    qimg("create", "-q", "-f", "qcow2", "-b", str(outside / "b.img"), "-F", "raw",
         str(pool / "out.qcow2"))  # fmt: skip
    with pytest.raises(ConfigError, match="outside"):
        V.check_chain(pool / "out.qcow2", "qcow2", [pool])
    assert V.check_chain(pool / "out.qcow2", "qcow2", [pool, outside])
    # a second layer escaping: mid -> evil chain
    qimg("create", "-q", "-f", "qcow2", "-b", str(pool / "evil.qcow2"), "-F", "qcow2", "-u",
         str(pool / "mid.qcow2"), "1M")  # fmt: skip
    with pytest.raises(ConfigError, match="outside"):
        V.check_chain(pool / "mid.qcow2", "qcow2", [pool])
    # no backing format recorded: never probed
    qimg("create", "-q", "-f", "qcow2", "-u", "-b", str(pool / "base.img"), "-F", "raw",
         str(pool / "nofmt.qcow2"), "1M")  # fmt: skip
    drop_backing_format(pool / "nofmt.qcow2")
    with pytest.raises(ConfigError, match="does not record the format"):
        V.check_chain(pool / "nofmt.qcow2", "qcow2", [pool])
    # via a symlink inside the pool pointing out
    (pool / "lnk").symlink_to(outside / "b.img")
    qimg("create", "-q", "-f", "qcow2", "-u", "-b", str(pool / "lnk"), "-F", "raw",
         str(pool / "vialink.qcow2"), "1M")  # fmt: skip
    with pytest.raises(ConfigError, match="outside"):
        V.check_chain(pool / "vialink.qcow2", "qcow2", [pool])


def drop_backing_format(path: Path) -> None:
    """Turn the backing-format header extension into an unknown one (old images lack it)."""
    data = bytearray(path.read_bytes())
    i = data.index(b"\xe2\x79\x2a\xca", 0, 4096)
    data[i : i + 4] = b"\x12\x34\x56\x78"
    path.write_bytes(bytes(data))


def test_absurd_virtual_size_refused(tmp_path: Path) -> None:
    qimg("create", "-q", "-f", "qcow2", str(tmp_path / "huge.qcow2"), str(100 * TiB))
    with pytest.raises(ConfigError, match="64 TiB"):
        V.check_chain(tmp_path / "huge.qcow2", "qcow2", [tmp_path])


def test_upload_sparse_atomic(tmp_path: Path) -> None:
    V.create_volume(tmp_path, "v.img", MiB, "raw")
    (tmp_path / "v.img").write_bytes(b"old")
    data = b"A" * 1000 + b"\0" * (2 * MiB) + b"Z"
    up = Upload(tmp_path, "v.img", len(data))
    chunks = [data[:1000], data[1000 : 1000 + 2 * MiB], data[1000 + 2 * MiB :]]
    off = 0
    for c in chunks:
        off = up.write(off, c)
    with pytest.raises(ConfigError, match="longer"):
        up.write(off, b"x")
    assert (tmp_path / "v.img").read_bytes() == b"old"  # untouched until replaced
    up.finish()
    up.replace()
    assert (tmp_path / "v.img").read_bytes() == data
    assert (tmp_path / "v.img").stat().st_blocks * 512 < MiB  # the zeros are a hole
    assert read_chunk(tmp_path, "v.img", len(data) - 1, 100) == b"Z"
    up2 = Upload(tmp_path, "v.img", 10)
    up2.write(5, b"x")  # 0..5 skipped: zeros
    with pytest.raises(ConfigError, match="in order"):
        up2.write(2, b"y")
    assert up2.tmp_path.read_bytes() == b"\0" * 5 + b"x"
    up2.close()
    assert remove_stale_temps(tmp_path) == [up2.tmp]
    assert os.listdir(tmp_path) == ["v.img"]
    with pytest.raises(NotFoundError):
        Upload(tmp_path, "missing", 1)
