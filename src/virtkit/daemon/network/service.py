"""Managed networks as the daemon serves them (virsh's net-* verbs).

One :class:`NetworkManager` per Service (``manager(svc)``). A running network is a bridge
with the host's address (network/bridge.py), an nftables table (network/firewall.py) and,
with DHCP, a dnsmasq (network/dnsmasq.py) — each step of ``start`` is undone if a later one
fails, and ``destroy`` removes all three. Both refuse to act on what running guests use.

At daemon start ``reconcile`` (daemon/network/watch.py) adopts what still runs, rebuilds what
is missing and tears down leftovers; a watchdog restarts a dnsmasq that died.

The ``default`` network (NAT, 192.168.122.0/24 like libvirt's virbr0) is defined the first
time something asks for it in system mode, on a free subnet if that one is taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from virtkit.daemon.locks import NetworkKey
from virtkit.daemon.network.store import NetStore, StoredNetwork
from virtkit.errors import ConfigError, HostError, NotFoundError, StateError
from virtkit.formats.netfile import network_from_mapping, network_from_text, network_to_mapping
from virtkit.model.domain import Domain, NicType
from virtkit.model.network import (
    DEFAULT_NETWORK,
    DEFAULT_SUBNET,
    Network,
    default_network,
    overlapping,
    pick_bridge,
    pick_subnet,
)
from virtkit.network import bridge as B
from virtkit.network import dnsmasq as D
from virtkit.network import firewall as F

if TYPE_CHECKING:
    from virtkit.daemon.service import Service

log = logging.getLogger("virtkit.networks")
WATCHDOG_S = 2.0
MARKER = "bridge.active"  # written at start: what to tear down if the daemon forgets
_MANAGERS: weakref.WeakKeyDictionary[Service, NetworkManager] = weakref.WeakKeyDictionary()


def manager(svc: Service) -> NetworkManager:
    m = _MANAGERS.get(svc)
    if m is None:
        m = _MANAGERS[svc] = NetworkManager(svc)
    return m


async def bridges_for(svc: Service, dom: Domain) -> dict[str, str]:
    """Service.start: network name -> bridge of ``dom``'s managed-network NICs."""
    if not any(n.type is NicType.NETWORK for n in dom.nics):
        return {}
    return await manager(svc).bridges_for(dom)


async def _thread(fn: Callable[..., Any], *args: Any) -> Any:
    # pyroute2 runs its own event loop and subprocesses block: keep both off ours
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


class NetworkManager:
    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.db = NetStore(svc.store)
        self.locks = svc.locks
        self._defining = asyncio.Lock()  # the default network is defined once
        self.notes: dict[str, str] = {}  # name -> what the user should know (subnet moved)
        self.watchdog: asyncio.Task[None] | None = None

    # -- lookups ---------------------------------------------------------------------------

    def files(self, name: str) -> D.Files:
        return D.Files(self.svc.paths.state_dir / "networks" / name)

    def stored(self, name: str) -> StoredNetwork:
        n = self.db.get(name)
        if n is None:
            raise NotFoundError(
                f"network {name!r} not found; `virtkit net-list --all` shows the networks"
            )
        return n

    def network(self, stored: StoredNetwork) -> Network:
        return network_from_mapping(stored.config, f"stored network {stored.name}")

    async def lookup(self, name: str) -> StoredNetwork:
        """The network ``name``; ``default`` is defined on first use in system mode."""
        if name == DEFAULT_NETWORK and self.db.get(name) is None:
            await self.ensure_default()
        return self.stored(name)

    def users(self, name: str, running_only: bool = True) -> list[str]:
        """Domains with a NIC on network ``name`` (running ones: as they booted)."""
        out = []
        for e in self.svc.entries.values():
            if e.sup is not None and e.sup.alive:
                nics = e.sup.record.domain.get("nics", [])
                used = any(n.get("type") == "network" and n.get("source") == name for n in nics)
            elif running_only:
                continue
            else:
                used = any(n.type is NicType.NETWORK and n.source == name for n in e.domain.nics)
            if used:
                out.append(e.domain.name)
        return sorted(out)

    # -- define / undefine -----------------------------------------------------------------

    def _check_clash(self, net: Network, others: list[Network]) -> None:
        for o in others:
            if o.bridge and o.bridge == net.bridge:
                raise ConfigError(
                    f"bridge name {net.bridge!r} is already used by network {o.name!r}; "
                    "choose another bridge: (or leave it out to get a free virbrN)"
                )
        clash = overlapping(net.subnet, [(f"network {o.name!r} ({o.subnet})", o.subnet)
                                         for o in others])  # fmt: skip
        if clash:
            raise ConfigError(
                f"subnet {net.subnet} of network {net.name!r} overlaps {', '.join(clash)}; "
                "choose a subnet no other network uses"
            )

    async def define(self, text: str | None = None, config: dict[str, Any] | None = None,
                     source: str = "network", persistent: bool = True) -> Network:  # fmt: skip
        if text is not None:
            net = network_from_text(text, source)
        else:
            net = network_from_mapping(config or {}, source)
        async with self.locks.hold(NetworkKey(net.name), "net-define"):
            existing = self.db.get(net.name)
            others = [self.network(n) for n in self.db.all() if n.name != net.name]
            if net.bridge is None:
                keep = self.network(existing).bridge if existing else None
                used = [*B.link_names(), *(o.bridge or "" for o in others)]
                net = net.model_copy(update={"bridge": keep or pick_bridge(used)})
            self._check_clash(net, others)
            if existing is not None:
                if net.uuid is not None and net.uuid != existing.uuid:
                    raise ConfigError(
                        f"network {net.name!r} already exists (uuid {existing.uuid}); "
                        "undefine it first, or keep its uuid"
                    )
                if existing.active:
                    raise StateError(
                        f"network {net.name!r} is active; destroy it before redefining it",
                        current="active", required="inactive",
                    )  # fmt: skip
                net = net.model_copy(update={"uuid": existing.uuid})
                self.db.update(net.name, network_to_mapping(net))
                if persistent and not existing.persistent:
                    self.db.set(net.name, persistent=True)
                return net
            uuids = {n.uuid for n in self.db.all()}
            if net.uuid is not None and net.uuid in uuids:
                raise ConfigError(f"uuid {net.uuid} is already used by another network")
            net = net.model_copy(update={"uuid": net.uuid or self.svc.new_uuid()})
            self.db.insert(net.name, net.uuid or "", network_to_mapping(net), persistent)
        self.svc.bus.publish(f"network/{net.name}", "defined", "added")
        return net

    async def undefine(self, name: str) -> None:
        async with self.locks.hold(NetworkKey(name), "net-undefine"):
            n = self.stored(name)
            if n.active:
                busy = self.users(name)
                who = f" (running domains {', '.join(busy)} use it)" if busy else ""
                raise StateError(
                    f"network {name!r} is active{who}; destroy it with `virtkit net-destroy "
                    f"{name}` before undefining it", current="active", required="inactive",
                )  # fmt: skip
            self.db.delete(name)
            with contextlib.suppress(OSError):
                shutil.rmtree(self.files(name).dir)
        self.svc.bus.publish(f"network/{name}", "undefined", "removed")

    def set_autostart(self, name: str, enabled: bool) -> None:
        n = self.stored(name)
        if not n.persistent:
            raise StateError(f"network {name!r} is transient; it cannot autostart",
                             current="transient", required="persistent")  # fmt: skip
        self.db.set(name, autostart=enabled)

    async def ensure_default(self, start: bool = False) -> None:
        """Define ``default`` once (system mode), on a subnet the host does not use;
        ``start``: and start it (a guest asked for it). Concurrent callers wait."""
        if self.svc.paths.mode != "system" or self.db.get_meta("default_network"):
            return
        async with self._defining:
            if self.db.get_meta("default_network"):
                return
            await self._create_default()
            if start:
                await self.start(DEFAULT_NETWORK)

    async def _create_default(self) -> None:
        others = [self.network(n) for n in self.db.all()]
        host = await _thread(B.host_subnets)
        used = [net for _, net in host] + [o.subnet for o in others]
        try:
            subnet = pick_subnet(used)
        except ValueError as exc:
            raise HostError(f"cannot create the default network: {exc}") from None
        bridge = pick_bridge([*B.link_names(), *(o.bridge or "" for o in others)])
        net = default_network(subnet, bridge)
        if subnet != DEFAULT_SUBNET:
            clash = overlapping(DEFAULT_SUBNET, [*host, *((f"network {o.name}", o.subnet)
                                                          for o in others)])  # fmt: skip
            note = (f"{DEFAULT_SUBNET} is in use on this host ({', '.join(clash)}); the default "
                    f"network uses {subnet} instead")  # fmt: skip
            self.notes[DEFAULT_NETWORK] = note
            log.warning("%s", note)
            self.svc.bus.publish(f"network/{DEFAULT_NETWORK}", "subnet-moved", note)
        await self.define(config=network_to_mapping(net), source="default network")
        self.db.set(DEFAULT_NETWORK, autostart=True)
        self.db.set_meta("default_network", "created")

    # -- start / destroy -------------------------------------------------------------------

    async def start(self, name: str) -> dict[str, Any]:
        n = await self.lookup(name)
        async with self.locks.hold(NetworkKey(name), "net-start"):
            n = self.stored(name)
            if n.active:
                raise StateError(f"network {name!r} is already active", current="active",
                                 required="inactive")  # fmt: skip
            await self.bring_up(self.network(n))
            self.db.set(name, active=True)
        self.svc.bus.publish(f"network/{name}", "started", "")
        self._ensure_watchdog()
        return self.view(self.stored(name))

    async def bring_up(self, net: Network) -> None:
        """Bridge, then firewall, then dnsmasq; a failing step undoes the earlier ones."""
        assert net.bridge is not None
        if os.geteuid() != 0:
            raise HostError(
                f"network {net.name!r}: managed networks need a system daemon (root) to make "
                "bridges and firewall rules; session guests use --network user (with "
                "hostfwd= port forwards)"
            )
        if B.link_exists(net.bridge):
            raise ConfigError(
                f"bridge name {net.bridge!r} is already used by a device on this host; give "
                f"network {net.name!r} another bridge: name (net-define with bridge: ...)"
            )
        host = await _thread(B.host_subnets)
        clash = overlapping(net.subnet, host)
        if clash:
            raise ConfigError(
                f"subnet {net.subnet} of network {net.name!r} overlaps {', '.join(clash)} on "
                "this host; redefine the network with a free subnet"
            )
        files = self.files(net.name)
        undo: list[Callable[[], Any]] = []
        try:
            files.dir.mkdir(parents=True, exist_ok=True)
            (files.dir / MARKER).write_text(net.bridge + "\n")
            undo.append(lambda: (files.dir / MARKER).unlink(missing_ok=True))
            await _thread(B.create_bridge, net)
            undo.append(lambda: B.delete_bridge(net.bridge or ""))
            await _thread(B.enable_forwarding, net)
            await _thread(F.apply, net)
            undo.append(lambda: F.remove(net.bridge or ""))
            if net.dhcp or net.dns_domain:
                await _thread(D.start, net, files)
                undo.append(lambda: D.stop(files))
        except BaseException:
            for step in reversed(undo):
                with contextlib.suppress(Exception):
                    await _thread(step)
            raise

    async def tear_down(self, name: str, bridge: str) -> None:
        files = self.files(name)
        await _thread(D.stop, files)
        await _thread(F.remove, bridge)
        await _thread(B.delete_bridge, bridge)
        (files.dir / MARKER).unlink(missing_ok=True)

    async def destroy(self, name: str) -> dict[str, Any]:
        async with self.locks.hold(NetworkKey(name), "net-destroy"):
            n = self.stored(name)
            if not n.active:
                raise StateError(f"network {name!r} is not active", current="inactive",
                                 required="active")  # fmt: skip
            busy = self.users(name)
            if busy:
                raise StateError(
                    f"network {name!r} is in use by running domain(s) {', '.join(busy)}; "
                    "shut them down (or detach their interfaces) first",
                    current="in use", required="unused",
                )  # fmt: skip
            await self.tear_down(name, self.network(n).bridge or "")
            self.db.set(name, active=False)
            if not n.persistent:
                self.db.delete(name)
        self.svc.bus.publish(f"network/{name}", "stopped", "destroyed")
        out = self.view(n) | {"active": False}
        return out

    # -- reconcile and watchdog (daemon/network/watch.py) ---------------------------------------

    async def reconcile(self) -> None:
        from virtkit.daemon.network.watch import reconcile

        await reconcile(self)

    def _ensure_watchdog(self) -> None:
        from virtkit.daemon.network.watch import ensure_watchdog

        ensure_watchdog(self)

    # -- domains -----------------------------------------------------------------------------

    async def bridges_for(self, dom: Domain) -> dict[str, str]:
        """network name -> bridge for ``dom``'s network NICs: each network must be active
        (``default`` is defined and started on first use) and no MAC may be on it twice."""
        wanted = {n.source for n in dom.nics if n.type is NicType.NETWORK and n.source}
        out: dict[str, str] = {}
        for name in sorted(wanted):
            if name == DEFAULT_NETWORK and self.db.get(name) is None:
                await self.ensure_default(start=True)
            n = self.db.get(name)
            if n is None:
                hint = ("; managed networks belong to the system daemon (virtkit:///system), "
                        "session guests use --network user"
                        if self.svc.paths.mode == "session" else "")  # fmt: skip
                raise ConfigError(
                    f"network {name!r} is not defined; `virtkit net-list --all` lists the "
                    f"networks (define one with `virtkit net-define FILE`){hint}"
                )
            if not n.active:
                continue  # taps.check_bridges says how to start it
            out[name] = self.network(n).bridge or ""
            mine = {nic.mac for nic in dom.nics if nic.type is NicType.NETWORK
                    and nic.source == name}  # fmt: skip
            for other in self.users(name):
                if other == dom.name:
                    continue
                e = self.svc.entries[other]
                assert e.sup is not None
                for nic in e.sup.record.domain.get("nics", []):
                    if nic.get("source") == name and nic.get("mac") in mine:
                        raise ConfigError(
                            f"MAC {nic.get('mac')} is already used on network {name!r} by "
                            f"running domain {other!r}; give this interface another mac:"
                        )
        return out

    # -- views -----------------------------------------------------------------------------

    def view(self, n: StoredNetwork) -> dict[str, Any]:
        net = self.network(n)
        pid = D.running_pid(self.files(n.name)) if n.active else None
        return {
            "name": n.name, "uuid": n.uuid, "active": n.active, "autostart": n.autostart,
            "persistent": n.persistent, "mode": str(net.mode), "bridge": net.bridge,
            "address": net.address, "subnet": str(net.subnet), "dhcp": net.dhcp,
            "dhcp_start": net.dhcp_start, "dhcp_end": net.dhcp_end, "dnsmasq_pid": pid,
            "users": self.users(n.name, running_only=False), "note": self.notes.get(n.name, ""),
        }  # fmt: skip

    def leases(self, name: str, mac: str | None = None) -> list[dict[str, Any]]:
        n = self.stored(name)
        if not n.active:
            return []
        net = self.network(n)
        out = []
        for lease in D.read_leases(self.files(name)):
            if mac is not None and lease.mac != mac.lower():
                continue
            out.append({"expiry": lease.expiry, "mac": lease.mac, "type": "ipv4",
                        "address": lease.ip, "prefix": net.subnet.prefixlen,
                        "hostname": lease.hostname, "client_id": lease.client_id,
                        "interface": net.bridge})  # fmt: skip
        return out
