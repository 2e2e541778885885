"""The fast boot profile: QEMU's ``microvm`` machine. Pure rules, no I/O.

``machine: microvm`` (``virtkit install --boot-profile fast`` or ``--machine microvm``)
boots an uncompressed ELF kernel (vmlinux) straight through its PVH entry point with
qboot, no PCI bus, no legacy devices and virtio over MMIO. The tiny guest reaches init
in about half the time of the q35 default. What it gives up (checked here, so a domain
that cannot work is refused at define time with the reason):

- direct kernel boot only (no firmware boot from a disk or ISO, no UEFI);
- virtio disks and NICs only (no SATA/SCSI, no cdrom), no graphical console;
- no hot plug of any kind (no PCI bus, no DIMM slots, no vCPU hot plug);
- no PCI passthrough and no guest NUMA cells.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from virtkit.model.domain import Domain

MICROVM = "microvm"
PROFILES = {"default": None, "fast": MICROVM}  # --boot-profile NAME -> machine type


def is_microvm(dom: Domain) -> bool:
    return dom.machine == MICROVM


def check_microvm(dom: Domain) -> None:
    """Raise ValueError naming what a microvm (fast profile) domain cannot have."""
    if not is_microvm(dom):
        return
    fix = "; use machine q35 (the default profile) for that"
    if not dom.boot.kernel:
        raise ValueError(
            "the fast boot profile (machine microvm) boots a kernel directly: set boot.kernel "
            "(an uncompressed vmlinux) and boot.initrd" + fix.replace("that", "firmware boot")
        )
    if dom.boot.uefi:
        raise ValueError("the fast boot profile (machine microvm) has no UEFI firmware" + fix)
    for disk in dom.disks:
        if disk.bus is not None and disk.bus.value != "virtio":
            raise ValueError(
                f"disk {disk.target or disk.path}: the fast boot profile (machine microvm) "
                "has virtio disks only (no cdrom, sata or scsi)" + fix
            )
    for nic in dom.nics:
        if nic.model.value != "virtio":
            raise ValueError(
                f"NIC model {nic.model.value}: the fast boot profile (machine microvm) has "
                "virtio NICs only" + fix
            )
    if dom.graphics.type.value != "none":
        raise ValueError("the fast boot profile (machine microvm) has no graphical console" + fix)
    if dom.effective_max_vcpus != dom.vcpus or (
        dom.max_memory_mib is not None and dom.max_memory_mib > dom.memory_mib
    ):
        raise ValueError(
            "the fast boot profile (machine microvm) cannot hot plug vCPUs or memory: "
            "drop max_vcpus / max_memory_mib" + fix
        )
    if dom.hostdevs:
        raise ValueError(
            "the fast boot profile (machine microvm) has no PCI bus for hostdevs" + fix
        )
    if dom.numa is not None:
        raise ValueError("the fast boot profile (machine microvm) has no guest NUMA cells" + fix)
