"""PCI devices, IOMMU groups and SR-IOV from sysfs; binding devices to vfio-pci.

Reads go through ``HostRoot`` (tests build a fake tree); writes go through an injected
``write(path, text)`` (default: a plain sysfs write) so a test can play the kernel's
part (moving the ``driver`` link when ``bind``/``unbind`` are written).

- detach (virsh nodedev-detach): ``driver_override`` = vfio-pci, ``unbind`` from the
  current driver, ``bind`` to vfio-pci.
- reattach: clear ``driver_override``, unbind from vfio-pci, write the address to
  ``/sys/bus/pci/drivers_probe`` (the kernel picks the device's own driver again).
- SR-IOV: ``sriov_numvfs`` (0 first when changing a non-zero count, as the kernel wants).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from virtkit.errors import ConfigError, HostError, NotFoundError, StateError
from virtkit.host.facts import HostRoot
from virtkit.model.hostfeat import nodedev_name, normalize_pci

DEVICES = "/sys/bus/pci/devices"
DRIVERS = "/sys/bus/pci/drivers"
GROUPS = "/sys/kernel/iommu_groups"
VFIO = "vfio-pci"
PCI_DIR_RE = r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]"
CLASS_BRIDGE = 0x06  # PCI class 06: host/PCI/ISA bridges and root ports

Writer = Callable[[Path, str], None]


def sysfs_write(path: Path, text: str) -> None:
    """One write(2) of ``text``, as the kernel's sysfs attributes expect."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


@dataclass(frozen=True)
class PciDevice:
    address: str  # 0000:03:00.0
    path: str  # the device's real /sys/devices/... path
    vendor: int
    device: int
    subsystem_vendor: int
    subsystem_device: int
    class_code: int  # 0x020000 (Ethernet controller)
    driver: str | None
    driver_override: str | None
    iommu_group: int | None
    numa_node: int
    sriov_totalvfs: int | None
    sriov_numvfs: int | None
    physfn: str | None
    virtfns: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return nodedev_name(self.address)

    @property
    def is_bridge(self) -> bool:
        return self.class_code >> 16 == CLASS_BRIDGE

    @property
    def parts(self) -> tuple[int, int, int, int]:
        """(domain, bus, slot, function)."""
        dom, bus, rest = self.address.split(":")
        slot, fn = rest.split(".")
        return int(dom, 16), int(bus, 16), int(slot, 16), int(fn, 16)


def _hex(text: str | None) -> int:
    try:
        return int((text or "0").strip(), 16)
    except ValueError:
        return 0


def _opt_int(text: str | None) -> int | None:
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def _numa_node(text: str | None) -> int:
    n = _opt_int(text)
    return -1 if n is None else n


def _link_name(root: HostRoot, absolute: str) -> str | None:
    try:
        return os.path.basename(os.readlink(root.path(absolute)))
    except OSError:
        return None


def _real(root: HostRoot, absolute: str) -> str:
    real = os.path.realpath(root.path(absolute))
    base = os.path.realpath(root.root)
    return "/" + os.path.relpath(real, base) if base != "/" else real


def address_of(text: str) -> str:
    """A user's device name (nodedev name or PCI address) -> 0000:bb:ss.f (ConfigError)."""
    try:
        return normalize_pci(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def read_device(root: HostRoot, address: str) -> PciDevice:
    base = f"{DEVICES}/{address}"
    if not root.path(base).exists():
        raise NotFoundError(
            f"no PCI device {address} ({nodedev_name(address)}) on this host; "
            "`virtkit nodedev-list --cap pci` lists them"
        )
    group = _link_name(root, f"{base}/iommu_group")
    override = (root.read_text(f"{base}/driver_override") or "").strip()
    return PciDevice(
        address=address,
        path=_real(root, base),
        vendor=_hex(root.read_text(f"{base}/vendor")),
        device=_hex(root.read_text(f"{base}/device")),
        subsystem_vendor=_hex(root.read_text(f"{base}/subsystem_vendor")),
        subsystem_device=_hex(root.read_text(f"{base}/subsystem_device")),
        class_code=_hex(root.read_text(f"{base}/class")),
        driver=_link_name(root, f"{base}/driver"),
        driver_override=None if override in ("", "(null)") else override,
        iommu_group=int(group) if group and group.isdigit() else None,
        numa_node=_numa_node(root.read_text(f"{base}/numa_node")),
        sriov_totalvfs=_opt_int(root.read_text(f"{base}/sriov_totalvfs")),
        sriov_numvfs=_opt_int(root.read_text(f"{base}/sriov_numvfs")),
        physfn=_link_name(root, f"{base}/physfn"),
        virtfns=[
            n
            for _, n in sorted(
                (int(e[6:]), _link_name(root, f"{base}/{e}") or "")
                for e in root.listdir(base)
                if re.fullmatch(r"virtfn\d+", e)
            )
        ],
    )


def list_devices(root: HostRoot) -> list[PciDevice]:
    return [read_device(root, a) for a in root.listdir(DEVICES) if re.match(r"^[0-9a-f]{4}:", a)]


def group_members(root: HostRoot, group: int) -> list[str]:
    return root.listdir(f"{GROUPS}/{group}/devices")


def vfio_unready(root: HostRoot, address: str) -> list[str]:
    """The endpoint devices of ``address``'s IOMMU group not bound to vfio-pci (bridges
    are exempt, as in libvirt). Empty: the group can be given to a guest."""
    dev = read_device(root, address)
    if dev.iommu_group is None:
        return [address]
    out = []
    for member in group_members(root, dev.iommu_group):
        m = read_device(root, member)
        if not m.is_bridge and m.driver != VFIO:
            out.append(f"{m.name} ({m.address}, driver {m.driver or 'none'})")
    return out


def _w(write: Writer, root: HostRoot, absolute: str, text: str) -> None:
    try:
        write(root.path(absolute), text)
    except PermissionError:
        raise HostError(
            f"cannot write {absolute}: permission denied; binding PCI devices needs the "
            "system daemon (root)"
        ) from None
    except OSError as exc:
        raise HostError(f"writing {text.strip()!r} to {absolute} failed: {exc.strerror}") from None


def detach(root: HostRoot, address: str, write: Writer = sysfs_write) -> PciDevice:
    """Bind ``address`` to vfio-pci (idempotent)."""
    dev = read_device(root, address)
    if dev.driver == VFIO:
        return dev
    if dev.iommu_group is None:
        raise HostError(
            f"PCI device {address} is in no IOMMU group: the IOMMU is off. Enable VT-d/AMD-Vi "
            "in the firmware and boot with intel_iommu=on (or amd_iommu=on)"
        )
    if dev.is_bridge:
        raise ConfigError(f"{dev.name} is a PCI bridge; bridges cannot be assigned to guests")
    if not root.path(f"{DRIVERS}/{VFIO}").exists():
        raise HostError("the vfio-pci driver is not loaded: modprobe vfio-pci, then try again")
    _w(write, root, f"{DEVICES}/{address}/driver_override", VFIO)
    if dev.driver is not None:
        _w(write, root, f"{DRIVERS}/{dev.driver}/unbind", address)
    _w(write, root, f"{DRIVERS}/{VFIO}/bind", address)
    return read_device(root, address)


def reattach(root: HostRoot, address: str, write: Writer = sysfs_write) -> PciDevice:
    """Give ``address`` back to its host driver."""
    dev = read_device(root, address)
    _w(write, root, f"{DEVICES}/{address}/driver_override", "\n")
    if dev.driver == VFIO:
        _w(write, root, f"{DRIVERS}/{VFIO}/unbind", address)
    if dev.driver in (None, VFIO):
        _w(write, root, "/sys/bus/pci/drivers_probe", address)
    return read_device(root, address)


def set_numvfs(root: HostRoot, address: str, count: int, write: Writer = sysfs_write) -> PciDevice:
    """Create (or remove) SR-IOV virtual functions of a physical function."""
    dev = read_device(root, address)
    if dev.sriov_totalvfs is None:
        raise ConfigError(f"{dev.name} does not support SR-IOV (it has no sriov_totalvfs)")
    if not 0 <= count <= dev.sriov_totalvfs:
        raise ConfigError(
            f"{dev.name} supports 0 to {dev.sriov_totalvfs} virtual functions (asked for {count})"
        )
    if dev.sriov_numvfs == count:
        return dev
    if dev.driver is None:
        raise StateError(
            f"{dev.name} has no driver: the physical function's driver creates the VFs; "
            f"`virtkit nodedev-reattach {dev.name}` first",
            current="no driver",
            required="bound to its host driver",
        )
    path = f"{DEVICES}/{address}/sriov_numvfs"
    if dev.sriov_numvfs:
        _w(write, root, path, "0")
    _w(write, root, path, str(count))
    return read_device(root, address)
