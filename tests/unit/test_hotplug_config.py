"""--config hot-plug verbs against a real Service (no QEMU): the stored definition changes."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from virtkit.daemon.hotplug import cpu as hp_cpu
from virtkit.daemon.hotplug import disks as hotplug
from virtkit.daemon.hotplug import memory as hp_mem
from virtkit.daemon.hotplug import nic as hp_net
from virtkit.daemon.service import Service
from virtkit.errors import ConfigError, NotFoundError, StateError
from virtkit.paths import Paths

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture
def svc(tmp_path: Path) -> Any:
    paths = Paths("session", tmp_path / "state", tmp_path / "run")
    paths.ensure()
    s = Service(paths, new_mac=lambda: "52:54:00:00:00:01")
    asyncio.run(s.define(config={"name": "d", "memory_mib": 256, "vcpus": 1, "max_vcpus": 2}))
    yield s
    s.store.close()


def stored(svc: Service) -> dict[str, Any]:
    return {d.name: d.config for d in svc.store.load_domains()}["d"]


def test_disk_config(svc: Service, tmp_path: Path) -> None:
    img = tmp_path / "a.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "1M"], check=True)
    res = run(hotplug.attach_disk(svc, "d", str(img), "vdb"))
    assert res == {"target": "vdb", "source": str(img), "live": False, "config": True}
    assert stored(svc)["disks"] == [{"path": str(img), "format": "qcow2", "bus": "virtio",
                                     "target": "vdb"}]  # fmt: skip
    with pytest.raises(ConfigError, match="already used"):
        run(hotplug.attach_disk(svc, "d", str(img), "vdb"))
    with pytest.raises(StateError, match="not running"):
        run(hotplug.attach_disk(svc, "d", str(img), "vdc", live=True))
    run(hotplug.detach_disk(svc, "d", "vdb"))
    assert "disks" not in stored(svc)
    with pytest.raises(NotFoundError, match="no disk with target vdb"):
        run(hotplug.detach_disk(svc, "d", "vdb", config=True))


def test_vcpus_config(svc: Service) -> None:
    run(hp_cpu.setvcpus(svc, "d", 2))
    assert stored(svc)["vcpus"] == 2
    with pytest.raises(ConfigError, match="--maximum --config"):
        run(hp_cpu.setvcpus(svc, "d", 3, config=True))
    run(hp_cpu.setvcpus(svc, "d", 4, config=True, maximum=True))
    run(hp_cpu.setvcpus(svc, "d", 3, config=True))
    assert (stored(svc)["vcpus"], stored(svc)["max_vcpus"]) == (3, 4)
    count = run(hp_cpu.vcpucount(svc, "d"))
    assert count == {"maximum_config": 4, "current_config": 3, "maximum_live": None,
                     "current_live": None}  # fmt: skip


def test_memory_config(svc: Service) -> None:
    run(hp_mem.setmem(svc, "d", 128 * 1024))
    assert stored(svc)["current_memory_mib"] == 128
    with pytest.raises(ConfigError, match="setmaxmem"):
        run(hp_mem.setmem(svc, "d", 512 * 1024))
    with pytest.raises(ConfigError, match="KiB"):
        run(hp_mem.setmem(svc, "d", 1024))
    run(hp_mem.setmaxmem(svc, "d", 1024 * 1024))
    cfg = stored(svc)
    assert cfg["memory_mib"] == 1024 and cfg["current_memory_mib"] == 128
    run(hp_mem.setmaxmem(svc, "d", 64 * 1024, config=True))
    assert "current_memory_mib" not in stored(svc)  # clamped: the balloon target went away
    with pytest.raises(StateError, match="not running"):
        run(hp_mem.attach_dimm(svc, "d", 256))


def test_interface_config(svc: Service) -> None:
    run(hp_net.attach_interface(svc, "d", "user"))
    run(hp_net.attach_interface(svc, "d", "user", mac="52:54:00:00:00:02"))
    assert [n["mac"] for n in stored(svc)["nics"]] == ["52:54:00:00:00:01", "52:54:00:00:00:02"]
    with pytest.raises(ConfigError, match="--mac"):
        run(hp_net.detach_interface(svc, "d", "user"))
    run(hp_net.detach_interface(svc, "d", "user", mac="52:54:00:00:00:01"))
    assert [n["mac"] for n in stored(svc)["nics"]] == ["52:54:00:00:00:02"]
    with pytest.raises(ConfigError, match="does not exist"):
        run(hp_net.attach_interface(svc, "d", "bridge", "nosuchbr9"))


def test_device_files_config(svc: Service, tmp_path: Path) -> None:
    from virtkit.daemon.hotplug import device as hp_device

    img = tmp_path / "b.raw"
    img.write_bytes(b"\0" * 4096)
    run(hp_device.attach_device(svc, "d", f"disk: {{path: {img}, target: vdc}}"))
    assert stored(svc)["disks"][0]["target"] == "vdc"
    with pytest.raises(ConfigError, match="live only"):
        run(hp_device.attach_device(svc, "d", "memory: {size_mib: 128}", config=True))
    with pytest.raises(ConfigError, match="needs its target"):
        run(hp_device.detach_device(svc, "d", "disk: {path: /x}"))
    run(hp_device.detach_device(svc, "d", "<disk type='file' device='disk'>"
                                "<source file='/x'/><target dev='vdc'/></disk>"))  # fmt: skip
    assert "disks" not in stored(svc)
