"""The mutable record the virt-install option parsers fill in.

Each parser (vi_guest, vi_devices) writes only what the user said; ``None``
means "not given". vi_build applies the defaults afterwards (virtinst's
two-pass approach) and builds the frozen model objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from virtkit.formats.osinfo import OsInfo
from virtkit.model.domain import (
    Accel,
    CacheMode,
    DiskBus,
    DiskDevice,
    DiskFormat,
    GraphicsType,
    NicModel,
    NicType,
)
from virtkit.model.install import CloudInit


@dataclass
class DiskDraft:
    path: str | None  # None: a new disk in the default image directory
    size_gib: float | None = None
    format: DiskFormat | None = None
    bus: DiskBus | None = None
    cache: CacheMode | None = None
    readonly: bool = False
    device: DiskDevice = DiskDevice.DISK
    sparse: bool = True
    serial: str | None = None
    target: str | None = None
    volume: tuple[str, str] | None = None  # vol=POOL/NAME


@dataclass
class NicDraft:
    type: NicType
    source: str | None = None
    model: NicModel | None = None
    mac: str | None = None
    hostfwd: list[str] = field(default_factory=list)  # user mode: hostfwd=tcp::2222-:22


@dataclass
class GraphicsDraft:
    type: GraphicsType
    listen: str | None = None
    port: int | None = None
    password: str | None = None


@dataclass
class Draft:
    unprivileged: bool
    warnings: list[str] = field(default_factory=list)
    name: str | None = None
    uuid: str | None = None
    title: str = ""
    description: str = ""
    # --memory: memory= (balloon target), maxmemory= (RAM at boot), maxMemory= (hotplug)
    memory: int | None = None
    maxmemory: int | None = None
    hotplug_max: int | None = None
    slots: int | None = None
    vcpus: int | None = None
    maxvcpus: int | None = None
    sockets: int | None = None
    cores: int | None = None
    threads: int | None = None
    cpu_model: str | None = None
    osinfo: OsInfo | None = None
    os_detect: bool = False
    # install methods in the order given: (option, value)
    methods: list[tuple[str, str]] = field(default_factory=list)
    location: str | None = None
    location_kernel: str | None = None
    location_initrd: str | None = None
    checksum: str | None = None
    cdrom: str | None = None
    boot_given: bool = False
    boot_order: list[str] = field(default_factory=list)
    uefi: bool | None = None
    kernel: str | None = None
    initrd: str | None = None
    kernel_args: str | None = None
    extra_args: str | None = None
    initrd_inject: list[str] = field(default_factory=list)
    disks: list[DiskDraft] = field(default_factory=list)
    no_disks: bool = False
    nics: list[NicDraft] = field(default_factory=list)
    no_nics: bool = False
    graphics: GraphicsDraft | None = None
    cloud_init: CloudInit | None = None
    accel: Accel | None = None
    machine: str | None = None
    noreboot: bool = False
    transient: bool = False
    autostart: bool = False
    autoconsole: bool = True
    wait_minutes: float | None = None
    dry_run: bool = False
    print_xml: bool = False
    numa_cells: list[tuple[str, int]] = field(default_factory=list)  # --cpu cellN: (cpus, KiB)
    hostdevs: list[str] = field(default_factory=list)  # --hostdev: PCI addresses
    tune: dict[str, Any] = field(default_factory=dict)  # --numatune/--cputune/--memorybacking
