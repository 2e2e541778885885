"""daemon.pools: the PoolManager on a real Service (no QEMU started)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from virtkit.daemon.service import Service
from virtkit.daemon.storage.pools import PoolManager, manager, resolve_volume
from virtkit.errors import ConfigError, NotFoundError, StateError
from virtkit.paths import Paths

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="no qemu-img")
MiB, GiB = 1024**2, 1024**3
Scenario = Callable[[PoolManager, Path], Awaitable[None]]


def run(tmp_path: Path, scenario: Scenario) -> None:
    async def main() -> None:
        paths = Paths("session", tmp_path / "state", tmp_path / "run")
        paths.ensure()
        svc = Service(paths)
        try:
            await scenario(manager(svc), tmp_path)
        finally:
            await svc.close()

    asyncio.run(main())


def test_default_pool_and_persistence(tmp_path: Path) -> None:
    async def first(m: PoolManager, base: Path) -> None:
        d = m.pool_view(m.pool("default"))
        assert (d["state"], d["autostart"]) == ("running", True)
        assert d["target"] == str(base / "state" / "images")
        assert d["capacity"] > 0 and d["available"] is not None
        m.define("p2", "dir", str(base / "p2"))
        with pytest.raises(NotFoundError, match="pool-build"):
            await m.start("p2")
        await m.build("p2")
        await m.start("p2")
        m.set_autostart("p2", False)
        m.define("p3", "dir", str(base / "p3"))
        await m.build("p3")
        await m.start("p3")
        m.set_autostart("p3", True)
        await m.destroy("p3")
        with pytest.raises(ConfigError, match="already exists"):
            m.define("p4", "dir", str(base / "p2"))
        with pytest.raises(ConfigError, match="not supported"):
            m.define("lv", "logical", "/dev/vg0")

    async def second(m: PoolManager, base: Path) -> None:
        states = {p.name: (p.active, p.autostart) for p in m.db.pools()}
        # p2 was active (kept), p3 was stopped but is autostart (started again)
        assert states == {"default": (True, True), "p2": (True, False), "p3": (True, True)}
        await m.destroy("p2")
        with pytest.raises(StateError, match="not active"):
            await m.vol_list("p2", False)
        await m.undefine("p2")
        with pytest.raises(StateError, match="still active"):
            await m.undefine("default")
        await m.destroy("default")
        await m.undefine("default")

    async def third(m: PoolManager, base: Path) -> None:
        assert [p.name for p in m.db.pools()] == ["p3"]  # default is not re-created

    run(tmp_path, first)
    run(tmp_path, second)
    run(tmp_path, third)


def test_volumes_and_safety(tmp_path: Path) -> None:
    async def scenario(m: PoolManager, base: Path) -> None:
        pool = base / "state" / "images"
        v = await m.vol_create("default", "base.img", "64M", "raw", None, None, None)
        assert (v["capacity"], v["format"], v["path"]) == (64 * MiB, "raw", str(pool / "base.img"))
        top = await m.vol_create("default", "top.qcow2", "1G", "qcow2", None, "base.img", "raw")
        assert top["backing"] == str(pool / "base.img") and top["backing_format"] == "raw"
        with pytest.raises(ConfigError, match="recorded as raw"):
            await m.vol_create("default", "x.qcow2", "1G", "qcow2", None, "base.img", "qcow2")
        with pytest.raises(NotFoundError):
            await m.vol_create("default", "x.qcow2", "1G", "qcow2", None, "/etc/shadow", None)
        with pytest.raises(ConfigError, match="64 TiB"):
            await m.vol_create("default", "huge", "65T", "raw", None, None, None)
        with pytest.raises(ConfigError, match="invalid volume name"):
            await m.vol_create("default", "../evil", "1M", "raw", None, None, None)
        assert resolve_volume(m.svc, "default", "top.qcow2") == (str(pool / "top.qcow2"), "qcow2")
        assert m.lookup_path(str(pool / "top.qcow2")) == ("default", "top.qcow2")
        # resize: grow, refuse shrink without --shrink, delta
        assert (await m.vol_resize("default", "top.qcow2", "2G", False, False))[
            "capacity"
        ] == 2 * GiB
        with pytest.raises(ConfigError, match="--shrink"):
            await m.vol_resize("default", "top.qcow2", "1G", False, False)
        r = await m.vol_resize("default", "top.qcow2", "512M", True, True)
        assert r["capacity"] == 2 * GiB - 512 * MiB
        # clone flattens the chain into a standalone image
        c = await m.vol_clone("default", "top.qcow2", "copy.qcow2")
        assert c["backing"] is None and c["format"] == "qcow2"
        # the base is the backing of top: refused; used by a domain: refused
        with pytest.raises(StateError, match=r"backing file of default/top\.qcow2"):
            await m.vol_delete("default", "base.img")
        await m.svc.define(config={"name": "vm1", "memory_mib": 64,
                                   "disks": [{"path": str(pool / "copy.qcow2")}]})  # fmt: skip
        with pytest.raises(StateError, match="vm1"):
            await m.vol_delete("default", "copy.qcow2")
        assert (await m.vol_info("default", "copy.qcow2"))["used_by"] == ["vm1"]
        await m.svc.undefine("vm1")
        await m.vol_delete("default", "copy.qcow2")
        await m.vol_delete("default", "top.qcow2")
        await m.vol_delete("default", "base.img")
        assert await m.vol_list("default", True) == []

    run(tmp_path, scenario)


def test_refresh_detects_once_and_refuses_escapes(tmp_path: Path) -> None:
    async def scenario(m: PoolManager, base: Path) -> None:
        import subprocess

        pool = base / "state" / "images"
        (pool / "hand.img").write_bytes(b"QFI\xfb not really qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", "/etc/shadow",
                        "-F", "raw", str(pool / "evil.qcow2"), "1M"], check=True)  # fmt: skip
        (pool / "link.img").symlink_to("/etc/passwd")
        (pool / ".virtkit-upload-old").write_bytes(b"x")
        with pytest.raises(NotFoundError, match="pool-refresh"):
            resolve_volume(m.svc, "default", "hand.img")
        await m.refresh("default")
        vols = {v["name"]: v["format"] for v in await m.vol_list("default", False)}
        assert vols == {"hand.img": "raw", "evil.qcow2": "qcow2"}
        assert resolve_volume(m.svc, "default", "hand.img")[1] == "raw"
        with pytest.raises(ConfigError, match="outside every active"):
            resolve_volume(m.svc, "default", "evil.qcow2")
        with pytest.raises(ConfigError, match="outside"):
            await m.vol_clone("default", "evil.qcow2", "stolen")
        with pytest.raises(NotFoundError):
            resolve_volume(m.svc, "default", "link.img")
        # overwriting the file by hand with a qcow2 header does not change the record
        (pool / "hand.img").write_bytes((pool / "evil.qcow2").read_bytes())
        await m.refresh("default")
        assert resolve_volume(m.svc, "default", "hand.img")[1] == "raw"
        (pool / "hand.img").unlink()
        await m.refresh("default")
        assert "hand.img" not in m.db.volumes("default")

    run(tmp_path, scenario)


def test_upload_replaces_and_validates(tmp_path: Path) -> None:
    async def scenario(m: PoolManager, base: Path) -> None:
        pool = base / "state" / "images"
        await m.vol_create("default", "d.qcow2", "1M", "qcow2", None, None, None)
        evil = base / "evil.qcow2"
        import subprocess

        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", "/etc/shadow",
                        "-F", "raw", str(evil), "1M"], check=True)  # fmt: skip
        before = (pool / "d.qcow2").read_bytes()
        data = evil.read_bytes()
        up = m.upload_begin("default", "d.qcow2", len(data))
        m.upload_chunk(up["id"], 0, data)
        with pytest.raises(ConfigError, match="outside"):
            await m.upload_commit(up["id"])
        assert (pool / "d.qcow2").read_bytes() == before
        assert sorted(p.name for p in pool.iterdir()) == ["d.qcow2"]
        with pytest.raises(NotFoundError):
            m.upload_chunk(up["id"], 0, b"")
        up = m.upload_begin("default", "d.qcow2", 3)
        m.upload_abort(up["id"])
        assert sorted(p.name for p in pool.iterdir()) == ["d.qcow2"]

    run(tmp_path, scenario)
