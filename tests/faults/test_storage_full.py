"""vol-create-as on a full disk (issue 12, finding 6): the failure is a clear error and
leaves no file behind (none under the volume's name, no hidden temporary), so vol-list
and the directory agree and the name can be used again. Also: a caller that goes away
while the image is being made does not leave a file the pool does not know."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Api, Scenario
from virtkit.daemon.storage.pools import manager
from virtkit.storage import volumes as V

Run = Callable[[Scenario], None]


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: every preallocated volume larger than that fills it."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    target = tmp_path / "full"
    target.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(target)], check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=True)


async def _pool(c: Api, target: Path) -> None:
    await c.call("POST", "/v1/pools", json_body={"name": "p", "type": "dir",
                                                 "target": str(target)}, expect=201)  # fmt: skip
    await c.call("POST", "/v1/pools/p/start", expect=200)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "v.img", "capacity": "16M", "allocation": "16M", "format": "raw"},
        {"name": "v.img", "capacity": "16M", "allocation": "16M", "format": "qcow2"},
        {"name": "v.img", "capacity": "100G", "allocation": "1", "format": "qcow2"},  # metadata
    ],
    ids=["raw-falloc", "qcow2-falloc", "qcow2-metadata"],
)
def test_full_disk_leaves_no_orphan(api: Run, tiny_fs: Path, body: dict[str, Any]) -> None:
    async def scenario(c: Api) -> None:
        await _pool(c, tiny_fs)
        msg = await c.error("POST", "/v1/pools/p/volumes", 500, "host", json_body=body)
        assert "no space left" in msg.lower(), msg
        assert os.listdir(tiny_fs) == []  # nothing under the name, no hidden temporary
        assert await c.get("/v1/pools/p/volumes") == []
        small = {"name": "v.img", "capacity": "64K", "format": body["format"]}
        await c.call("POST", "/v1/pools/p/volumes", json_body=small, expect=201)  # name free
        assert [v["name"] for v in await c.get("/v1/pools/p/volumes")] == ["v.img"]

    api(scenario)


def test_cancelled_create_is_recorded(
    api: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = V._run

    def slow(argv: list[str], what: str) -> str:
        time.sleep(0.5)
        return real(argv, what)

    monkeypatch.setattr(V, "_run", slow)
    target = tmp_path / "pool"
    target.mkdir()

    async def scenario(c: Api) -> None:
        await _pool(c, target)
        m = manager(c.svc)
        job = asyncio.ensure_future(m.vol_create("p", "v.qcow2", "1M", "qcow2", None, None, None))
        await asyncio.sleep(0.1)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
        await asyncio.sleep(0.8)  # the thread finished meanwhile
        files = sorted(os.listdir(target))
        listed = [v["name"] for v in await c.get("/v1/pools/p/volumes")]
        assert files == listed, (files, listed)

    api(scenario)
