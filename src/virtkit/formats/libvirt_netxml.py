"""libvirt network XML <-> Network (parsed with defusedxml; the supported subset only).

Supported (anything else is an error naming the element or attribute)::

    network                          name, uuid
      forward mode=nat|route [dev=]  absent: isolated   (nat/port, nat/address are ignored)
      bridge name= [stp= delay=]     stp/delay are accepted and ignored
      mac address=                   ignored (the bridge keeps the kernel's address)
      mtu size=
      domain name= [localOnly=]
      ip address= netmask=|prefix=   one IPv4 <ip>
        dhcp
          range start= end=          one range
          host mac= ip= [name=]
"""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from typing import Any

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

from virtkit.errors import ConfigError
from virtkit.formats.libvirt_xml_node import MAX_XML_BYTES, Node, local, to_int
from virtkit.model.network import NetMode, Network

_MODES = {"nat": NetMode.NAT, "route": NetMode.ROUTED}


def _root(text: str) -> ET.Element:
    if len(text.encode("utf-8", "replace")) > MAX_XML_BYTES:
        raise ConfigError("network XML is larger than 1 MiB; a network definition is smaller")
    try:
        root = DET.fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise ConfigError(
            f"network XML refused: {type(exc).__name__} (DTDs and entities are not allowed)"
        ) from None
    except ET.ParseError as exc:
        raise ConfigError(f"network XML is not well-formed: {exc}") from None
    if root.tag != "network":
        raise ConfigError(f"expected a <network> document, got <{local(root.tag)}>")
    return root  # type: ignore[no-any-return]


def _prefix(ip: Node) -> int:
    netmask = ip.attr("netmask")
    prefix = ip.attr("prefix")
    if netmask is not None and prefix is not None:
        raise ConfigError("network XML: /network/ip takes netmask= or prefix=, not both")
    if netmask is not None:
        try:
            return ipaddress.IPv4Network(f"0.0.0.0/{netmask}").prefixlen
        except ValueError:
            raise ConfigError(f"network XML: /network/ip netmask {netmask!r} is invalid") from None
    return to_int(ip, prefix or "24", "prefix")


def _ip(node: Node, out: dict[str, Any]) -> None:
    ips = node.children("ip")
    if not ips:
        raise ConfigError("network XML: a <network> needs an <ip address=... netmask=...>")
    v4 = [i for i in ips if (i.attr("family") or "ipv4") == "ipv4"]
    if len(ips) != 1 or len(v4) != 1:
        raise ConfigError("network XML: exactly one IPv4 <ip> is supported (no IPv6 yet)")
    ip = v4[0]
    out["address"] = f"{ip.need('address')}/{_prefix(ip)}"
    dhcp = ip.child("dhcp")
    if dhcp is None:
        out["dhcp"] = False
        return
    ranges = dhcp.children("range")
    if len(ranges) > 1:
        raise ConfigError("network XML: one <dhcp><range> is supported")
    if ranges:
        out["dhcp_start"] = ranges[0].need("start")
        out["dhcp_end"] = ranges[0].need("end")
    out["dhcp_hosts"] = [
        {k: v for k, v in (("mac", h.need("mac")), ("ip", h.need("ip")),
                           ("name", h.attr("name"))) if v is not None}
        for h in dhcp.children("host")
    ]  # fmt: skip


def network_from_xml(text: str) -> Network:
    from virtkit.formats.netfile import network_from_mapping

    root = Node(_root(text), "/network")
    root.ignore_attrs("connections", "ipv6")
    out: dict[str, Any] = {}
    name = root.child("name")
    if name is None:
        raise ConfigError("network XML: <name> is required")
    out["name"] = name.text()
    if (u := root.child("uuid")) is not None:
        out["uuid"] = u.text()
    fwd = root.child("forward")
    if fwd is None:
        out["mode"] = NetMode.ISOLATED.value
    else:
        mode = fwd.only("mode", *_MODES, default="nat") or "nat"
        out["mode"] = _MODES[mode].value
        if (dev := fwd.attr("dev")) is not None:
            out["forward_dev"] = dev
        fwd.ignore("nat", "interface")
    if (br := root.child("bridge")) is not None:
        if (bname := br.attr("name")) is not None:
            out["bridge"] = bname
        br.ignore_attrs("stp", "delay", "macTableManager", "zone")
    if (mtu := root.child("mtu")) is not None:
        out["mtu"] = to_int(mtu, mtu.need("size"), "size")
    if (dom := root.child("domain")) is not None:
        out["dns_domain"] = dom.need("name")
        dom.ignore_attrs("localOnly", "register")
    root.ignore("mac")
    _ip(root, out)
    root.done()
    return network_from_mapping(out, "network XML")


def network_to_xml(net: Network, *, uuid: str | None = None) -> str:
    root = ET.Element("network")
    ET.SubElement(root, "name").text = net.name
    if net.uuid or uuid:
        ET.SubElement(root, "uuid").text = net.uuid or uuid
    if net.mode is not NetMode.ISOLATED:
        fwd = ET.SubElement(root, "forward", mode="nat" if net.mode is NetMode.NAT else "route")
        if net.forward_dev:
            fwd.set("dev", net.forward_dev)
    if net.bridge:
        ET.SubElement(root, "bridge", name=net.bridge, stp="on", delay="0")
    if net.mtu:
        ET.SubElement(root, "mtu", size=str(net.mtu))
    if net.dns_domain:
        ET.SubElement(root, "domain", name=net.dns_domain, localOnly="yes")
    iface = net.interface
    ip = ET.SubElement(root, "ip", address=str(iface.ip), netmask=str(iface.netmask))
    if net.dhcp:
        dhcp = ET.SubElement(ip, "dhcp")
        ET.SubElement(dhcp, "range", start=net.dhcp_start or "", end=net.dhcp_end or "")
        for h in net.dhcp_hosts:
            attrs = {"mac": h.mac, "ip": h.ip} | ({"name": h.name} if h.name else {})
            ET.SubElement(dhcp, "host", attrs)
    ET.indent(root, "  ")
    return ET.tostring(root, encoding="unicode") + "\n"
