"""QEMU devices and backends as data, and the one renderer to argv / QMP arguments.

A ``Device`` (``-device`` / ``device_add``) or ``Backend`` (``-blockdev`` /
``blockdev-add``, ``-netdev`` / ``netdev_add``) holds its properties in QEMU's order;
``argv()`` renders the command-line option, ``qmp()`` the QMP argument dict. The disk and
NIC records come from ``disk_records`` / ``nic_records``, used by qemu/argv.py and by
hot plug alike. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from virtkit.model.domain import Disk, DiskBus, DiskDevice, DiskType, Nic, NicModel, NicType
from virtkit.qemu import ids

Value = str | int | bool | Mapping[str, Any]

NIC_DEVICE = {
    NicModel.VIRTIO: "virtio-net-pci",
    NicModel.E1000: "e1000",
    NicModel.E1000E: "e1000e",
    NicModel.RTL8139: "rtl8139",
}


def _flat(key: str, value: Value) -> list[str]:
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in _flat(f"{key}.{k}", v)]
    if isinstance(value, bool):
        value = "on" if value else "off"
    return [f"{key}={str(value).replace(',', ',,')}"]


@dataclass(frozen=True)
class Device:
    driver: str
    props: Mapping[str, Value] = field(default_factory=dict)  # "id" included, QEMU's order

    @property
    def id(self) -> str:
        return str(self.props.get("id", ""))

    def with_props(self, **extra: Value) -> Device:
        return Device(self.driver, {**self.props, **extra})

    def argv(self) -> list[str]:
        return ["-device", ",".join([self.driver, *(p for k, v in self.props.items()
                                                     for p in _flat(k, v))])]  # fmt: skip

    def qmp(self) -> dict[str, Any]:
        return {"driver": self.driver, **self.props}


@dataclass(frozen=True)
class Backend:
    kind: str  # "blockdev" | "netdev"
    props: Mapping[str, Value]
    positional: str = ""  # -netdev's type comes first, without a key
    repeated: tuple[tuple[str, str], ...] = ()  # hostfwd=..., verbatim (checked by the model)

    @property
    def id(self) -> str:
        return str(self.props.get("node-name" if self.kind == "blockdev" else "id", ""))

    def argv(self) -> list[str]:
        parts = [self.positional] if self.positional else []
        parts += [p for k, v in self.props.items() for p in _flat(k, v)]
        parts += [f"{k}={v}" for k, v in self.repeated]
        return [f"-{self.kind}", ",".join(parts)]

    def qmp(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.props)
        if self.positional:
            out = {"type": self.positional, **out}
        for k, v in self.repeated:
            out.setdefault(k, []).append({"str": v})
        return out


def disk_records(i: int, disk: Disk, bootindex: int | None = None) -> tuple[list[Backend], Device]:
    """The two block nodes (protocol, format) and the device of disk ``i``."""
    node, filenode = ids.disk_node(disk.target), ids.disk_file_node(disk.target)
    fmt = disk.format.value if disk.format else "raw"
    cache = {"direct": disk.cache.value in ("none", "directsync"),
             "no-flush": disk.cache.value == "unsafe"}  # fmt: skip
    proto = Backend("blockdev", {
        "driver": "host_device" if disk.type is DiskType.BLOCK else "file",
        "filename": disk.path, "node-name": filenode, "read-only": disk.readonly,
        "cache": cache})  # fmt: skip
    fmtnode = Backend("blockdev", {"driver": fmt, "file": filenode, "node-name": node,
                                   "read-only": disk.readonly, "cache": cache})  # fmt: skip
    props: dict[str, Value] = {}
    if disk.bus is DiskBus.VIRTIO:
        driver = "virtio-blk-pci"
    elif disk.bus is DiskBus.SCSI:
        driver = "scsi-cd" if disk.device is DiskDevice.CDROM else "scsi-hd"
        props["bus"] = "scsi0.0"
    else:
        driver = "ide-cd" if disk.device is DiskDevice.CDROM else "ide-hd"
        props["bus"] = f"ide.{i}"
    props |= {"drive": node, "id": ids.disk_device(i, disk.target)}
    if disk.cache.value in ("writethrough", "directsync") and disk.device is DiskDevice.DISK:
        props["write-cache"] = False  # the guest sees no volatile cache: every write is durable
    if disk.serial:
        props["serial"] = disk.serial
    if bootindex is not None:
        props["bootindex"] = bootindex
    return [proto, fmtnode], Device(driver, props)


def nic_records(i: int, nic: Nic, tap: str) -> tuple[Backend, Device]:
    """NIC ``i``'s netdev (``tap``: its host tap, for a tapped NIC) and device."""
    net_id = ids.netdev(i)
    if nic.type is NicType.USER:
        netdev = Backend("netdev", {"id": net_id}, "user",
                         tuple(("hostfwd", r) for r in nic.hostfwd))  # fmt: skip
    else:
        # network/taps.py creates the tap and enslaves it to the bridge before QEMU starts.
        netdev = Backend("netdev", {"id": net_id, "ifname": tap, "script": "no",
                                    "downscript": "no"}, "tap")  # fmt: skip
    dev = Device(NIC_DEVICE[nic.model], {"netdev": net_id, "id": ids.nic_device(i),
                                         "mac": nic.mac or ""})  # fmt: skip
    return netdev, dev
