"""Tap devices for bridged NICs (pyroute2): made before QEMU starts, removed after it ends.

The tap's name is a pure function of the domain (see qemu/argv.py ``tap_name``), so a
daemon restarted mid-run finds and cleans up the same devices.
"""

from __future__ import annotations

import contextlib
import os

from virtkit.errors import ConfigError, HostError
from virtkit.model.domain import Domain, NicType
from virtkit.qemu.argv import tap_name


def bridge_exists(name: str) -> bool:
    return os.path.isdir(f"/sys/class/net/{name}/bridge")


def check_bridges(dom: Domain) -> None:
    for nic in dom.nics:
        if nic.type is NicType.BRIDGE and not bridge_exists(nic.source or ""):
            raise ConfigError(
                f"bridge {nic.source!r} does not exist on this host; create it with "
                f"`ip link add {nic.source} type bridge && ip link set {nic.source} up` "
                "(and add the uplink with `ip link set eth0 master ...`), or use --network user"
            )
        if nic.type is NicType.NETWORK:
            raise ConfigError(
                f"managed network {nic.source!r}: managed networks are not available yet; "
                "use a bridge (type: bridge, source: br0) or user-mode networking"
            )


def create_taps(dom: Domain) -> list[str]:
    """Create and enslave one tap per bridged NIC; on failure remove what was made."""
    made: list[str] = []
    if not any(n.type is NicType.BRIDGE for n in dom.nics):
        return made
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    with IPRoute() as ipr:
        try:
            for i, nic in enumerate(dom.nics):
                if nic.type is not NicType.BRIDGE:
                    continue
                name = tap_name(dom, i)
                with contextlib.suppress(NetlinkError):
                    ipr.link("del", ifname=name)  # a leftover from a crash
                ipr.link("add", ifname=name, kind="tuntap", mode="tap")
                made.append(name)
                master = ipr.link_lookup(ifname=nic.source)
                if not master:
                    raise ConfigError(f"bridge {nic.source!r} disappeared")
                ipr.link("set", ifname=name, master=master[0], state="up")
        except NetlinkError as exc:
            _remove(ipr, made)
            raise HostError(f"cannot create a tap device for domain {dom.name!r}: {exc}") from None
        except BaseException:
            _remove(ipr, made)
            raise
    return made


def remove_taps(dom: Domain) -> None:
    names = [tap_name(dom, i) for i, n in enumerate(dom.nics) if n.type is NicType.BRIDGE]
    if not names:
        return
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        _remove(ipr, names)


def _remove(ipr: object, names: list[str]) -> None:
    from pyroute2.netlink.exceptions import NetlinkError

    for name in names:
        with contextlib.suppress(NetlinkError):
            ipr.link("del", ifname=name)  # type: ignore[attr-defined]
