"""Domain -> QEMU command line. A PURE function: no os, env, time or randomness.

``build_argv(domain, caps, paths, accel)`` is golden-tested
(tests/golden/<case>.toml -> <case>.args). The result is saved in the runtime
record, so what QEMU was started with is always known.

QEMU is started paused (``-S``) with ``-no-shutdown``: the supervisor attaches
to QMP and the event stream before the first guest instruction runs, and a guest
power-off leaves QEMU stopped so the daemon decides what happens next (destroy,
or the fake reboot that ``virtkit reboot`` asks for), as libvirt does.
"""

from __future__ import annotations

from dataclasses import dataclass

from virtkit.errors import ConfigError
from virtkit.model.domain import (
    Accel,
    Action,
    DiskBus,
    DiskDevice,
    Domain,
    GraphicsType,
    Nic,
)
from virtkit.model.profile import MICROVM, is_microvm
from virtkit.qemu.argv_host import hostdev_args, machine_props, numa_args
from virtkit.qemu.argv_micro import MACHINE_PROPS, kernel_cmdline, to_mmio
from virtkit.qemu.caps import Caps
from virtkit.qemu.devices import NIC_DEVICE, disk_records, nic_records

__all__ = ["NIC_DEVICE", "RunPaths", "build_argv", "opts", "tap_name"]

HOTPLUG_PORTS = 4
SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"


@dataclass(frozen=True)
class RunPaths:
    """Where one running domain's sockets and files live."""

    qmp: str
    serial: str
    pidfile: str
    console_log: str
    firmware_code: str | None = None  # UEFI: OVMF code (read-only) ...
    nvram: str | None = None  # ... and this domain's own copy of the variable store


def opts(*parts: str, **kv: str | int | bool) -> str:
    """QEMU's comma-separated option syntax; commas in values are doubled."""
    items = list(parts)
    for key, value in kv.items():
        if isinstance(value, bool):
            value = "on" if value else "off"
        key = key.rstrip("_").replace("_", "-")  # if_ -> if (a Python keyword)
        items.append(f"{key}={str(value).replace(',', ',,')}")
    return ",".join(items)


def _machine(dom: Domain, caps: Caps, accel: Accel) -> list[str]:
    info = caps.resolve_machine(dom.machine)
    if info is None:
        known = ", ".join([*sorted(caps.aliases), "..."])
        raise ConfigError(
            f"machine type {dom.machine!r} is not supported by QEMU {caps.version} "
            f"({caps.binary}); try one of: {known}"
        )
    if dom.effective_max_vcpus > info.cpu_max:
        raise ConfigError(
            f"{dom.effective_max_vcpus} vCPUs exceed machine {info.name}'s limit of {info.cpu_max}"
        )
    cpu = dom.cpu_model
    if cpu in ("auto", "host-passthrough"):
        cpu = "host" if accel is Accel.KVM else "max"
    elif cpu == "host" and accel is not Accel.KVM:
        raise ConfigError("cpu model 'host' needs KVM; use cpu_model: max (or auto) under TCG")
    elif cpu not in caps.cpu_models and cpu not in ("host", "max"):
        raise ConfigError(f"CPU model {cpu!r} is unknown to QEMU {caps.version}")
    micro = MACHINE_PROPS if info.name == MICROVM else {}
    machine = opts(info.name, accel=accel.value, **micro, **machine_props(dom))
    smp = opts(str(dom.vcpus), maxcpus=dom.effective_max_vcpus)
    if dom.topology is not None:
        t = dom.topology
        smp += "," + opts(sockets=t.sockets, cores=t.cores, threads=t.threads)
    mem = opts(size=f"{dom.memory_mib}M")
    if dom.max_memory_mib and dom.max_memory_mib > dom.memory_mib:
        mem = opts(size=f"{dom.memory_mib}M", slots=dom.memory_slots,
                   maxmem=f"{dom.max_memory_mib}M")  # fmt: skip
    return ["-machine", machine, "-cpu", cpu, "-m", mem, "-smp", smp]


def _boot_index(dom: Domain) -> dict[str, int]:
    order = [str(o) for o in dom.boot.order]
    out: dict[str, int] = {}
    n = 1
    for kind in order:
        for d in dom.disks:
            want = "cdrom" if d.device is DiskDevice.CDROM else "hd"
            if want == kind and d.target and d.target not in out:
                out[d.target] = n
                n += 1
    return out


def tap_name(dom: Domain, i: int) -> str:
    """The host tap device of the domain's i-th NIC (<= 15 characters, stable)."""
    return f"vk{(dom.uuid or dom.name).replace('-', '')[:8]}n{i}"


def _nic(dom: Domain, i: int, nic: Nic) -> list[str]:
    netdev, dev = nic_records(i, nic, tap_name(dom, i))
    return [*netdev.argv(), *dev.argv()]


def build_argv(
    dom: Domain, caps: Caps, paths: RunPaths, accel: Accel, incoming_fd: int | None = None,
    incoming_defer: bool = False, tsc_khz: int | None = None,
) -> list[str]:  # fmt: skip
    """The complete QEMU command line for ``dom`` under ``accel`` (kvm or tcg).

    ``incoming_fd``: load the guest's state from this (inherited) file descriptor
    instead of booting it (restore from a save file). ``incoming_defer``: wait for a
    live migration (``migrate-incoming`` over QMP says where to listen). ``tsc_khz``:
    the host's TSC frequency (the fast profile passes it to a TCG guest, argv_micro.py).
    """
    if accel is Accel.AUTO:
        raise ValueError("build_argv needs a resolved accelerator (kvm or tcg)")
    argv = [
        caps.binary,
        "-name", opts(f"guest={dom.name}", debug_threads=True),
        "-uuid", dom.uuid or "",
        "-nodefaults", "-no-user-config",
        *(["-sandbox", SANDBOX] if caps.sandbox else []),
        "-msg", "timestamp=on",
        "-S", "-no-shutdown",
        "-pidfile", paths.pidfile,
        "-chardev", opts("socket", id="monitor", path=paths.qmp, server=True, wait=False),
        "-mon", "chardev=monitor,mode=control",
        "-rtc", "base=utc",
        "-boot", "strict=on",
    ]  # fmt: skip
    argv += _machine(dom, caps, accel)
    argv += numa_args(dom)
    if dom.boot.uefi:
        if not (paths.firmware_code and paths.nvram):
            raise ConfigError("UEFI boot needs OVMF: install the 'ovmf' package")
        argv += [
            "-drive", opts(if_="pflash", format="raw", unit=0, readonly=True,
                           file=paths.firmware_code),
            "-drive", opts(if_="pflash", format="raw", unit=1, file=paths.nvram),
        ]  # fmt: skip
    if dom.on_reboot is Action.DESTROY:
        argv += ["-no-reboot"]
    if dom.boot.kernel:
        argv += ["-kernel", dom.boot.kernel]
        if dom.boot.initrd:
            argv += ["-initrd", dom.boot.initrd]
        cmdline = dom.boot.cmdline
        if is_microvm(dom):
            cmdline = kernel_cmdline(cmdline, accel, tsc_khz)
        if cmdline:
            argv += ["-append", cmdline]
    if dom.serial:
        argv += [
            "-chardev",
            opts("socket", id="serial0", path=paths.serial, server=True, wait=False,
                 logfile=paths.console_log, logappend=True),
            "-device", "isa-serial,chardev=serial0,id=serial0",
        ]  # fmt: skip
    if any(d.bus is DiskBus.SCSI for d in dom.disks):
        argv += ["-device", "virtio-scsi-pci,id=scsi0"]
    boot_index = _boot_index(dom)
    sata = 0
    for i, disk in enumerate(dom.disks):
        nodes, dev = disk_records(sata if disk.bus is DiskBus.SATA else i, disk,
                                  boot_index.get(disk.target or ""))  # fmt: skip
        sata += disk.bus is DiskBus.SATA
        argv += [*(a for n in nodes for a in n.argv()), *dev.argv()]
    for i, nic in enumerate(dom.nics):
        argv += _nic(dom, i, nic)
    argv += hostdev_args(dom)
    if dom.graphics.type is GraphicsType.VNC:
        port = dom.graphics.port
        display = f"{dom.graphics.listen}:{port - 5900}" if port else f"{dom.graphics.listen}:0"
        vnc = f"{display},to=99"
        if dom.graphics.listen == "socket":  # beside the QMP socket: only the daemon's proxy
            vnc = "unix:" + paths.qmp.rsplit("/", 1)[0] + "/vnc.sock"
        if dom.graphics.password:
            vnc += ",password=on"  # the secret itself goes over QMP, never on the command line
        argv += ["-vga", "std", "-display", "none", "-vnc", vnc]
    else:
        argv += ["-display", "none", "-vga", "none"]
    machine = caps.resolve_machine(dom.machine)
    if machine is not None and machine.name.startswith("pc-q35"):
        # q35's root bus takes no hot-plugged devices: leave empty PCIe root ports for
        # attach-disk / attach-interface (as virt-install does).
        for i in range(HOTPLUG_PORTS):
            argv += ["-device", opts("pcie-root-port", id=f"hp{i}", chassis=i + 1)]
    argv += ["-device", "virtio-balloon-pci,id=balloon0,free-page-reporting=on"]
    argv += ["-device", "virtio-rng-pci,id=rng0"]
    argv += dom.qemu_args  # raw passthrough (admin only; the domain shows as tainted)
    if incoming_fd is not None:
        argv += ["-incoming", f"fd:{incoming_fd}"]
    elif incoming_defer:
        argv += ["-incoming", "defer"]
    return to_mmio(argv) if is_microvm(dom) else argv
