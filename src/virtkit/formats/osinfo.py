"""A built-in table of common guest OS variants (a small libosinfo), for --os-variant.

Each variant gives the defaults virt-install takes from libosinfo: the disk bus
and NIC model the guest has drivers for, the recommended memory and vCPUs, the
size of a default disk, and whether it wants UEFI. Short ids and libosinfo ids
follow osinfo-db (``rhel7.0`` = ``http://redhat.com/rhel/7.0``); ``aliases``
are the extra short names users type (``rhel7``, ``centos-stream9`` ...).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from virtkit.errors import ConfigError
from virtkit.model.domain import DiskBus, NicModel


@dataclass(frozen=True)
class OsInfo:
    name: str  # the short id stored in Domain.os_variant
    id: str  # the libosinfo id written into domain XML metadata
    family: str  # linux | windows | bsd | unknown
    disk_bus: DiskBus = DiskBus.VIRTIO
    nic_model: NicModel = NicModel.VIRTIO
    memory_mib: int = 2048
    vcpus: int = 2
    disk_gib: int = 20
    uefi: bool = False
    machine: str = "q35"
    aliases: tuple[str, ...] = ()


def _linux(
    name: str,
    id: str,
    mem: int = 2048,
    vcpus: int = 2,
    disk: int = 20,
    aliases: tuple[str, ...] = (),
) -> OsInfo:
    return OsInfo(name, id, "linux", memory_mib=mem, vcpus=vcpus, disk_gib=disk, aliases=aliases)


def _table() -> list[OsInfo]:
    t: list[OsInfo] = []
    # RHEL: (major, number of minor releases, memory MiB, vCPUs, disk GiB); rhelN = rhelN.0
    for major, minors, mem, vcpus, disk in ((6, 11, 1024, 1, 10), (7, 10, 1536, 1, 10),
                                            (8, 11, 2048, 2, 20), (9, 5, 2048, 2, 20)):  # fmt: skip
        for minor in range(minors):
            v = f"{major}.{minor}"
            alias = (f"rhel{major}",) if minor == 0 else ()
            t.append(_linux(f"rhel{v}", f"http://redhat.com/rhel/{v}", mem, vcpus, disk, alias))
    t.append(_linux("centos7.0", "http://centos.org/centos/7.0", 1024, 1, 10, ("centos7",)))
    t.append(_linux("centos8", "http://centos.org/centos/8", 2048, 2, 20))
    for n in (8, 9):
        t.append(
            _linux(
                f"centos-stream{n}",
                f"http://centos.org/centos-stream/{n}",
                aliases=(f"centosstream{n}", f"stream{n}"),
            )
        )
    for n in range(36, 41):
        t.append(_linux(f"fedora{n}", f"http://fedoraproject.org/fedora/{n}"))
    for n in (10, 11, 12):
        t.append(_linux(f"debian{n}", f"http://debian.org/debian/{n}", 1024, 1, 20))
    for year in range(18, 25):
        for month in ("04", "10"):
            if (year, month) == (24, "10"):
                continue
            v = f"{year}.{month}"
            mem = 2048 if year >= 20 else 1024
            t.append(_linux(f"ubuntu{v}", f"http://ubuntu.com/ubuntu/{v}", mem, 2, 25))
    for minor in range(7):
        v = f"15.{minor}"
        t.append(_linux(f"opensuse{v}", f"http://opensuse.org/opensuse/{v}", 1024, 1, 20))
    t.append(_linux("sles15", "http://suse.com/sles/15", 1024, 1, 20))
    for sp in range(1, 7):
        t.append(_linux(f"sles15sp{sp}", f"http://suse.com/sles/15.{sp}", 1024, 1, 20))
    for minor in range(15, 21):
        v = f"3.{minor}"
        t.append(
            _linux(
                f"alpinelinux{v}",
                f"http://alpinelinux.org/alpinelinux/{v}",
                512,
                1,
                8,
                (f"alpine{v}",),
            )
        )
    t.append(_linux("archlinux", "http://archlinux.org/archlinux/rolling", 1024, 1, 20))
    for year in (2016, 2018, 2020, 2022, 2024):
        t.append(_linux(f"linux{year}", f"http://libosinfo.org/linux/{year}", 2048, 2, 20))
    for v in ("13.0", "13.1", "13.2", "13.3", "14.0", "14.1"):
        t.append(
            OsInfo(
                f"freebsd{v}",
                f"http://freebsd.org/freebsd/{v}",
                "bsd",
                memory_mib=1024,
                vcpus=1,
                disk_gib=20,
                aliases=(f"freebsd{v[:2]}",) if v.endswith(".0") else (),
            )
        )
    for short, mem, uefi in (
        ("10", 2048, False),
        ("11", 4096, True),
        ("2k19", 2048, False),
        ("2k22", 4096, True),
    ):
        t.append(
            OsInfo(
                f"win{short}",
                f"http://microsoft.com/win/{short}",
                "windows",
                disk_bus=DiskBus.SATA,
                nic_model=NicModel.E1000E,
                memory_mib=mem,
                vcpus=2,
                disk_gib=64,
                uefi=uefi,
            )
        )
    # libosinfo's "unknown OS": no drivers assumed beyond what every guest has.
    t.append(
        OsInfo(
            "generic",
            "http://libosinfo.org/unknown",
            "unknown",
            memory_mib=1024,
            vcpus=1,
            disk_gib=20,
            aliases=("none", "unknown"),
        )
    )
    return t


TABLE: tuple[OsInfo, ...] = tuple(_table())
_BY_NAME: dict[str, OsInfo] = {}
for _os in TABLE:
    for _n in (_os.name, *_os.aliases):
        _BY_NAME[_n] = _os
_BY_ID: dict[str, OsInfo] = {o.id: o for o in TABLE}


def names() -> list[str]:
    """Every short id (not the aliases), in table order."""
    return [o.name for o in TABLE]


def by_id(osinfo_id: str) -> OsInfo | None:
    """The variant with this libosinfo id (``http://redhat.com/rhel/7.0``), if known."""
    return _BY_ID.get(osinfo_id)


def lookup(name: str, option: str = "--os-variant") -> OsInfo:
    """The variant named ``name`` (a short id, an alias or a libosinfo id).

    Raises ConfigError listing close matches when the name is unknown.
    """
    key = name.strip().lower()
    found = _BY_NAME.get(key) or _BY_ID.get(name.strip())
    if found is not None:
        return found
    close = difflib.get_close_matches(key, list(_BY_NAME), n=5, cutoff=0.6)
    hint = f"did you mean: {', '.join(close)}? " if close else ""
    raise ConfigError(
        f"{option}: unknown OS variant {name!r}; {hint}"
        f"known variants include {', '.join(sorted({o.family for o in TABLE}))} families "
        f"such as rhel9.4, fedora40, debian12, ubuntu24.04, win11; "
        "use 'generic' (or detect=on) for anything else"
    )
