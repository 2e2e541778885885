"""clone, block devices, undefine with storage and the save/restore error paths, in
process (qemu-img only, no guest). Responses are validated against the OpenAPI document."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.api.conftest import MACS, UUIDS, Api, Scenario
from virtkit.daemon.domains.saverestore import encode_header, managed_save_path, read_header

Run = Callable[[Scenario], None]


def qcow2(path: Path, size: str = "16M") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    return str(path)


def backing(path: str) -> str | None:
    out = subprocess.run(["qemu-img", "info", "-U", "--output=json", "-f", "qcow2", path],
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    value = json.loads(out).get("backing-filename")
    return None if value is None else str(value)


async def define_with(c: Api, name: str, *disks: dict[str, object]) -> None:
    await c.define({"config": {"name": name, "disks": list(disks), "nics": [{}]}})


def test_full_and_linked_clone(api: Run) -> None:
    async def scenario(c: Api) -> None:
        src = qcow2(c.files / "web.qcow2")
        iso = c.image("cd.iso")
        await define_with(c, "web", {"path": src}, {"path": iso, "device": "cdrom"})
        url = "/v1/domains/web/clone"
        body = {"name": "web2", "auto_clone": True}
        res = (await c.call("POST", url, json_body=body, expect=201)).json()
        assert res["domain"]["name"] == "web2" and res["domain"]["uuid"] == UUIDS[1]
        assert [d["mode"] for d in res["disks"]] == ["copy", "shared"]
        copy = str(c.files / "web2.qcow2")  # named after the new domain (virt-clone's rule)
        assert res["disks"][0]["path"] == copy and backing(copy) is None
        cfg = await c.get("/v1/domains/web2/config")
        assert cfg["nics"][0]["mac"] == MACS[1] and cfg["disks"][1]["path"] == iso
        # linked: the clone and the original get overlays on the frozen original image
        body = {"name": "web3", "auto_clone": True, "linked": True}
        res = (await c.call("POST", url, json_body=body, expect=201)).json()
        (top,) = res["original_overlays"]
        assert res["disks"][0]["mode"] == "linked"
        assert backing(res["disks"][0]["path"]) == src and backing(top) == src
        assert (await c.get("/v1/domains/web/config"))["disks"][0]["path"] == top
        blocks = await c.get("/v1/domains/web3/blocks")
        assert blocks[0] == {"type": "file", "device": "disk", "target": "vda",
                             "source": res["disks"][0]["path"], "format": "qcow2",
                             "readonly": False}  # fmt: skip
        # errors: the name is taken, no path for a disk, unknown source, relative --file
        msg = await c.error("POST", url, 400, "config", json_body={"name": "web2"})
        assert "already exists" in msg
        msg = await c.error("POST", url, 400, "config", json_body={"name": "web4"})
        assert "--auto-clone" in msg
        await c.error("POST", "/v1/domains/nope/clone", 404, "not-found",
                      json_body={"name": "x", "auto_clone": True})  # fmt: skip
        msg = await c.error("POST", url, 400, "config",
                            json_body={"name": "web4", "files": ["rel.qcow2"]})  # fmt: skip
        assert "absolute" in msg
        taken = str(c.files / "web2.qcow2")
        msg = await c.error("POST", url, 400, "config",
                            json_body={"name": "web4", "files": [taken]})  # fmt: skip
        assert "already exists" in msg

    api(scenario)


def test_block_info_and_resize_shut_off(api: Run) -> None:
    async def scenario(c: Api) -> None:
        img = qcow2(c.files / "d.qcow2")
        await define_with(c, "b", {"path": img})
        info = await c.get("/v1/domains/b/blocks/vda")
        assert info["capacity"] == 16 << 20 and info["source"] == img
        assert info["allocation"] > 0 and 0 < info["physical"] < 16 << 20
        url = "/v1/domains/b/blocks/vda/resize"
        res = await c.call("POST", url, json_body={"size_bytes": (32 << 20) - 100}, expect=200)
        assert res.json()["capacity"] == 32 << 20  # rounded up to 512
        msg = await c.error("POST", url, 400, "config", json_body={"size_bytes": 8 << 20})
        assert "--shrink" in msg
        body = {"size_bytes": 8 << 20, "shrink": True}
        assert (await c.call("POST", url, json_body=body, expect=200)).json()["capacity"] == 8 << 20
        await c.error("GET", "/v1/domains/b/blocks/vdq", 404, "not-found")

    api(scenario)


def test_undefine_with_storage(api: Run) -> None:
    async def scenario(c: Api) -> None:
        images = c.svc.paths.state_dir / "images"
        mine, outside = qcow2(images / "m.qcow2"), qcow2(c.files / "o.qcow2")
        await define_with(c, "u", {"path": mine}, {"path": outside})
        url = "/v1/domains/u/undefine"
        msg = await c.error("POST", url, 400, "config", json_body={"storage": ["vdz"]})
        assert "vda" in msg
        save = managed_save_path(c.svc, c.svc.entry("u").domain)
        save.parent.mkdir(parents=True, exist_ok=True)
        save.write_bytes(b"x")
        assert (await c.get("/v1/domains/u"))["managed_save"] is True
        msg = await c.error("POST", url, 409, "state", json_body={"remove_all_storage": True})
        assert "--managed-save" in msg
        body = {"remove_all_storage": True, "managed_save": True}
        res = (await c.call("POST", url, json_body=body, expect=200)).json()
        assert res["removed"] == [{"target": "vda", "path": mine, "reason": ""}]
        assert res["kept"][0]["path"] == outside and "not managed" in res["kept"][0]["reason"]
        assert res["managed_save_removed"] and not save.exists()
        assert not Path(mine).exists() and Path(outside).exists()
        await c.error("GET", "/v1/domains/u", 404, "not-found")

    api(scenario)


def test_undefine_keeps_images_other_domains_need(api: Run) -> None:
    async def scenario(c: Api) -> None:
        images = c.svc.paths.state_dir / "images"
        base = qcow2(images / "base.qcow2")
        await define_with(c, "a", {"path": base})
        await c.call("POST", "/v1/domains/a/clone", expect=201,
                     json_body={"name": "b", "auto_clone": True, "linked": True})  # fmt: skip
        top_a = (await c.get("/v1/domains/a/config"))["disks"][0]["path"]
        res = (await c.call("POST", "/v1/domains/b/undefine", expect=200,
                            json_body={"remove_all_storage": True})).json()  # fmt: skip
        assert [r["path"] for r in res["removed"]] == [str(images / "base-clone.qcow2")]
        assert Path(base).exists()  # a's overlay still needs it
        res = (await c.call("POST", "/v1/domains/a/undefine", expect=200,
                            json_body={"remove_all_storage": True})).json()  # fmt: skip
        assert [r["path"] for r in res["removed"]] == [top_a, base]
        assert not Path(base).exists()

    api(scenario)


def test_save_restore_errors(api: Run) -> None:
    async def scenario(c: Api) -> None:
        await define_with(c, "s")
        body = {"file": str(c.files / "s.save")}
        msg = await c.error("POST", "/v1/domains/s/save", 409, "state", json_body=body)
        assert "not running" in msg
        await c.error("POST", "/v1/domains/s/managedsave", 409, "state")
        await c.call("DELETE", "/v1/domains/s/managedsave", expect=204)
        await c.error("POST", "/v1/restore", 404, "not-found", json_body=body)
        Path(body["file"]).write_bytes(b"garbage")
        msg = await c.error("POST", "/v1/restore", 400, "config", json_body=body)
        assert "not a virtkit save file" in msg
        await c.error("POST", "/v1/restore", 400, "config", json_body={"file": "rel.save"})

    api(scenario)


def test_save_header_roundtrip(tmp_path: Path) -> None:
    head = encode_header({"name": "x", "domain": {"name": "x"}, "running": True})
    assert len(head) % 4096 == 0
    f = tmp_path / "x.save"
    f.write_bytes(head + b"QEVM")
    header, offset = read_header(f)
    assert header["name"] == "x" and offset == len(head)
