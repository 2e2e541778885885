"""libvirt ``<devices>`` -> the Domain's disks, NICs, serial port and graphics."""

from __future__ import annotations

from typing import Any

from virtkit.errors import ConfigError
from virtkit.formats.libvirt_xml_node import DEVICE_NOISE, Node, to_int, unsupported
from virtkit.formats.libvirt_xml_tune import read_hostdev

_BUS_BY_PREFIX = {"vd": "virtio", "sd": "scsi", "hd": "sata"}
_HANDLED = (
    "emulator",
    "disk",
    "interface",
    "serial",
    "console",
    "graphics",
    "video",
    "memballoon",
    "rng",
    "controller",
    "input",
    "channel",
)


def _disk(node: Node) -> dict[str, Any]:
    kind = node.only("type", "file", "block", default="file")
    device = node.only("device", "disk", "cdrom", default="disk")
    node.ignore(*DEVICE_NOISE)
    disk: dict[str, Any] = {"device": device, "format": "raw"}  # libvirt: no type = raw
    if kind == "block":
        disk["type"] = "block"
    if (driver := node.child("driver")) is not None:
        driver.only("name", "qemu")
        if (fmt := driver.only("type", "qcow2", "raw")) is not None:
            disk["format"] = fmt
        cache = driver.only(
            "cache", "default", "none", "writeback", "writethrough", "directsync", "unsafe"
        )
        if cache not in (None, "default"):
            disk["cache"] = cache
        driver.only("discard", "unmap", "ignore")  # a space optimization; no effect on data
    source = node.child("source")
    attr = "dev" if kind == "block" else "file"
    if source is None:
        raise ConfigError(
            f"domain XML: {node.path} has no <source {attr}=...> (an empty "
            "cdrom drive is not supported)"
        )
    disk["path"] = source.need(attr)
    source.ignore_attrs("index")
    if (backing := node.child("backingStore")) is not None and len(backing.el):
        raise unsupported(f"{backing.path} (a backing chain)")
    target = node.child("target")
    if target is None:
        raise ConfigError(f"domain XML: {node.path} needs <target dev=... bus=...>")
    dev = target.need("dev")
    bus = target.only("bus", "virtio", "sata", "scsi", "ide") or _BUS_BY_PREFIX.get(dev[:2])
    disk["target"] = dev
    disk["bus"] = "sata" if bus == "ide" else bus
    if node.child("readonly") is not None:
        disk["readonly"] = True
    if (serial := node.child("serial")) is not None:
        disk["serial"] = serial.text()
    return disk


def _interface(node: Node) -> dict[str, Any]:
    kind = node.only("type", "user", "bridge", "network")
    node.ignore(*DEVICE_NOISE, "target")  # target: the live tap name (vnet0)
    nic: dict[str, Any] = {"type": kind, "model": "rtl8139"}  # libvirt's x86 default model
    if (mac := node.child("mac")) is not None:
        nic["mac"] = mac.need("address")
    if (source := node.child("source")) is not None:
        if kind == "bridge":
            nic["source"] = source.need("bridge")
        elif kind == "network":
            nic["source"] = source.need("network")
            source.ignore_attrs("portid", "bridge")  # live state
    if (model := node.child("model")) is not None:
        nic["model"] = model.only("type", "virtio", "e1000", "e1000e", "rtl8139")
    if kind == "user":
        node.ignore("backend")  # passt or slirp: the port forwards below work the same
        rules = [_port_forward(pf) for pf in node.children("portForward")]
        if rules:
            nic["hostfwd"] = [r for group in rules for r in group]
    return nic


def _port_forward(pf: Node) -> list[str]:
    """<portForward proto= address=><range start= [to=]/></portForward> -> hostfwd rules."""
    proto = pf.only("proto", "tcp", "udp", default="tcp")
    addr = pf.attr("address") or ""
    out = []
    for rng in pf.children("range"):
        start = rng.need("start")
        out.append(f"{proto}:{addr}:{start}-:{rng.attr('to') or start}")
    return out


def _pty(node: Node, target_types: tuple[str, ...]) -> None:
    node.only("type", "pty")
    node.ignore_attrs("tty")  # the live /dev/pts/N
    node.ignore(*DEVICE_NOISE)
    if (source := node.child("source")) is not None:
        source.ignore_attrs("path")  # the live /dev/pts/N
    if (target := node.child("target")) is not None:
        target.only("type", *target_types)
        if target.attr("port", "0") != "0":
            raise unsupported(
                f"{target.path}/@port={target.attr('port')!r} (one serial port)", "value"
            )
        if (model := target.child("model")) is not None:
            model.only("name", "isa-serial")


def _graphics(node: Node) -> dict[str, Any]:
    node.only("type", "vnc")
    g: dict[str, Any] = {"type": "vnc"}
    port = node.attr("port")
    autoport = node.only("autoport", "yes", "no")
    if port not in (None, "-1") and autoport != "yes":
        g["port"] = to_int(node, port, "@port")
    listens = {a for a in [node.attr("listen")] if a}
    for listen in node.children("listen"):
        if listen.only("type", "address", "socket") == "socket":
            listens.add("socket")  # our own socket path: a given socket= is not honoured
        elif (address := listen.attr("address")) is not None:
            listens.add(address)
    if len(listens) > 1:
        raise ConfigError(
            f"domain XML: {node.path} has several listen addresses {sorted(listens)}; give one"
        )
    if listens:
        g["listen"] = listens.pop()
    if (password := node.attr("passwd")) is not None:
        g["password"] = password
    return g


def _ignored(node: Node) -> None:
    """Devices virtkit always provides or does not need; checked, then dropped."""
    tag = node.path.rsplit("/", 1)[-1]
    node.ignore(*DEVICE_NOISE)
    if tag == "video":
        if (model := node.child("model")) is not None:
            model.only("type", "none", "vga")
            model.ignore_attrs("vram", "heads", "primary")
    elif tag == "memballoon":
        node.only("model", "virtio", "none")
        if (stats := node.child("stats")) is not None:
            stats.ignore_attrs("period")
    elif tag == "rng":
        node.only("model", "virtio")
        if (backend := node.child("backend")) is not None:
            backend.only("model", "random")
            backend.text()
    elif tag == "controller":
        kind = node.only("type", "usb", "pci", "sata", "ide", "scsi", "virtio-serial")
        if kind == "scsi":
            node.only("model", "virtio-scsi")
        node.ignore_attrs("index", "model", "ports")
        node.ignore("master", "target", "model")
    elif tag == "input":
        node.only("type", "tablet", "mouse", "keyboard")
        node.only("bus", "ps2", "usb")
    elif tag == "channel":
        node.only("type", "unix")
        node.ignore("source")
        if (target := node.child("target")) is not None:
            target.only("type", "virtio")
            target.only("name", "org.qemu.guest_agent.0")
            target.ignore_attrs("state")


def devices(root: Node, out: dict[str, Any]) -> None:
    devs = root.child("devices")
    if devs is None:
        out["serial"] = False
        return
    if (emulator := devs.child("emulator")) is not None:
        out["emulator"] = emulator.text()
    out["disks"] = [_disk(n) for n in devs.children("disk")]
    out["nics"] = [_interface(n) for n in devs.children("interface")]
    if hostdevs := [read_hostdev(n) for n in devs.children("hostdev")]:
        out["hostdevs"] = hostdevs
    serials = devs.children("serial")
    consoles = devs.children("console")
    if len(serials) > 1 or len(consoles) > 1:
        raise ConfigError(
            "domain XML: virtkit guests have one serial port; remove the extra "
            "<serial>/<console> devices"
        )
    for s in serials:
        _pty(s, ("isa-serial",))
    for c in consoles:
        _pty(c, ("serial",))
    out["serial"] = bool(serials or consoles)
    graphics = devs.children("graphics")
    if len(graphics) > 1:
        raise ConfigError("domain XML: virtkit guests have one display; keep one <graphics>")
    if graphics:
        out["graphics"] = _graphics(graphics[0])
    for tag in _HANDLED[6:]:
        for node in devs.children(tag):
            _ignored(node)
