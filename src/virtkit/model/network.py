"""Managed networks and user-mode port forwards: pure data and validation. No I/O here.

A ``Network`` is what ``net-define`` takes (our YAML/JSON format maps 1:1 onto it; libvirt
network XML is translated by formats/libvirt_netxml.py). Modes follow libvirt's:
``nat`` (a bridge with DHCP/DNS and masquerade to the host's uplinks), ``routed``
(forwarded without NAT) and ``isolated`` (guests and host only).

Subnet arithmetic (overlap checks, picking a free subnet for ``default``) lives here as
pure functions over ``ipaddress`` objects; the host's own addresses and routes are read by
network/bridge.py and passed in.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from enum import StrEnum

from pydantic import ConfigDict, Field, field_validator, model_validator

from virtkit.model.domain import MAC_RE, check_name
from virtkit.model.strict import StrictModel

IFNAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$")
HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
DOMAIN_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
DEFAULT_NETWORK = "default"
DEFAULT_SUBNET = ipaddress.IPv4Network("192.168.122.0/24")


class NetMode(StrEnum):
    NAT = "nat"
    ROUTED = "routed"
    ISOLATED = "isolated"


def check_ifname(name: str, what: str = "bridge") -> str:
    if not isinstance(name, str) or not IFNAME_RE.fullmatch(name):
        raise ValueError(
            f"invalid {what} name {name!r}: use 1-15 letters, digits, '_', '-' or '.', "
            "not starting with '-' or '.'"
        )
    return name


def check_mac(mac: str) -> str:
    low = mac.lower()
    if not MAC_RE.fullmatch(low):
        raise ValueError(f"invalid MAC address {mac!r}: use six hex pairs like 52:54:00:12:34:56")
    if int(low[:2], 16) & 1:
        raise ValueError(f"MAC address {mac!r} is multicast; the first octet must be even")
    return low


class _Strict(StrictModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class DhcpHost(_Strict):
    """A fixed lease: this MAC always gets this address (libvirt's <host mac= ip= name=>)."""

    mac: str
    ip: str
    name: str | None = None

    @field_validator("mac")
    @classmethod
    def _mac(cls, v: str) -> str:
        return check_mac(v)

    @field_validator("ip")
    @classmethod
    def _ip(cls, v: str) -> str:
        return str(ipaddress.IPv4Address(v))

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not HOSTNAME_RE.fullmatch(v):
            raise ValueError(f"invalid host name {v!r}: letters, digits and '-' only")
        return v


class Network(_Strict):
    """A managed virtual network: one Linux bridge, optionally DHCP/DNS and forwarding."""

    name: str
    uuid: str | None = None
    mode: NetMode = NetMode.NAT
    bridge: str | None = None  # filled by the daemon (virbrN) when left out
    address: str = "192.168.122.1/24"  # the host's address on the bridge, with the prefix
    dhcp: bool = True
    dhcp_start: str | None = None  # default: the first address after the host's
    dhcp_end: str | None = None  # default: the last address before broadcast
    dhcp_hosts: list[DhcpHost] = Field(default_factory=list, max_length=4096)
    forward_dev: str | None = None  # nat/routed: leave only through this interface
    dns_domain: str | None = None
    mtu: int | None = Field(default=None, ge=576, le=65535)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v, "network")

    @field_validator("bridge", "forward_dev")
    @classmethod
    def _ifname(cls, v: str | None) -> str | None:
        return None if v is None else check_ifname(v, "interface")

    @field_validator("dns_domain")
    @classmethod
    def _domain(cls, v: str | None) -> str | None:
        if v is not None and not DOMAIN_RE.fullmatch(v):
            raise ValueError(f"invalid DNS domain {v!r}")
        return v

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        try:
            iface = ipaddress.IPv4Interface(v)
        except ValueError:
            raise ValueError(
                f"invalid address {v!r}: give the host's address with its prefix, "
                "like 192.168.100.1/24"
            ) from None
        if "/" not in v:
            raise ValueError(f"address {v!r} needs a prefix length, like {v}/24")
        net = iface.network
        if not 8 <= net.prefixlen <= 30:
            raise ValueError(f"address {v!r}: the prefix must be between /8 and /30")
        if iface.ip in (net.network_address, net.broadcast_address):
            raise ValueError(
                f"address {v!r} is the subnet's network or broadcast address; "
                f"use a host address such as {next(net.hosts())}/{net.prefixlen}"
            )
        if not (net.is_private or iface.ip.is_link_local):
            raise ValueError(
                f"subnet {net} is not a private range; use one of 10.0.0.0/8, "
                "172.16.0.0/12 or 192.168.0.0/16"
            )
        return str(iface)

    @model_validator(mode="after")
    def _ranges(self) -> Network:
        iface = self.interface
        net = iface.network
        if self.mode is NetMode.ISOLATED and self.forward_dev:
            raise ValueError("an isolated network forwards nowhere: remove forward_dev")
        if not self.dhcp:
            if self.dhcp_start or self.dhcp_end or self.dhcp_hosts:
                raise ValueError("dhcp is false: remove dhcp_start, dhcp_end and dhcp_hosts")
            return self
        hosts = list(_first_last(net))
        start = ipaddress.IPv4Address(self.dhcp_start) if self.dhcp_start else None
        end = ipaddress.IPv4Address(self.dhcp_end) if self.dhcp_end else None
        if start is None:
            start = hosts[0] if hosts[0] != iface.ip else hosts[0] + 1
        if end is None:
            end = hosts[1] if hosts[1] != iface.ip else hosts[1] - 1
        for label, ip in (("dhcp_start", start), ("dhcp_end", end)):
            if ip not in net or ip in (net.network_address, net.broadcast_address):
                raise ValueError(f"{label} {ip} is not a host address of {net}")
        if start > end:
            raise ValueError(f"dhcp_start {start} is after dhcp_end {end}")
        if start <= iface.ip <= end:
            raise ValueError(
                f"the DHCP range {start}-{end} contains the host's own address {iface.ip}; "
                "start the range after it"
            )
        object.__setattr__(self, "dhcp_start", str(start))
        object.__setattr__(self, "dhcp_end", str(end))
        macs: set[str] = set()
        ips: set[str] = set()
        for h in self.dhcp_hosts:
            if ipaddress.IPv4Address(h.ip) not in net or h.ip == str(iface.ip):
                raise ValueError(f"dhcp host {h.mac}: {h.ip} is not a free address of {net}")
            if h.mac in macs:
                raise ValueError(f"dhcp host MAC {h.mac} is given twice")
            if h.ip in ips:
                raise ValueError(f"dhcp host address {h.ip} is given twice")
            macs.add(h.mac)
            ips.add(h.ip)
        return self

    @property
    def interface(self) -> ipaddress.IPv4Interface:
        return ipaddress.IPv4Interface(self.address)

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return self.interface.network

    @property
    def gateway(self) -> str:
        return str(self.interface.ip)


def _first_last(net: ipaddress.IPv4Network) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    return net.network_address + 1, net.broadcast_address - 1


def overlapping(
    subnet: ipaddress.IPv4Network, others: Iterable[tuple[str, ipaddress.IPv4Network]]
) -> list[str]:
    """Labels of the ``others`` whose subnet overlaps ``subnet``."""
    return [label for label, net in others if net.overlaps(subnet)]


def pick_subnet(
    used: Iterable[ipaddress.IPv4Network],
    preferred: ipaddress.IPv4Network = DEFAULT_SUBNET,
) -> ipaddress.IPv4Network:
    """``preferred`` if nothing in ``used`` overlaps it, else the first free /24 after it in
    192.168.122-254.x, then 10.x.y.0/24 (what libvirt's default network would need)."""
    taken = [u for u in used if u.prefixlen > 0]  # a default route overlaps everything
    prefix = preferred.prefixlen

    def free(n: ipaddress.IPv4Network) -> bool:
        return not any(n.overlaps(u) for u in taken)

    if free(preferred):
        return preferred
    candidates = [ipaddress.IPv4Network(f"192.168.{i}.0/{prefix}", strict=False)
                  for i in range(122, 255)]  # fmt: skip
    candidates += [ipaddress.IPv4Network(f"10.{i}.{j}.0/24") for i in range(250, 0, -1)
                   for j in (122, 0)]  # fmt: skip
    for cand in candidates:
        if free(cand):
            return cand
    raise ValueError("no free private /24 subnet on this host for the network")


def default_network(subnet: ipaddress.IPv4Network, bridge: str) -> Network:
    """libvirt's ``default``: NAT, host .1, DHCP .2-.254 (of whichever subnet is free)."""
    first, last = _first_last(subnet)
    return Network(name=DEFAULT_NETWORK, mode=NetMode.NAT, bridge=bridge,
                   address=f"{first}/{subnet.prefixlen}", dhcp_start=str(first + 1),
                   dhcp_end=str(last))  # fmt: skip


def pick_bridge(used: Iterable[str], prefix: str = "virbr") -> str:
    """The first ``virbrN`` no host link and no other network uses."""
    taken = set(used)
    n = 0
    while f"{prefix}{n}" in taken:
        n += 1
    return f"{prefix}{n}"
