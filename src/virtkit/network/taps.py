"""Tap devices for bridged and managed-network NICs (pyroute2): made before QEMU
starts, removed after it ends.

The tap's name is a pure function of the domain (see qemu/argv.py ``tap_name``), so a
daemon restarted mid-run finds and cleans up the same devices.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping

from virtkit.errors import ConfigError, HostError
from virtkit.model.domain import Domain, Nic, NicType
from virtkit.qemu.argv import tap_name


def bridge_exists(name: str) -> bool:
    return os.path.isdir(f"/sys/class/net/{name}/bridge")


def check_bridges(dom: Domain, networks: Mapping[str, str] | None = None) -> None:
    """Every bridged NIC's bridge exists; every network NIC's network is active
    (``networks``: network name -> its bridge, of the active managed networks)."""
    nets = networks or {}
    for nic in dom.nics:
        if nic.type is NicType.BRIDGE and not bridge_exists(nic.source or ""):
            raise ConfigError(
                f"bridge {nic.source!r} does not exist on this host; create it with "
                f"`ip link add {nic.source} type bridge && ip link set {nic.source} up` "
                "(and add the uplink with `ip link set eth0 master ...`), or use --network user"
            )
        if nic.type is NicType.NETWORK and nic.source not in nets:
            raise ConfigError(
                f"network {nic.source!r} is not active; start it with "
                f"`virtkit net-start {nic.source}` (`virtkit net-list --all` lists networks)"
            )


def tapped(nic: Nic) -> bool:
    """A NIC with a host tap (bridged or on a managed network)."""
    return nic.type is NicType.BRIDGE or nic.type is NicType.NETWORK


def create_taps(
    dom: Domain, networks: Mapping[str, str] | None = None, *, owner: int | None = None
) -> list[str]:
    """Create and enslave one tap per bridged or network NIC; on failure remove what was
    made. ``networks``: network name -> bridge of the active managed networks.
    ``owner``: the uid a confined QEMU runs as (it opens the tap without CAP_NET_ADMIN)."""
    made: list[str] = []
    if not any(tapped(n) for n in dom.nics):
        return made
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    nets = networks or {}
    with IPRoute() as ipr:
        try:
            for i, nic in enumerate(dom.nics):
                if not tapped(nic):
                    continue
                name = tap_name(dom, i)
                bridge = nets.get(nic.source or "") if nic.type is NicType.NETWORK else nic.source
                with contextlib.suppress(NetlinkError):
                    ipr.link("del", ifname=name)  # a leftover from a crash
                owned = {} if owner is None else {"uid": owner}
                ipr.link("add", ifname=name, kind="tuntap", mode="tap", **owned)
                made.append(name)
                master = ipr.link_lookup(ifname=bridge) if bridge else []
                if not master:
                    raise ConfigError(f"bridge {bridge!r} of interface {i} disappeared")
                ipr.link("set", ifname=name, master=master[0], state="up")
        except NetlinkError as exc:
            _remove(ipr, made)
            raise HostError(f"cannot create a tap device for domain {dom.name!r}: {exc}") from None
        except BaseException:
            _remove(ipr, made)
            raise
    return made


def remove_taps(dom: Domain) -> None:
    names = [tap_name(dom, i) for i, n in enumerate(dom.nics) if tapped(n)]
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
