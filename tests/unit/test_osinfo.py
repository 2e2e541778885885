"""The built-in OS variant table behind --os-variant."""

from __future__ import annotations

import re

import pytest

from virtkit.errors import ConfigError
from virtkit.formats import osinfo
from virtkit.model.domain import DiskBus, Domain, NicModel


@pytest.mark.parametrize(
    ("name", "short"),
    [
        ("rhel7", "rhel7.0"),
        ("rhel7.6", "rhel7.6"),
        ("RHEL9.4", "rhel9.4"),
        ("centos-stream9", "centos-stream9"),
        ("stream8", "centos-stream8"),
        ("fedora40", "fedora40"),
        ("debian12", "debian12"),
        ("ubuntu22.04", "ubuntu22.04"),
        ("opensuse15.5", "opensuse15.5"),
        ("sles15sp5", "sles15sp5"),
        ("alpine3.19", "alpinelinux3.19"),
        ("archlinux", "archlinux"),
        ("freebsd14", "freebsd14.0"),
        ("win2k22", "win2k22"),
        ("linux2022", "linux2022"),
        ("generic", "generic"),
        ("none", "generic"),
        ("http://redhat.com/rhel/7.0", "rhel7.0"),
    ],
)
def test_lookup(name: str, short: str) -> None:
    assert osinfo.lookup(name).name == short


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(ConfigError) as exc:
        osinfo.lookup("fedora04")
    assert "unknown OS variant 'fedora04'" in exc.value.message
    assert "did you mean: fedora40" in exc.value.message
    with pytest.raises(ConfigError, match="--osinfo: unknown OS variant 'zzz'; known"):
        osinfo.lookup("zzz", "--osinfo")


def test_modern_linux_and_windows_defaults() -> None:
    rhel = osinfo.lookup("rhel9.4")
    assert (rhel.disk_bus, rhel.nic_model, rhel.uefi) == (DiskBus.VIRTIO, NicModel.VIRTIO, False)
    win = osinfo.lookup("win11")
    assert (win.disk_bus, win.nic_model, win.uefi, win.machine) == (
        DiskBus.SATA,
        NicModel.E1000E,
        True,
        "q35",
    )


def test_table_is_consistent() -> None:
    seen: set[str] = set()
    for info in osinfo.TABLE:
        for n in (info.name, *info.aliases):
            assert n not in seen, n
            seen.add(n)
        # every short id is a valid Domain.os_variant, every id a URL
        Domain(name="x", os_variant=info.name)
        assert re.match(r"^http://[a-z.]+/", info.id)
        assert osinfo.by_id(info.id) is info
        assert info.memory_mib >= 16 and info.vcpus >= 1 and info.disk_gib >= 1
    assert len(osinfo.names()) == len(osinfo.TABLE) > 80
