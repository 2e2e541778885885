"""Managed networks after a daemon (re)start, and while they run.

``reconcile`` makes reality match the store at daemon start: it adopts what still runs
(bridge present, dnsmasq alive per its pidfile and command line), rebuilds the missing
parts of networks that should run (re-enslaving running guests' taps to a re-created
bridge), and tears down leftovers of networks that should not run or no longer exist
(found by the marker file a start writes). The watchdog restarts a dnsmasq that died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from virtkit.daemon.locks import NetworkKey
from virtkit.daemon.network.service import MARKER, WATCHDOG_S, _thread
from virtkit.errors import VirtkitError
from virtkit.formats.domfile import domain_from_mapping
from virtkit.model.domain import NicType
from virtkit.model.network import Network
from virtkit.network import bridge as B
from virtkit.network import dnsmasq as D
from virtkit.network import firewall as F

if TYPE_CHECKING:
    from virtkit.daemon.network.service import NetworkManager
    from virtkit.daemon.network.store import StoredNetwork

log = logging.getLogger("virtkit.networks")


async def reconcile(m: NetworkManager) -> None:
    """Daemon start: adopt, repair or tear down, so reality matches the store."""
    known = {n.name for n in m.db.all()}
    root = m.svc.paths.state_dir / "networks"
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        marker = d / MARKER
        if d.name not in known and marker.exists():  # undefined while we were away
            await m.tear_down(d.name, marker.read_text().strip())
    for n in m.db.all():
        try:
            await _reconcile_one(m, n)
        except VirtkitError as exc:
            log.error("network %s: %s", n.name, exc.message)
            m.db.set(n.name, active=False)
    ensure_watchdog(m)


async def _reconcile_one(m: NetworkManager, n: StoredNetwork) -> None:
    net = m.network(n)
    files = m.files(n.name)
    if not (n.active or n.autostart):
        marker = files.dir / MARKER
        if marker.exists():
            await m.tear_down(n.name, marker.read_text().strip())
        return
    marker = files.dir / MARKER
    if not (marker.exists() and B.link_exists(net.bridge or "")):
        if n.active:
            log.warning("network %s lost its bridge; starting it again", n.name)
        if marker.exists():  # what is left of it
            await m.tear_down(n.name, net.bridge or "")
        await m.bring_up(net)  # refuses a bridge name someone else's device has
        await _thread(_reattach, m, net)
    else:
        await _thread(F.apply, net)  # idempotent: one nft transaction
        if (net.dhcp or net.dns_domain) and D.running_pid(files) is None:
            await _thread(D.start, net, files)
        log.info("adopted network %s (bridge %s)", n.name, net.bridge)
    m.db.set(n.name, active=True)


def _reattach(m: NetworkManager, net: Network) -> None:
    """Taps of running guests on a re-created bridge (blocking)."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    from virtkit.qemu.argv import tap_name

    with IPRoute() as ipr:
        br = ipr.link_lookup(ifname=net.bridge)
        for name in m.users(net.name):
            e = m.svc.entries[name]
            assert e.sup is not None
            dom = domain_from_mapping(e.sup.record.domain, "runtime record")
            for i, nic in enumerate(dom.nics):
                if nic.type is NicType.NETWORK and nic.source == net.name and br:
                    with contextlib.suppress(NetlinkError):
                        ipr.link("set", ifname=tap_name(dom, i), master=br[0])


def ensure_watchdog(m: NetworkManager) -> None:
    idle = m.watchdog is None or m.watchdog.done()
    if idle and any(n.active for n in m.db.all()):
        m.watchdog = asyncio.get_running_loop().create_task(_watch(m))


async def _watch(m: NetworkManager) -> None:
    while True:
        await asyncio.sleep(WATCHDOG_S)
        active = [n for n in m.db.all() if n.active]
        if not active:
            return
        for n in active:
            net = m.network(n)
            files = m.files(n.name)
            if not (net.dhcp or net.dns_domain) or D.running_pid(files) is not None:
                continue
            async with m.locks.hold(NetworkKey(n.name), "dnsmasq restart"):
                if not (cur := m.db.get(n.name)) or not cur.active:
                    continue
                log.warning("dnsmasq of network %s is gone; restarting it", n.name)
                try:
                    await _thread(D.start, net, files)
                    m.svc.bus.publish(f"network/{n.name}", "dnsmasq-restarted", "")
                except VirtkitError as exc:
                    log.error("cannot restart dnsmasq of %s: %s", n.name, exc.message)
