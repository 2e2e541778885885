"""A full disk or a read-only state directory during a config write: the old config stays
intact and the error says what happened (in-process, no QEMU)."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.api.conftest import Api, Scenario
from virtkit.daemon.store import Store
from virtkit.fsutil import atomic_write_bytes

Run = Callable[[Scenario], None]
OLD = "name: web\nuuid: 00000000-0000-4000-8000-000000000001\nmemory_mib: 256\n"
NEW = OLD.replace("256", "512") + f"description: {'x' * 4000}\n"


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_config_write_fails_cleanly(api: Run, fault: str) -> None:
    async def scenario(c: Api) -> None:
        await c.define_yaml(OLD)
        db = c.svc.store.db
        if fault == "full":  # the database may not grow by a single page: SQLITE_FULL
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            db.execute(f"PRAGMA max_page_count = {pages}")
        else:
            db.execute("PRAGMA query_only = 1")
        msg = await c.error("POST", "/v1/domains", 500, "host",
                            json_body={"text": NEW, "source": "web.yaml"})  # fmt: skip
        assert "state database refused a write" in msg and "intact" in msg, msg
        cfg = await c.get("/v1/domains/web/config")
        assert cfg["memory_mib"] == 256 and "description" not in cfg
        assert (await c.get("/v1/domains/web"))["memory_mib"] == 256
        if fault == "read-only":  # (a same-size update still fits a full database)
            await c.error("PUT", "/v1/domains/web/autostart", 500, "host",
                          json_body={"enabled": True})  # fmt: skip
            assert not (await c.get("/v1/domains/web"))["autostart"]
        db.execute("PRAGMA query_only = 0")
        db.execute("PRAGMA max_page_count = 1073741823")
        # what is on disk is the old definition
        again = Store(c.svc.paths.db)
        try:
            [stored] = again.load_domains()
            assert stored.config["memory_mib"] == 256 and not stored.autostart
        finally:
            again.close()

    api(scenario)


def test_file_beside_the_store_survives_a_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "nvram.fd"
    target.write_bytes(b"old contents")
    real_write = os.write

    def full(fd: int, data: bytes) -> int:
        if len(data) > 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError, match="No space"):
        atomic_write_bytes(target, b"new contents that do not fit")
    monkeypatch.undo()
    assert target.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nvram.fd"]  # no temp file left
