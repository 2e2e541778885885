"""Hot-plug pieces without QEMU: virsh's --live/--config scope, device files, sizes."""

from __future__ import annotations

import os
import threading

import pytest

from virtkit.cli.hotplug import _kib
from virtkit.daemon.hotplug.cpu import _task_stat
from virtkit.daemon.hotplug.device import parse_device
from virtkit.daemon.hotplug.disks import scope, validated
from virtkit.daemon.service import Entry
from virtkit.errors import ConfigError, StateError
from virtkit.model.domain import Domain
from virtkit.model.state import State


class _Sup:
    alive = True


def entry(running: bool, persistent: bool = True) -> Entry:
    e = Entry(Domain(name="d"), persistent=persistent)
    if running:
        e.sup = _Sup()  # type: ignore[assignment]
        e.state = State.RUNNING
    return e


@pytest.mark.parametrize(
    ("running", "live", "config", "persistent", "want"),
    [
        (True, False, False, False, (True, False)),  # default: live when running
        (False, False, False, False, (False, True)),  # ... config when shut off
        (True, True, True, False, (True, True)),
        (True, False, False, True, (True, True)),  # --persistent: both
        (False, False, False, True, (False, True)),  # ... config only when shut off
        (True, False, True, False, (False, True)),
    ],
)
def test_scope_like_virsh(
    running: bool, live: bool, config: bool, persistent: bool, want: tuple[bool, bool]
) -> None:
    sc = scope(entry(running), live, config, persistent)
    assert (sc.live, sc.config) == want


def test_scope_refusals() -> None:
    with pytest.raises(StateError, match=r"not running.*--config"):
        scope(entry(False), True, False)
    with pytest.raises(StateError, match="transient"):
        scope(entry(True, persistent=False), False, True)


def test_validated_checks_again() -> None:
    dom = Domain(name="d", memory_mib=256)
    assert validated(dom, current_memory_mib=128).current_memory_mib == 128
    assert validated(dom.model_copy(update={"current_memory_mib": 128}),
                     current_memory_mib=None).current_memory_mib is None  # fmt: skip
    with pytest.raises(ConfigError, match="balloon can only take memory away"):
        validated(dom, current_memory_mib=512)


def test_parse_device_yaml_and_xml() -> None:
    assert parse_device("memory:\n  size_mib: 256\n").size_mib == 256
    xml = "<memory model='dimm'><target><size unit='GiB'>1</size></target></memory>"
    assert parse_device(xml).size_mib == 1024
    d = parse_device(
        "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
        "<source file='/x/a.qcow2'/><target dev='vdb' bus='virtio'/><readonly/></disk>"
    )
    assert d.kind == "disk"
    assert d.disk == {"path": "/x/a.qcow2", "target": "vdb", "bus": "virtio",
                      "format": "qcow2", "readonly": True}  # fmt: skip
    assert parse_device("disk: {path: /x/b.raw, target: vdc}").disk["target"] == "vdc"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("memory: {size_mib: '1G'}", "size_mib: N"),
        ("nic: {}", "one device"),
        ("<interface type='user'/>", "not <interface>"),
        ("<memory model='nvdimm'><target><size>1</size></target></memory>", "model"),
        ("<memory model='dimm'/>", "<target><size"),
        ("<!DOCTYPE x [<!ENTITY a 'b'>]><memory/>", "refused"),
        ("<memory", "not well-formed"),
    ],
)
def test_parse_device_errors(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_device(text)


def test_sizes_are_kib_like_virsh() -> None:
    assert _kib("163840") == 163840
    assert _kib("160M") == 160 * 1024
    assert _kib("1GiB") == 1024 * 1024
    with pytest.raises(ConfigError):
        _kib("lots")


def test_task_stat_reads_own_thread() -> None:
    cpu, secs = _task_stat(os.getpid(), threading.get_native_id())
    assert cpu >= 0 and secs >= 0
    assert _task_stat(os.getpid(), 0) == (-1, 0.0)
