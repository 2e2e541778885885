"""libvirt domain XML <-> ``Domain``.

``domain_to_xml`` writes what ``virsh dumpxml`` would show for the guest virtkit
runs (never the VNC password, as libvirt without --security-info).
``domain_from_xml`` (in libvirt_xml_read) reads libvirt XML safely (no DTDs,
no entities, at most 1 MiB) and maps the subset virtkit supports. An element
or attribute it cannot honour is a ConfigError naming it by path; the harmless
things libvirt always writes are handled on purpose:

=====================================================  =================================
XML                                                    virtkit
=====================================================  =================================
domain/@type kvm | qemu                                accel kvm | tcg (``auto`` is kept
                                                       in virtkit metadata)
name, uuid, title, description                         mapped
metadata/libosinfo:libosinfo/os/@id                    os_variant (known ids only)
metadata/virtkit:domain/@accel,@cpu,@os-variant,...    virtkit's own values, mapped
other metadata                                         ignored (application-private)
memory, currentMemory, maxMemory/@slots                memory_mib, current_memory_mib,
                                                       max_memory_mib, memory_slots
vcpu (+@current, @placement=static|auto)               vcpus, max_vcpus
cpu/@mode host-passthrough|host-model|maximum|custom   cpu_model (host-model is taken
                                                       as host-passthrough)
cpu/model, cpu/topology (dies=1, clusters=1)           cpu_model, topology
os/type (hvm, x86_64, machine), os/boot/@dev           machine, boot.order
os/kernel, initrd, cmdline                             boot.kernel/initrd/cmdline
os/@firmware=efi, os/loader type=pflash, os/nvram      boot.uefi (virtkit picks OVMF and
                                                       keeps its own NVRAM)
os/bootmenu, features acpi/apic/pae/vmport(off)        ignored (always on / no effect)
clock offset=utc with rtc/pit/hpet timers, pm          ignored (virtkit's clock is UTC)
resource/partition, seclabel type=none                 ignored
on_poweroff, on_reboot, on_crash                       mapped (destroy/restart/preserve)
devices/emulator                                       emulator
disk type=file|block device=disk|cdrom                 disks (bus ide is taken as sata)
interface type=user|bridge|network                     nics (user: portForward = hostfwd)
serial/console type=pty (target serial)                serial = True
graphics type=vnc                                      graphics (listen, port, passwd)
video model none|vga                                   ignored (VGA comes with VNC)
memballoon virtio|none, rng virtio                     ignored (virtkit always adds them)
controller usb|pci|sata|ide|scsi|virtio-serial         ignored (virtkit adds what it needs)
input tablet|mouse|keyboard (ps2/usb)                  ignored
channel target virtio org.qemu.guest_agent.0           ignored (the agent channel)
address, alias, boot-unrelated live-state attributes   ignored (virtkit assigns them)
=====================================================  =================================
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from virtkit.formats import osinfo
from virtkit.formats.libvirt_xml_node import LIBOSINFO_NS, VIRTKIT_NS
from virtkit.formats.libvirt_xml_read import read_domain
from virtkit.formats.libvirt_xml_tune import write_hostdevs, write_numa, write_tuning
from virtkit.model.domain import Accel, DiskType, Domain, GraphicsType, NicType, disk_targets

__all__ = ["LIBOSINFO_NS", "VIRTKIT_NS", "domain_from_xml", "domain_to_xml"]

KIB = 1024


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def _metadata(root: ET.Element, dom: Domain) -> None:
    info = osinfo.lookup(dom.os_variant) if dom.os_variant in osinfo.names() else None
    own: dict[str, str] = {}
    if dom.accel is Accel.AUTO:
        own["accel"] = "auto"
    if dom.cpu_model == "host":
        own["cpu"] = dom.cpu_model
    if dom.os_variant and info is None:
        own["os-variant"] = dom.os_variant
    if dom.max_memory_mib is None and dom.memory_slots != 16:
        own["memory-slots"] = str(dom.memory_slots)
    if info is None and not own:
        return
    meta = _sub(root, "metadata")
    if info is not None:
        lo = _sub(meta, "libosinfo:libosinfo", **{"xmlns:libosinfo": LIBOSINFO_NS})
        _sub(lo, "libosinfo:os", id=info.id)
    if own:
        _sub(meta, "virtkit:domain", **{"xmlns:virtkit": VIRTKIT_NS}, **own)


def _cpu(root: ET.Element, dom: Domain) -> None:
    model = dom.cpu_model
    if model == "auto" and dom.topology is None and dom.numa is None:
        return
    cpu = _sub(root, "cpu")
    if model in ("host", "host-passthrough"):
        cpu.attrib.update(mode="host-passthrough", check="none", migratable="on")
    elif model == "max":
        cpu.attrib.update(mode="maximum", check="none", migratable="on")
    elif model != "auto":
        cpu.attrib.update(mode="custom", match="exact", check="none")
        _sub(cpu, "model", model, fallback="forbid")
    if dom.topology is not None:
        t = dom.topology
        _sub(
            cpu,
            "topology",
            sockets=str(t.sockets),
            dies="1",
            cores=str(t.cores),
            threads=str(t.threads),
        )
    write_numa(cpu, dom)


def _os(root: ET.Element, dom: Domain) -> None:
    os_el = _sub(root, "os")
    if dom.boot.uefi:
        os_el.set("firmware", "efi")
    _sub(os_el, "type", "hvm", arch="x86_64", machine=dom.machine)
    if dom.boot.kernel:
        _sub(os_el, "kernel", dom.boot.kernel)
        if dom.boot.initrd:
            _sub(os_el, "initrd", dom.boot.initrd)
        if dom.boot.cmdline:
            _sub(os_el, "cmdline", dom.boot.cmdline)
    for dev in dom.boot.order:
        _sub(os_el, "boot", dev=str(dev))


def _devices(root: ET.Element, dom: Domain) -> None:
    devs = _sub(root, "devices")
    if dom.emulator:
        _sub(devs, "emulator", dom.emulator)
    for disk, target in zip(dom.disks, disk_targets(dom.disks), strict=True):
        el = _sub(devs, "disk", type=disk.type.value, device=disk.device.value)
        fmt = disk.format.value if disk.format else "raw"
        _sub(el, "driver", name="qemu", type=fmt, cache=disk.cache.value)
        _sub(el, "source", **{"dev" if disk.type is DiskType.BLOCK else "file": disk.path})
        _sub(el, "target", dev=target, bus=disk.bus.value if disk.bus else "virtio")
        if disk.readonly:
            _sub(el, "readonly")
        if disk.serial:
            _sub(el, "serial", disk.serial)
    for nic in dom.nics:
        el = _sub(devs, "interface", type=nic.type.value)
        if nic.mac:
            _sub(el, "mac", address=nic.mac)
        if nic.type is not NicType.USER and nic.source:
            _sub(el, "source", **{nic.type.value: nic.source})
        _sub(el, "model", type=nic.model.value)
        for rule in nic.hostfwd:  # proto:hostaddr:hostport-guestaddr:guestport
            proto, haddr, rest = rule.split(":", 2)
            hport, _, guest = rest.partition("-")  # libvirt has no guest address: dropped
            pf = _sub(el, "portForward", proto=proto, **({"address": haddr} if haddr else {}))
            _sub(pf, "range", start=hport, to=guest.rpartition(":")[2])
    if dom.serial:
        serial = _sub(devs, "serial", type="pty")
        serial_target = _sub(serial, "target", type="isa-serial", port="0")
        _sub(serial_target, "model", name="isa-serial")
        console = _sub(devs, "console", type="pty")
        _sub(console, "target", type="serial", port="0")
    g = dom.graphics
    if g.type is GraphicsType.VNC:
        port = (
            {"port": str(g.port), "autoport": "no"} if g.port else {"port": "-1", "autoport": "yes"}
        )
        if g.listen == "socket":  # a Unix socket the daemon picks (libvirt: listen type=socket)
            el = _sub(devs, "graphics", type="vnc", **port)
            _sub(el, "listen", type="socket")
        else:
            el = _sub(devs, "graphics", type="vnc", **port, listen=g.listen)
            _sub(el, "listen", type="address", address=g.listen)
        video = _sub(devs, "video")
        _sub(video, "model", type="vga")
    write_hostdevs(devs, dom)
    _sub(devs, "memballoon", model="virtio")
    rng = _sub(devs, "rng", model="virtio")
    _sub(rng, "backend", "/dev/urandom", model="random")


def domain_to_xml(dom: Domain) -> str:
    """libvirt domain XML for ``dom``, pretty-printed (the VNC password is never written)."""
    root = ET.Element("domain", type="qemu" if dom.accel is Accel.TCG else "kvm")
    _sub(root, "name", dom.name)
    if dom.uuid:
        _sub(root, "uuid", dom.uuid)
    if dom.title:
        _sub(root, "title", dom.title)
    if dom.description:
        _sub(root, "description", dom.description)
    _metadata(root, dom)
    if dom.max_memory_mib is not None:
        _sub(
            root,
            "maxMemory",
            str(dom.max_memory_mib * KIB),
            slots=str(dom.memory_slots),
            unit="KiB",
        )
    _sub(root, "memory", str(dom.memory_mib * KIB), unit="KiB")
    current = dom.current_memory_mib or dom.memory_mib
    _sub(root, "currentMemory", str(current * KIB), unit="KiB")
    vcpu = _sub(root, "vcpu", str(dom.effective_max_vcpus), placement="static")
    if dom.max_vcpus is not None and dom.max_vcpus != dom.vcpus:
        vcpu.set("current", str(dom.vcpus))
    write_tuning(root, dom)
    _os(root, dom)
    features = _sub(root, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    _cpu(root, dom)
    _sub(root, "clock", offset="utc")
    _sub(root, "on_poweroff", dom.on_poweroff.value)
    _sub(root, "on_reboot", dom.on_reboot.value)
    _sub(root, "on_crash", dom.on_crash.value)
    _devices(root, dom)
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"


def domain_from_xml(text: str) -> Domain:
    """Parse libvirt domain XML into a Domain; raises ConfigError (see the module table)."""
    return read_domain(text)
