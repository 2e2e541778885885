"""`install --dry-run` checks what the real install checks, short of creating anything
(issue 12, finding 9): the daemon runs the same checks with a flag that stops before
side effects. In-process against the API; the real install is refused the same way."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Api, Scenario
from virtkit.formats.virtinstall import parse_install_args

Run = Callable[[Scenario], None]


def body(cmd: str, dry_run: bool = True) -> dict[str, Any]:
    spec = parse_install_args(shlex.split(cmd), unprivileged=False).spec
    return {"spec": spec.model_dump(mode="json", exclude_defaults=True), "dry_run": dry_run}


def files(c: Api) -> tuple[str, str]:
    return c.image("vmlinuz"), c.image("initrd.img")


BAD: list[tuple[str, str]] = [
    ("--boot kernel=/nonexistent/vmlinuz,initrd={initrd} --disk none", "kernel /nonexistent"),
    ("--boot kernel={kernel},initrd=/nonexistent/initrd --disk none", "initrd /nonexistent"),
    ("--boot kernel={kernel},initrd={initrd} --disk path=/nonexistent/d.qcow2",
     "/nonexistent/d.qcow2 does not exist"),
    ("--boot kernel={kernel},initrd={initrd} --disk none --network bridge=vkbr-none0",
     "bridge 'vkbr-none0' does not exist"),
    ("--boot kernel={kernel},initrd={initrd} --disk none --network network=nonet",
     "network 'nonet' is not defined"),
    ("--boot kernel={kernel},initrd={initrd} --disk none --cloud-init user-data=/nonexistent/ud",
     "/nonexistent/ud does not exist"),
    ("--boot kernel={kernel},initrd={initrd} --disk none --memory 16000000",
     "MiB more memory"),
]  # fmt: skip


@pytest.mark.parametrize(("extra", "expect"), BAD, ids=[b[1][:24] for b in BAD])
def test_dry_run_refuses_what_the_install_refuses(api: Run, extra: str, expect: str) -> None:
    async def scenario(c: Api) -> None:
        kernel, initrd = files(c)
        cmd = "--name dry --memory 64 --network none " + extra.format(kernel=kernel,
                                                                    initrd=initrd)  # fmt: skip
        if "--network bridge" in extra or "--network network" in extra:
            cmd = cmd.replace("--network none ", "")
        for dry in (True, False):
            r = await c.call("POST", "/v1/install", json_body=body(cmd, dry))
            assert 400 <= r.status_code < 500, (dry, r.status_code, r.text)
            assert expect in r.json()["message"], (dry, r.json())
        assert await c.get("/v1/domains", params={"all": "true"}) == []

    api(scenario)


def test_dry_run_new_disk_needs_an_active_default_pool(api: Run) -> None:
    async def scenario(c: Api) -> None:
        kernel, initrd = files(c)
        await c.call("POST", "/v1/pools/default/destroy", expect=200)
        cmd = f"--name dry --memory 64 --network none --boot kernel={kernel},initrd={initrd} "
        r = await c.call("POST", "/v1/install", json_body=body(cmd + "--disk size=0.01"))
        assert r.status_code == 409 and "pool 'default' is not active" in r.json()["message"]
        await c.call("POST", "/v1/pools/default/start", expect=200)
        r = await c.call("POST", "/v1/install", json_body=body(cmd + "--disk size=0.01"),
                         expect=200)  # fmt: skip
        # the daemon decided where the disk goes: its own default pool; nothing was made
        images = c.svc.paths.state_dir / "images"
        assert r.json()["domain"]["disks"][0]["path"] == str(images / "dry.qcow2")
        assert list(images.iterdir()) == []
        assert await c.get("/v1/domains", params={"all": "true"}) == []

    api(scenario)


def test_dry_run_passes_a_good_install(api: Run, tmp_path: Path) -> None:
    async def scenario(c: Api) -> None:
        kernel, initrd = files(c)
        disk = tmp_path / "new.qcow2"
        cmd = (f"--name ok --memory 64 --network none --boot kernel={kernel},initrd={initrd} "
               f"--disk path={disk},size=0.01")  # fmt: skip
        await c.call("POST", "/v1/install", json_body=body(cmd), expect=200)
        assert not disk.exists()
        assert await c.get("/v1/domains", params={"all": "true"}) == []

    api(scenario)
