"""The domain model: pure data and its validation. No I/O here.

A ``Domain`` is what the user defines (our YAML/JSON format maps 1:1 onto it;
libvirt XML and virt-install options are translated into it by formats/).
Fields the user may leave out (uuid, MAC addresses, disk targets) are filled by
``normalize`` from injected sources, so the same input always gives the same
stored domain in tests.
"""

from __future__ import annotations

import re
import uuid as uuidlib
from collections.abc import Callable
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Annotated, Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from virtkit.model.hostfeat import CpuTune, Hostdev, Numa, NumaTune, check_domain
from virtkit.model.profile import check_microvm
from virtkit.model.strict import StrictModel

NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
MAC_RE = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
MAX_MEMORY_MIB = 16 * 1024 * 1024  # 16 TiB: beyond any host QEMU runs on
MIN_MEMORY_MIB = 16
MAX_VCPUS = 1024  # QEMU's hard ceiling; the machine type's own limit is checked at start


def check_name(name: str, what: str = "domain") -> str:
    """Validate an object name; raise ValueError with the rule and a fix."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        shown = name if isinstance(name, str) and len(name) <= 80 else f"{str(name)[:60]}..."
        raise ValueError(
            f"invalid {what} name {shown!r}: use 1-64 letters, digits, '-', '_' or '.', "
            "not starting with '-' or '.'"
        )
    return name


class Accel(StrEnum):
    AUTO = "auto"
    KVM = "kvm"
    TCG = "tcg"


class DiskBus(StrEnum):
    VIRTIO = "virtio"
    SATA = "sata"
    SCSI = "scsi"


class DiskDevice(StrEnum):
    DISK = "disk"
    CDROM = "cdrom"


class DiskType(StrEnum):
    """What the disk path is (libvirt's ``<disk type=...>``): an image file or a host block
    device. A block device is used only when the domain says so (never by accident)."""

    FILE = "file"
    BLOCK = "block"


class DiskFormat(StrEnum):
    QCOW2 = "qcow2"
    RAW = "raw"


class CacheMode(StrEnum):
    NONE = "none"
    WRITEBACK = "writeback"
    WRITETHROUGH = "writethrough"
    DIRECTSYNC = "directsync"
    UNSAFE = "unsafe"


class NicType(StrEnum):
    USER = "user"
    BRIDGE = "bridge"
    NETWORK = "network"


class NicModel(StrEnum):
    VIRTIO = "virtio"
    E1000 = "e1000"
    E1000E = "e1000e"
    RTL8139 = "rtl8139"


class GraphicsType(StrEnum):
    NONE = "none"
    VNC = "vnc"


class Action(StrEnum):
    """What happens when the guest powers off, reboots or crashes (libvirt's on_*)."""

    DESTROY = "destroy"
    RESTART = "restart"
    PRESERVE = "preserve"


class _Strict(StrictModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


AbsPath = Annotated[str, Field(min_length=1, max_length=4096)]


def _abs(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    if "\x00" in value or "\n" in value:
        raise ValueError(f"{what} contains a NUL or newline character")
    if not PurePosixPath(value).is_absolute():
        raise ValueError(f"{what} must be an absolute path (got {value!r})")
    return value


class Topology(_Strict):
    """CPU topology; sockets * cores * threads must equal max_vcpus."""

    sockets: int = Field(default=1, ge=1, le=MAX_VCPUS)
    cores: int = Field(default=1, ge=1, le=MAX_VCPUS)
    threads: int = Field(default=1, ge=1, le=8)

    @property
    def total(self) -> int:
        return self.sockets * self.cores * self.threads


class Boot(_Strict):
    uefi: bool = False
    kernel: AbsPath | None = None
    initrd: AbsPath | None = None
    cmdline: str = Field(default="", max_length=4096)
    order: list[DiskDevice | str] = Field(default_factory=lambda: ["hd"], max_length=4)

    @field_validator("kernel", "initrd")
    @classmethod
    def _paths(cls, v: str | None) -> str | None:
        return _abs(v, "boot path")

    @field_validator("order")
    @classmethod
    def _order(cls, v: list[str]) -> list[str]:
        for item in v:
            if item not in ("hd", "cdrom", "network"):
                raise ValueError(f"boot order item {item!r} must be one of hd, cdrom, network")
        return v

    @model_validator(mode="after")
    def _initrd_needs_kernel(self) -> Boot:
        if (self.initrd or self.cmdline) and not self.kernel:
            raise ValueError("boot.initrd and boot.cmdline need boot.kernel")
        return self


class Disk(_Strict):
    path: AbsPath
    type: DiskType = DiskType.FILE
    format: DiskFormat | None = None
    device: DiskDevice = DiskDevice.DISK
    bus: DiskBus | None = None
    target: str | None = Field(default=None, pattern=r"^(vd|sd|hd)[a-z]{1,2}$")
    readonly: bool = False
    cache: CacheMode = CacheMode.WRITEBACK  # works on every filesystem (O_DIRECT fails on tmpfs)
    serial: str | None = Field(default=None, max_length=20, pattern=r"^[A-Za-z0-9_.-]+$")

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return _abs(v, "disk path") or v

    @model_validator(mode="after")
    def _defaults(self) -> Disk:
        # Never probe formats: an unspecified format is decided from the name here, explicitly.
        if self.format is None:
            fmt = DiskFormat.QCOW2 if self.path.endswith(".qcow2") else DiskFormat.RAW
            object.__setattr__(self, "format", fmt)
        if self.bus is None:
            bus = DiskBus.SATA if self.device is DiskDevice.CDROM else DiskBus.VIRTIO
            object.__setattr__(self, "bus", bus)
        if self.device is DiskDevice.CDROM:
            object.__setattr__(self, "readonly", True)
            if self.bus is DiskBus.VIRTIO:
                raise ValueError("a cdrom cannot use bus=virtio; use bus=sata or bus=scsi")
        return self


class Nic(_Strict):
    type: NicType = NicType.USER
    source: str | None = Field(default=None, max_length=15)
    model: NicModel = NicModel.VIRTIO
    mac: str | None = None
    hostfwd: list[str] = Field(default_factory=list, max_length=64)  # user mode: port forwards

    @field_validator("hostfwd")
    @classmethod
    def _hostfwd(cls, v: list[str]) -> list[str]:
        from virtkit.model.portfwd import parse_hostfwd

        rules = [parse_hostfwd(r) for r in v]
        keys = [r.split("-", 1)[0] for r in rules]
        if len(keys) != len(set(keys)):
            raise ValueError(f"a host port is forwarded twice (got {rules})")
        return rules

    @field_validator("mac")
    @classmethod
    def _mac(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.lower()
        if not MAC_RE.fullmatch(v):
            raise ValueError(f"invalid MAC address {v!r}: use six hex pairs like 52:54:00:12:34:56")
        if int(v[:2], 16) & 1:
            raise ValueError(f"MAC address {v!r} is multicast; the first octet must be even")
        return v

    @model_validator(mode="after")
    def _source(self) -> Nic:
        if self.type in (NicType.BRIDGE, NicType.NETWORK) and not self.source:
            raise ValueError(f"a {self.type} interface needs source: the {self.type} name")
        if self.type is NicType.USER and self.source:
            raise ValueError("a user-mode interface takes no source")
        if self.hostfwd and self.type is not NicType.USER:
            raise ValueError("hostfwd (port forwards) is for user-mode interfaces only")
        return self


class Graphics(_Strict):
    type: GraphicsType = GraphicsType.NONE
    # An address or host name only: it is spliced into QEMU's -vnc option string.
    # "socket": a Unix socket in the domain's run directory (virt-install's listen=socket),
    # reachable only through the daemon's websocket proxy (virtkit viewer / the web UI).
    listen: str = Field(default="127.0.0.1", pattern=r"^[A-Za-z0-9_.:\[\]-]{1,255}$")
    port: int | None = Field(default=None, ge=5900, le=65535)
    password: str | None = Field(default=None, min_length=1, max_length=8, repr=False)


class Domain(_Strict):
    """A virtual machine definition."""

    name: str
    uuid: str | None = None
    title: str = Field(default="", max_length=256)
    description: str = Field(default="", max_length=4096)
    os_variant: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    # RAM at boot (libvirt <memory>); the balloon target at start (<currentMemory>);
    # the hotplug ceiling and DIMM slots (<maxMemory slots=N>).
    memory_mib: int = Field(default=512, ge=MIN_MEMORY_MIB, le=MAX_MEMORY_MIB)
    current_memory_mib: int | None = Field(default=None, ge=MIN_MEMORY_MIB, le=MAX_MEMORY_MIB)
    max_memory_mib: int | None = Field(default=None, ge=MIN_MEMORY_MIB, le=MAX_MEMORY_MIB)
    memory_slots: int = Field(default=16, ge=1, le=256)
    vcpus: int = Field(default=1, ge=1, le=MAX_VCPUS)
    max_vcpus: int | None = Field(default=None, ge=1, le=MAX_VCPUS)
    topology: Topology | None = None
    accel: Accel = Accel.AUTO
    machine: str = Field(default="q35", pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    cpu_model: str = Field(default="auto", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.,=+-]{0,127}$")
    boot: Boot = Field(default_factory=Boot)
    disks: list[Disk] = Field(default_factory=list, max_length=64)
    nics: list[Nic] = Field(default_factory=list, max_length=32)
    graphics: Graphics = Field(default_factory=Graphics)
    serial: bool = True
    on_poweroff: Action = Action.DESTROY
    on_reboot: Action = Action.RESTART
    on_crash: Action = Action.DESTROY
    emulator: AbsPath | None = None
    # host features (model/hostfeat.py): guest NUMA, host memory binding, pinning, KSM, PCI
    numa: Numa | None = None
    numatune: NumaTune | None = None
    cputune: CpuTune | None = None
    mem_merge: bool = True
    hostdevs: list[Hostdev] = Field(default_factory=list, max_length=16)
    # raw QEMU arguments appended to the command line: admin only, taints the domain
    qemu_args: list[str] = Field(default_factory=list, max_length=64)

    @field_validator("qemu_args")
    @classmethod
    def _qemu_args(cls, v: list[str]) -> list[str]:
        for a in v:
            if "\0" in a or len(a) > 4096:
                raise ValueError("a qemu_args entry holds a NUL byte or is over 4096 characters")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v)

    @field_validator("uuid")
    @classmethod
    def _uuid(cls, v: str | None) -> str | None:
        if v is None:
            return None
        try:
            return str(uuidlib.UUID(v))
        except ValueError:
            raise ValueError(f"invalid uuid {v!r}") from None

    @field_validator("emulator")
    @classmethod
    def _emulator(cls, v: str | None) -> str | None:
        return _abs(v, "emulator")

    @model_validator(mode="after")
    def _limits(self) -> Domain:
        if self.max_vcpus is not None and self.max_vcpus < self.vcpus:
            raise ValueError(f"max_vcpus ({self.max_vcpus}) is below vcpus ({self.vcpus})")
        if self.max_memory_mib is not None and self.max_memory_mib < self.memory_mib:
            raise ValueError(
                f"max_memory_mib ({self.max_memory_mib}) is below memory_mib ({self.memory_mib})"
            )
        if self.current_memory_mib is not None and self.current_memory_mib > self.memory_mib:
            raise ValueError(
                f"current_memory_mib ({self.current_memory_mib}) is above memory_mib "
                f"({self.memory_mib}); the balloon can only take memory away"
            )
        if self.topology is not None and self.topology.total != self.effective_max_vcpus:
            t = self.topology
            raise ValueError(
                f"topology {t.sockets} sockets x {t.cores} cores x {t.threads} threads = "
                f"{t.total} CPUs, but max_vcpus is {self.effective_max_vcpus}; make them equal"
            )
        targets = [d.target for d in self.disks if d.target]
        if len(targets) != len(set(targets)):
            raise ValueError(f"disk targets must be unique (got {targets})")
        macs = [n.mac for n in self.nics if n.mac]
        if len(macs) != len(set(macs)):
            raise ValueError(f"MAC addresses must be unique within a domain (got {macs})")
        check_domain(self)
        check_microvm(self)
        return self

    @property
    def effective_max_vcpus(self) -> int:
        return self.max_vcpus or self.vcpus


def _target_prefix(disk: Disk) -> str:
    return "vd" if disk.bus is DiskBus.VIRTIO else "sd"


def _letters(i: int) -> str:
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(ord("a") + r) + out
    return out


def disk_targets(disks: list[Disk]) -> list[str]:
    """Each disk's target: its own, or the first free vdX (virtio) / sdX (others)."""
    used = {d.target for d in disks if d.target}
    counters: dict[str, int] = {}
    out = []
    for disk in disks:
        target = disk.target
        if target is None:
            prefix = _target_prefix(disk)
            n = counters.get(prefix, 0)
            while f"{prefix}{_letters(n)}" in used:
                n += 1
            target = f"{prefix}{_letters(n)}"
            counters[prefix] = n + 1
            used.add(target)
        out.append(target)
    return out


def normalize(
    dom: Domain,
    *,
    new_uuid: Callable[[], str],
    new_mac: Callable[[], str],
) -> Domain:
    """Fill what the user left out: uuid, disk targets, MAC addresses.

    The uuid and MAC sources are injected so tests are deterministic.
    """
    disks = [
        d if d.target == t else d.model_copy(update={"target": t})
        for d, t in zip(dom.disks, disk_targets(dom.disks), strict=True)
    ]
    macs = {n.mac for n in dom.nics if n.mac}
    nics = []
    for nic in dom.nics:
        if nic.mac is None:
            mac = new_mac()
            while mac in macs:
                mac = new_mac()
            macs.add(mac)
            nic = nic.model_copy(update={"mac": mac})
        nics.append(nic)
    update: dict[str, Any] = {"disks": disks, "nics": nics}
    if dom.uuid is None:
        update["uuid"] = new_uuid()
    return dom.model_copy(update=update)
