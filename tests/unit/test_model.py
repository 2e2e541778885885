"""Domain model validation: names, sizes, CPUs, MACs, paths, defaults, normalize()."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from virtkit.model.domain import (
    MAX_MEMORY_MIB,
    CacheMode,
    Disk,
    DiskBus,
    DiskDevice,
    DiskFormat,
    Domain,
    Graphics,
    Nic,
    check_name,
    normalize,
)

VALID_NAMES = ["a", "A", "0", "_", "a" * 64, "web-01", "db_2.example", "x.y-z_", "_hidden", "a..b"]
INVALID_NAMES = [
    "",
    "a" * 65,
    "-leading-dash",
    ".leading-dot",
    "a/b",
    "..",
    ".",
    "nul\x00name",
    "new\nline",
    "trailing-newline\n",
    "with space",
    "tab\tname",
    "x" * 10_000,
    "ümlaut",
    "semi;colon",
    "com,ma",
]


def dom(**kw: Any) -> Domain:
    return Domain.model_validate({"name": "vm", **kw})


def errors_of(fn: Callable[[], object]) -> str:
    with pytest.raises(ValidationError) as exc:
        fn()
    return str(exc.value)


@pytest.mark.parametrize("name", VALID_NAMES)
def test_valid_names(name: str) -> None:
    assert check_name(name) == name
    assert dom(name=name).name == name


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_names(name: str) -> None:
    with pytest.raises(ValueError, match="invalid domain name"):
        check_name(name)
    text = errors_of(lambda: dom(name=name))
    assert "invalid domain name" in text
    assert "not starting with '-' or '.'" in text


def test_long_invalid_name_is_shortened_in_the_message() -> None:
    with pytest.raises(ValueError) as exc:
        check_name("x" * 10_000)
    assert len(str(exc.value)) < 300


def test_check_name_names_the_kind_of_object() -> None:
    with pytest.raises(ValueError, match="invalid pool name"):
        check_name("", "pool")


@pytest.mark.parametrize("mib", [0, -1, 15, 2**63, MAX_MEMORY_MIB + 1])
def test_memory_out_of_range(mib: int) -> None:
    assert "memory_mib" in errors_of(lambda: dom(memory_mib=mib))


@pytest.mark.parametrize("mib", [16, 512, MAX_MEMORY_MIB])
def test_memory_in_range(mib: int) -> None:
    assert dom(memory_mib=mib).memory_mib == mib


@pytest.mark.parametrize("n", [0, -1, 1025, 100_000])
def test_vcpus_out_of_range(n: int) -> None:
    assert "vcpus" in errors_of(lambda: dom(vcpus=n))


def test_max_vcpus_below_vcpus() -> None:
    text = errors_of(lambda: dom(vcpus=4, max_vcpus=2))
    assert "max_vcpus (2) is below vcpus (4)" in text


def test_max_memory_below_memory() -> None:
    text = errors_of(lambda: dom(memory_mib=1024, max_memory_mib=512))
    assert "max_memory_mib (512) is below memory_mib (1024)" in text


def test_effective_max_vcpus() -> None:
    assert dom(vcpus=2).effective_max_vcpus == 2
    assert dom(vcpus=2, max_vcpus=8).effective_max_vcpus == 8


def test_unknown_field_is_refused() -> None:
    text = errors_of(lambda: dom(memroy_mib=512))
    assert "memroy_mib" in text
    assert "extra" in text.lower()


def test_unknown_nested_field_is_refused() -> None:
    assert "bogus" in errors_of(lambda: dom(disks=[{"path": "/x.img", "bogus": 1}]))


@pytest.mark.parametrize(
    "mac",
    [
        "52:54:00:12:34",
        "52:54:00:12:34:56:78",
        "52-54-00-12-34-56",
        "zz:54:00:12:34:56",
        "",
        "52:54:00:12:34:56\n",
        "5254.0012.3456",
    ],
)
def test_invalid_mac(mac: str) -> None:
    assert "invalid MAC address" in errors_of(lambda: Nic(mac=mac))


@pytest.mark.parametrize("mac", ["01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "53:54:00:00:00:01"])
def test_multicast_mac(mac: str) -> None:
    assert "multicast" in errors_of(lambda: Nic(mac=mac))


def test_mac_is_lowercased() -> None:
    assert Nic(mac="52:54:00:AB:CD:EF").mac == "52:54:00:ab:cd:ef"


def test_duplicate_macs() -> None:
    nics = [{"mac": "52:54:00:00:00:01"}, {"mac": "52:54:00:00:00:01"}]
    assert "MAC addresses must be unique" in errors_of(lambda: dom(nics=nics))


def test_duplicate_macs_differing_in_case() -> None:
    nics = [{"mac": "52:54:00:00:00:0a"}, {"mac": "52:54:00:00:00:0A"}]
    assert "MAC addresses must be unique" in errors_of(lambda: dom(nics=nics))


def test_duplicate_disk_targets() -> None:
    disks = [{"path": "/a.img", "target": "vda"}, {"path": "/b.img", "target": "vda"}]
    assert "disk targets must be unique" in errors_of(lambda: dom(disks=disks))


def test_nic_source_rules() -> None:
    assert "needs source" in errors_of(lambda: Nic(type="bridge"))
    assert "takes no source" in errors_of(lambda: Nic(type="user", source="br0"))
    assert Nic(type="bridge", source="br0").source == "br0"


@pytest.mark.parametrize("path", ["disk.img", "./disk.img", "../disk.img", "images/a.qcow2"])
def test_relative_disk_path(path: str) -> None:
    assert "must be an absolute path" in errors_of(lambda: Disk(path=path))


@pytest.mark.parametrize("path", ["/a\x00b.img", "/a\nb.img"])
def test_disk_path_control_characters(path: str) -> None:
    assert "NUL or newline" in errors_of(lambda: Disk(path=path))


def test_relative_kernel_and_emulator() -> None:
    assert "absolute path" in errors_of(lambda: dom(boot={"kernel": "vmlinuz"}))
    assert "absolute path" in errors_of(lambda: dom(emulator="qemu-system-x86_64"))


def test_initrd_and_cmdline_need_kernel() -> None:
    assert "need boot.kernel" in errors_of(lambda: dom(boot={"initrd": "/boot/initrd.img"}))
    assert "need boot.kernel" in errors_of(lambda: dom(boot={"cmdline": "console=ttyS0"}))


def test_boot_order_items() -> None:
    assert "boot order item 'floppy'" in errors_of(lambda: dom(boot={"order": ["floppy"]}))
    assert dom(boot={"order": ["cdrom", "hd", "network"]}).boot.order == ["cdrom", "hd", "network"]


def test_cdrom_on_virtio_bus() -> None:
    text = errors_of(lambda: Disk(path="/iso/a.iso", device="cdrom", bus="virtio"))
    assert "a cdrom cannot use bus=virtio" in text


def test_cdrom_defaults_to_sata_and_readonly() -> None:
    cd = Disk(path="/iso/a.iso", device="cdrom")
    assert cd.bus is DiskBus.SATA
    assert cd.readonly is True
    assert cd.format is DiskFormat.RAW


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("/v/a.qcow2", DiskFormat.QCOW2),
        ("/v/a.img", DiskFormat.RAW),
        ("/v/a.raw", DiskFormat.RAW),
        ("/v/a.qcow2.bak", DiskFormat.RAW),
        ("/v/noext", DiskFormat.RAW),
    ],
)
def test_disk_format_from_suffix(path: str, fmt: DiskFormat) -> None:
    # The file does not exist: the format is decided from the name, never probed.
    disk = Disk(path=path)
    assert disk.format is fmt
    assert disk.bus is DiskBus.VIRTIO
    assert disk.device is DiskDevice.DISK
    assert disk.cache is CacheMode.WRITEBACK


def test_explicit_format_wins_over_suffix() -> None:
    assert Disk(path="/v/a.qcow2", format="raw").format is DiskFormat.RAW


@pytest.mark.parametrize("target", ["xda", "vd", "vdabc", "VDA", "vd1"])
def test_invalid_disk_target(target: str) -> None:
    assert "target" in errors_of(lambda: Disk(path="/a.img", target=target))


def test_invalid_uuid() -> None:
    assert "invalid uuid" in errors_of(lambda: dom(uuid="not-a-uuid"))
    assert (
        dom(uuid="6F9619FF8B86D011B42D00C04FC964FF").uuid == "6f9619ff-8b86-d011-b42d-00c04fc964ff"
    )


@pytest.mark.parametrize("listen", ["0.0.0.0,password=on", "", "a b", "x" * 300])
def test_graphics_listen_is_an_address(listen: str) -> None:
    assert "listen" in errors_of(lambda: Graphics(type="vnc", listen=listen))


@pytest.mark.parametrize("port", [5899, 65536, 0])
def test_graphics_port_range(port: int) -> None:
    assert "port" in errors_of(lambda: Graphics(type="vnc", port=port))


def test_domain_is_frozen() -> None:
    d = dom()
    with pytest.raises(ValidationError):
        d.name = "other"  # type: ignore[misc]


def counter(fmt: str) -> Callable[[], str]:
    n = iter(range(1, 1000))
    return lambda: fmt.format(next(n))


def seq(items: list[str]) -> Callable[[], str]:
    it: Iterator[str] = iter(items)
    return lambda: next(it)


UUID1 = "00000000-0000-4000-8000-000000000001"


def test_normalize_fills_uuid_targets_and_macs() -> None:
    d = dom(
        disks=[
            {"path": "/v/a.qcow2"},
            {"path": "/v/b.img"},
            {"path": "/iso/c.iso", "device": "cdrom"},
            {"path": "/v/d.img", "bus": "scsi"},
        ],
        nics=[{}, {"model": "e1000"}],
    )
    n = normalize(d, new_uuid=lambda: UUID1, new_mac=counter("52:54:00:00:00:{:02x}"))
    assert n.uuid == UUID1
    assert [x.target for x in n.disks] == ["vda", "vdb", "sda", "sdb"]
    assert [x.mac for x in n.nics] == ["52:54:00:00:00:01", "52:54:00:00:00:02"]
    # The input is untouched (frozen models, copies).
    assert d.uuid is None
    assert d.disks[0].target is None


def test_normalize_is_deterministic() -> None:
    d = dom(disks=[{"path": "/v/a.img"}], nics=[{}])
    a = normalize(d, new_uuid=lambda: UUID1, new_mac=counter("52:54:00:00:00:{:02x}"))
    b = normalize(d, new_uuid=lambda: UUID1, new_mac=counter("52:54:00:00:00:{:02x}"))
    assert a == b


def test_normalize_keeps_given_values() -> None:
    given = "11111111-2222-4333-8444-555555555555"
    d = dom(
        uuid=given,
        disks=[{"path": "/v/a.img", "target": "vdc"}],
        nics=[{"mac": "52:54:00:aa:bb:cc"}],
    )

    def no_source() -> str:
        raise AssertionError("must not be called")

    n = normalize(d, new_uuid=no_source, new_mac=no_source)
    assert n.uuid == given
    assert n.disks[0].target == "vdc"
    assert n.nics[0].mac == "52:54:00:aa:bb:cc"


def test_normalize_skips_explicit_targets() -> None:
    d = dom(
        disks=[{"path": "/v/a.img"}, {"path": "/v/b.img", "target": "vda"}, {"path": "/v/c.img"}]
    )
    n = normalize(d, new_uuid=lambda: UUID1, new_mac=lambda: "52:54:00:00:00:01")
    assert [x.target for x in n.disks] == ["vdb", "vda", "vdc"]


def test_normalize_many_disks_get_two_letter_targets() -> None:
    d = dom(disks=[{"path": f"/v/{i}.img"} for i in range(28)])
    n = normalize(d, new_uuid=lambda: UUID1, new_mac=lambda: "52:54:00:00:00:01")
    targets = [x.target for x in n.disks]
    assert targets[:2] == ["vda", "vdb"]
    assert targets[25:] == ["vdz", "vdaa", "vdab"]


def test_normalize_mac_uniqueness() -> None:
    # The source repeats a MAC already in use and then one it just handed out.
    d = dom(nics=[{"mac": "52:54:00:00:00:01"}, {}, {}])
    source = seq(
        ["52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:02", "52:54:00:00:00:03"]
    )
    n = normalize(d, new_uuid=lambda: UUID1, new_mac=source)
    macs = [x.mac for x in n.nics]
    assert macs == ["52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03"]
