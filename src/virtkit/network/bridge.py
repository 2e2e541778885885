"""Bridges of managed networks and facts about the host's links (pyroute2, blocking).

Everything here blocks (netlink round trips, pyroute2's own loop): the daemon calls it in
an executor. The bridge carries the host's address of the network; guests' taps are
enslaved to it by network/taps.py.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from pathlib import Path

from virtkit.errors import HostError
from virtkit.model.network import NetMode, Network

SYS_NET = Path("/sys/class/net")


def link_names() -> list[str]:
    try:
        return sorted(os.listdir(SYS_NET))
    except OSError:
        return []


def link_exists(name: str) -> bool:
    return (SYS_NET / name).exists()


def bridge_ports(name: str) -> list[str]:
    try:
        return sorted(os.listdir(SYS_NET / name / "brif"))
    except OSError:
        return []


def host_subnets(skip: tuple[str, ...] = ()) -> list[tuple[str, ipaddress.IPv4Network]]:
    """(label, subnet) of every IPv4 address and route on this host (in the daemon's network
    namespace), except on the links named in ``skip`` (a network's own bridge)."""
    from pyroute2 import IPRoute

    out: list[tuple[str, ipaddress.IPv4Network]] = []
    with IPRoute() as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for a in ipr.get_addr(family=2):
            dev = names.get(a["index"], "?")
            if dev in skip or dev == "lo":
                continue
            net = ipaddress.IPv4Network(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}",
                                        strict=False)  # fmt: skip
            out.append((f"address {net} on {dev}", net))
        for r in ipr.get_routes(family=2, table=254):
            dst = r.get_attr("RTA_DST")
            if dst is None or r["dst_len"] == 0:
                continue  # the default route overlaps everything; it is not a collision
            dev = names.get(r.get_attr("RTA_OIF"), "?")
            if dev in skip:
                continue
            net = ipaddress.IPv4Network(f"{dst}/{r['dst_len']}", strict=False)
            out.append((f"route {net} via {dev}", net))
    return out


def create_bridge(net: Network) -> None:
    """Make the network's bridge with the host's address, and bring it up."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    assert net.bridge is not None
    iface = net.interface
    with IPRoute() as ipr:
        try:
            ipr.link("add", ifname=net.bridge, kind="bridge", br_stp_state=0, br_forward_delay=0)
        except NetlinkError as exc:
            raise HostError(f"cannot create bridge {net.bridge!r}: {exc}") from None
        try:
            idx = ipr.link_lookup(ifname=net.bridge)[0]
            if net.mtu:
                ipr.link("set", index=idx, mtu=net.mtu)
            ipr.addr("add", index=idx, address=str(iface.ip), prefixlen=iface.network.prefixlen,
                     broadcast=str(iface.network.broadcast_address))  # fmt: skip
            ipr.link("set", index=idx, state="up")
        except NetlinkError as exc:
            with contextlib.suppress(NetlinkError):
                ipr.link("del", ifname=net.bridge)
            raise HostError(f"cannot set up bridge {net.bridge!r}: {exc}") from None


def delete_bridge(name: str) -> None:
    """Remove the bridge (its taps are released; QEMU keeps its tap fds). No error if gone."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    with IPRoute() as ipr, contextlib.suppress(NetlinkError):
        ipr.link("del", ifname=name)


def enable_forwarding(net: Network) -> None:
    """NAT and routed networks need IPv4 forwarding (as libvirt turns it on)."""
    if net.mode is NetMode.ISOLATED:
        return
    path = Path("/proc/sys/net/ipv4/ip_forward")
    try:
        if path.read_text().strip() != "1":
            path.write_text("1\n")
    except OSError as exc:
        raise HostError(f"cannot enable IPv4 forwarding ({path}): {exc.strerror}") from None


def arp_table(path: Path = Path("/proc/net/arp")) -> dict[str, tuple[str, str]]:
    """MAC -> (IPv4 address, device) of the kernel's complete ARP entries."""
    out: dict[str, tuple[str, str]] = {}
    try:
        lines = path.read_text().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        parts = line.split()
        if len(parts) >= 6 and parts[2] != "0x0" and parts[3] != "00:00:00:00:00:00":
            out[parts[3].lower()] = (parts[0], parts[5])
    return out
