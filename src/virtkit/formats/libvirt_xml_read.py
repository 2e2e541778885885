"""libvirt domain XML -> ``Domain``: the mapping (the table is in libvirt_xml's docstring)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from virtkit.errors import ConfigError
from virtkit.formats import osinfo
from virtkit.formats.domfile import describe_validation
from virtkit.formats.libvirt_xml_devices import devices
from virtkit.formats.libvirt_xml_node import (
    LIBOSINFO_NS,
    VIRTKIT_NS,
    Node,
    mib,
    parse_xml,
    to_int,
    unsupported,
)
from virtkit.formats.libvirt_xml_tune import read_numa, read_tuning
from virtkit.model.domain import Domain


def _metadata(root: Node, out: dict[str, Any]) -> None:
    meta = root.child("metadata")
    if meta is None:
        return
    for lo in meta.children(f"{{{LIBOSINFO_NS}}}libosinfo"):
        if (os_el := lo.child(f"{{{LIBOSINFO_NS}}}os")) is not None:
            info = osinfo.by_id(os_el.need("id"))
            if info is not None:  # an id outside the built-in table is a label only
                out["os_variant"] = info.name
    for own in meta.children(f"{{{VIRTKIT_NS}}}domain"):
        if (accel := own.only("accel", "auto")) is not None:
            out["accel"] = accel
        if (cpu := own.only("cpu", "host")) is not None:
            out["cpu_model"] = cpu
        if (variant := own.attr("os-variant")) is not None:
            out["os_variant"] = variant
        if (slots := own.attr("memory-slots")) is not None:
            out["memory_slots"] = to_int(own, slots, "memory-slots")
    meta.ignore(
        *{kid.tag for kid in meta.el} - {f"{{{LIBOSINFO_NS}}}libosinfo", f"{{{VIRTKIT_NS}}}domain"}
    )


def _memory_vcpu(root: Node, out: dict[str, Any]) -> None:
    memory = root.child("memory")
    if memory is None:
        raise ConfigError("domain XML: <memory> is required")
    out["memory_mib"] = mib(memory)
    if (cur := root.child("currentMemory")) is not None:
        current = mib(cur)
        if current != out["memory_mib"]:
            out["current_memory_mib"] = current
    if (mx := root.child("maxMemory")) is not None:
        out["max_memory_mib"] = mib(mx)
        out["memory_slots"] = to_int(mx, mx.need("slots"), "@slots")
    vcpu = root.child("vcpu")
    if vcpu is not None:
        vcpu.only("placement", "static", "auto")
        total = to_int(vcpu, vcpu.text(), "count")
        cur_attr = vcpu.attr("current")
        now = total if cur_attr is None else to_int(vcpu, cur_attr, "@current")
        out["vcpus"] = now
        if now != total:
            out["max_vcpus"] = total


def _cpu(root: Node, out: dict[str, Any]) -> None:
    cpu = root.child("cpu")
    if cpu is None:
        return
    mode = cpu.only("mode", "host-passthrough", "host-model", "maximum", "custom", default="custom")
    cpu.only("match", "exact", "minimum", "strict")
    cpu.ignore_attrs("check", "migratable")
    if mode in ("host-passthrough", "host-model"):
        out.setdefault("cpu_model", "host-passthrough")
    elif mode == "maximum":
        out["cpu_model"] = "max"
    model = cpu.child("model")
    if model is not None:
        model.only("fallback", "forbid", "allow")
        model.ignore_attrs("vendor_id")
        if mode == "custom":
            out["cpu_model"] = model.text()
    if (top := cpu.child("topology")) is not None:
        for extra in ("dies", "clusters"):
            if top.attr(extra, "1") != "1":
                raise unsupported(f"{top.path}/@{extra}={top.attr(extra)!r}", "value")
        out["topology"] = {
            k: to_int(top, top.need(k), f"@{k}") for k in ("sockets", "cores", "threads")
        }
    read_numa(cpu, out)
    cpu.done()


def os_and_features(root: Node, out: dict[str, Any]) -> None:
    os_el = root.child("os")
    if os_el is None:
        raise ConfigError("domain XML: <os> is required")
    boot: dict[str, Any] = {}
    if os_el.only("firmware", "efi", "bios") == "efi":
        boot["uefi"] = True
    if (fw := os_el.child("firmware")) is not None:
        for feature in fw.children("feature"):
            if feature.need("enabled") != "no":
                raise unsupported(
                    f"{feature.path}[@name={feature.attr('name')!r}] enabled", "firmware feature"
                )
            feature.attr("name")
    type_el = os_el.child("type")
    if type_el is None or type_el.text() != "hvm":
        raise ConfigError("domain XML: <os><type> must be hvm")
    type_el.only("arch", "x86_64")
    if (machine := type_el.attr("machine")) is not None:
        out["machine"] = machine
    if (loader := os_el.child("loader")) is not None:
        loader.only("type", "pflash")
        loader.only("secure", "no")
        loader.only("readonly", "yes")
        loader.ignore_attrs("format")
        loader.text()  # the OVMF image: virtkit picks its own
        boot["uefi"] = True
    if (nvram := os_el.child("nvram")) is not None:
        nvram.ignore_attrs("template", "format")
        nvram.text()  # virtkit keeps its own NVRAM copy per domain
    for tag in ("kernel", "initrd", "cmdline"):
        if (el := os_el.child(tag)) is not None:
            boot[tag] = el.text()
    order = []
    for b in os_el.children("boot"):
        order.append(b.only("dev", "hd", "cdrom", "network"))
    if order:
        boot["order"] = order
    if (menu := os_el.child("bootmenu")) is not None:
        menu.ignore_attrs("enable", "timeout")
    out["boot"] = boot
    if (features := root.child("features")) is not None:
        features.ignore("acpi", "apic", "pae")
        if (vmport := features.child("vmport")) is not None:
            vmport.only("state", "off")
    if (clock := root.child("clock")) is not None:
        clock.only("offset", "utc")
        for timer in clock.children("timer"):
            timer.only("name", "rtc", "pit", "hpet")
            timer.ignore_attrs("tickpolicy", "present")
    if (pm := root.child("pm")) is not None:
        pm.ignore("suspend-to-mem", "suspend-to-disk")
    if (res := root.child("resource")) is not None:
        res.ignore("partition")
    for label in root.children("seclabel"):
        label.only("type", "none")
        label.ignore_attrs("model")


def read_domain(text: str) -> Domain:
    """Parse libvirt domain XML safely and map it to a Domain (raises ConfigError)."""
    root = Node(parse_xml(text), "/domain")
    out: dict[str, Any] = {}
    kind = root.only("type", "kvm", "qemu")
    root.ignore_attrs("id")  # the live domain id in virsh dumpxml
    out["accel"] = "tcg" if kind == "qemu" else "kvm"
    name = root.child("name")
    if name is None:
        raise ConfigError("domain XML: <name> is required")
    out["name"] = name.text()
    for tag in ("uuid", "title", "description"):
        if (el := root.child(tag)) is not None:
            out[tag] = el.text()
    _metadata(root, out)
    _memory_vcpu(root, out)
    _cpu(root, out)
    read_tuning(root, out)
    os_and_features(root, out)
    for tag in ("on_poweroff", "on_reboot", "on_crash"):
        if (el := root.child(tag)) is not None:
            value = el.text()
            if value not in ("destroy", "restart", "preserve"):
                raise unsupported(f"{el.path}={value!r}", "value")
            out[tag] = value
    devices(root, out)
    root.done()
    try:
        return Domain.model_validate(out)
    except ValidationError as err:
        raise ConfigError(describe_validation(err, "domain XML")) from None
