"""Hostile input, in-process against the API (no QEMU): each a clear 4xx and nothing
changed. Plus a QMP peer that floods us without a newline (memory stays bounded)."""

from __future__ import annotations

import asyncio
import resource
import socket
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Api, Scenario
from virtkit.errors import QmpError
from virtkit.qemu.qmp import Monitor

Run = Callable[[Scenario], None]


async def unchanged(c: Api) -> None:
    assert await c.get("/v1/domains", params={"all": "true"}) == []
    assert await c.get("/v1/events", params={"after": 0}) == []


@pytest.mark.parametrize("name", ["a/b", "..", "../etc", "a\0b", "a\nb", "x" * 10240, "-x", ".h",
                                  "", "a b", "é"])  # fmt: skip
def test_hostile_names(api: Run, name: str) -> None:
    async def scenario(c: Api) -> None:
        msg = await c.error("POST", "/v1/domains", 400, "config",
                            json_body={"config": {"name": name}})  # fmt: skip
        assert "name" in msg
        await c.error("POST", "/v1/domains", 400, "config",
                      json_body={"text": f"name: {name!r}\n"})  # fmt: skip
        await unchanged(c)

    api(scenario)


@pytest.mark.parametrize("url", ["/v1/domains/..", "/v1/domains/%2e%2e%2fetc", "/v1/domains/a%00b",
                                 "/v1/domains/" + "x" * 10240])  # fmt: skip
def test_hostile_names_in_urls(api: Run, url: str) -> None:
    async def scenario(c: Api) -> None:
        resp = await c.client.request("GET", url)
        assert 400 <= resp.status_code < 500
        resp = await c.client.request("DELETE", url)
        assert 400 <= resp.status_code < 500
        await unchanged(c)

    api(scenario)


@pytest.mark.parametrize(("field", "value"), [
    ("memory_mib", 0), ("memory_mib", -1), ("memory_mib", 2**63), ("memory_mib", 2**64),
    ("memory_mib", "lots"), ("vcpus", 100000), ("vcpus", 0), ("max_vcpus", 100000),
    ("memory_slots", 10**6), ("qemu_args", ["a\0b"]),
])  # fmt: skip
def test_hostile_sizes(api: Run, field: str, value: Any) -> None:
    async def scenario(c: Api) -> None:
        msg = await c.error("POST", "/v1/domains", 400, "config",
                            json_body={"config": {"name": "h", field: value}})  # fmt: skip
        assert field in msg
        await unchanged(c)

    api(scenario)


def test_unknown_fields(api: Run) -> None:
    async def scenario(c: Api) -> None:
        msg = await c.error("POST", "/v1/domains", 400, "config",
                            json_body={"config": {"name": "h", "bogus": 1}})  # fmt: skip
        assert "bogus" in msg
        await c.error("POST", "/v1/domains", 400, "config",
                      json_body={"config": {"name": "h", "boot": {"kernel_x": "/k"}}})  # fmt: skip
        resp = await c.call("POST", "/v1/domains", json_body={"config": {"name": "h"}, "x": 1})
        assert resp.status_code == 400
        await unchanged(c)

    api(scenario)


def test_huge_and_nested_bodies(api: Run) -> None:
    async def scenario(c: Api) -> None:
        big = "#" + "x" * (1 << 20) + "\nname: big\n"
        await c.error("POST", "/v1/domains", 413, "config", json_body={"text": big})
        nested = b'{"config": ' + b'{"a": ' * 100000 + b"1" + b"}" * 100000 + b"}"
        resp = await c.client.post("/v1/domains", content=nested,
                                   headers={"content-type": "application/json"})  # fmt: skip
        assert 400 <= resp.status_code < 500
        yaml_bomb = "name: &a [" + ",".join(["*a"] * 10) + "]\n"
        resp = await c.client.post("/v1/domains", json={"text": "a: &a [x]\n" + yaml_bomb})
        assert 400 <= resp.status_code < 500
        await unchanged(c)

    api(scenario)


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<domain type="kvm"><name>&lol4;</name><memory unit="MiB">64</memory></domain>
"""
EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/shadow">]>
<domain type="kvm"><name>ext</name><description>&x;</description>
<memory unit="MiB">64</memory></domain>
"""


@pytest.mark.parametrize("xml", [BILLION_LAUGHS, EXTERNAL], ids=["billion-laughs", "external"])
def test_xml_entities(api: Run, xml: str) -> None:
    async def scenario(c: Api) -> None:
        resp = await c.call("POST", "/v1/domains", json_body={"text": xml, "source": "d.xml"})
        assert resp.status_code == 400, resp.text
        assert "root:" not in resp.text
        await unchanged(c)

    api(scenario)


def test_exabyte_volume(api: Run, tmp_path: Path) -> None:
    async def scenario(c: Api) -> None:
        target = tmp_path / "pool"
        target.mkdir()
        r = await c.call("POST", "/v1/pools", json_body={"name": "p", "type": "dir",
                                                          "target": str(target)})  # fmt: skip
        assert r.status_code == 201, r.text
        for cap in ("1EiB", 1 << 60, "-1", "0x10", "1e30"):
            resp = await c.call("POST", "/v1/pools/p/volumes",
                                json_body={"name": "v.img", "capacity": cap})  # fmt: skip
            assert 400 <= resp.status_code < 500, (cap, resp.text)
        assert list(target.iterdir()) == []

    api(scenario)


def _qcow2(path: Path, backing: str, fmt: str = "raw") -> None:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", fmt,
                    str(path), "64M"], check=True)  # fmt: skip


def test_backing_file_pointing_at_etc_shadow(api: Run, tmp_path: Path) -> None:
    async def scenario(c: Api) -> None:
        evil = tmp_path / "evil.qcow2"
        _qcow2(evil, "/etc/shadow")
        await c.define({"config": {"name": "evil", "memory_mib": 64,
                                   "disks": [{"path": str(evil)}]}})  # fmt: skip
        msg = await c.error("POST", "/v1/domains/evil/start", 400, "config")
        assert "/etc/shadow" in msg and "outside" in msg
        info = await c.get("/v1/domains/evil")
        assert info["state"] == "shut off" and info["pid"] is None

    api(scenario)


def test_raw_image_with_a_qcow2_header_is_never_probed(api: Run, tmp_path: Path) -> None:
    """A guest can write a qcow2 header into its raw disk: it stays raw, nothing follows
    the 'backing file' it names (virtkit never probes formats)."""
    from virtkit.formats.domfile import domain_from_mapping
    from virtkit.qemu.argv import RunPaths, build_argv
    from virtkit.qemu.caps import Caps, MachineInfo

    img = tmp_path / "guest.img"
    _qcow2(img, "/etc/shadow")
    dom = domain_from_mapping({"name": "g", "uuid": "00000000-0000-4000-8000-000000000001",
                               "disks": [{"path": str(img)}]}, "test")  # fmt: skip
    caps = Caps("/usr/bin/qemu-system-x86_64", "7.2.0", {"pc-q35-7.2": MachineInfo(
        "pc-q35-7.2", "q35", 288)}, frozenset({"max"}), frozenset(), False,
        aliases={"q35": "pc-q35-7.2"})  # fmt: skip
    from virtkit.model.domain import Accel

    argv = build_argv(dom, caps, RunPaths("/q", "/s", "/p", "/l"), Accel.TCG)
    blockdevs = [argv[i + 1] for i, a in enumerate(argv) if a == "-blockdev"]
    assert any(b.startswith("driver=raw,") for b in blockdevs), blockdevs
    assert not any("driver=qcow2" in b or "shadow" in b for b in blockdevs)

    async def scenario(c: Api) -> None:
        await c.define({"config": {"name": "g", "memory_mib": 64, "disks": [{"path": str(img)}]}})
        cfg = await c.get("/v1/domains/g/config")
        assert cfg["disks"][0].get("format", "raw") == "raw"

    api(scenario)


def test_qmp_peer_flooding_a_gigabyte_is_cut_off(tmp_path: Path) -> None:
    """A peer that sends 1 GiB without a newline: we disconnect, memory stays bounded."""
    path = str(tmp_path / "flood.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)
    sent = [0]

    def flood() -> None:
        conn, _ = srv.accept()
        chunk = b"x" * (1 << 20)
        try:
            conn.sendall(b'{"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}, '
                         b'"package": ""}, "capabilities": []}}\r\n')  # fmt: skip
            conn.recv(4096)  # qmp_capabilities
            conn.sendall(b'{"return": {}}\r\n')
            while sent[0] < 1 << 30:
                conn.sendall(chunk)
                sent[0] += len(chunk)
        except OSError:
            pass
        finally:
            conn.close()

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    async def go() -> None:
        mon = Monitor("flood", path, timeout_s=10)
        with pytest.raises(QmpError):
            await mon.connect(5)
            for _ in range(20):
                await mon.query_status()
                await asyncio.sleep(0.05)
        await mon.close()

    asyncio.run(go())
    t.join(30)
    srv.close()
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert sent[0] < 1 << 30, "the flood was not cut off"
    assert grown_mib < 64, f"memory grew by {grown_mib:.0f} MiB"
