"""The fast boot profile's QEMU specifics (machine ``microvm``). Pure functions.

microvm has no PCI bus: every virtio device is the same device on the MMIO transport
(QEMU names them ``virtio-X-device`` instead of ``virtio-X-pci``); the firmware is qboot
(QEMU's default for microvm) and the kernel is entered through PVH, so no option ROMs
are needed. The guest enumerates the MMIO devices from microvm's ACPI tables (it needs
the ``virtio_mmio`` module).

Under TCG microvm offers the guest no HPET or ACPI PM timer to calibrate the TSC
against, and the PIT calibration races with a busy host: the kernel can then stall in
early boot. The TSC a TCG guest reads is the host's, so the host's TSC frequency is
passed on the kernel command line (``tsc_early_khz=``) and calibration is skipped.
"""

from __future__ import annotations

from virtkit.model.domain import Accel

MACHINE_PROPS: dict[str, str | int | bool] = {
    "x_option_roms": False,  # PVH entry: no linuxboot option ROM
    "rtc": True,  # the guest's wall clock at boot
    "isa_serial": False,  # virtkit adds its own isa-serial (chardev with a console log)
}


def mmio_device(device: str) -> str:
    """``virtio-blk-pci,drive=...`` -> ``virtio-blk-device,drive=...`` (other devices kept)."""
    driver, sep, rest = device.partition(",")
    if driver.startswith("virtio-") and driver.endswith("-pci"):
        driver = driver[: -len("-pci")] + "-device"
    return driver + sep + rest


def to_mmio(argv: list[str]) -> list[str]:
    """Every ``-device virtio-*-pci`` of ``argv`` on the MMIO transport."""
    out = list(argv)
    for i in range(1, len(out)):
        if out[i - 1] == "-device":
            out[i] = mmio_device(out[i])
    return out


def kernel_cmdline(cmdline: str, accel: Accel, tsc_khz: int | None) -> str:
    """The guest kernel command line on microvm (see the module docstring)."""
    if accel is Accel.TCG and tsc_khz and "tsc_early_khz=" not in cmdline:
        return f"{cmdline} tsc_early_khz={tsc_khz}".strip()
    return cmdline
