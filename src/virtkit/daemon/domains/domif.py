"""A domain's interfaces: domiflist, domifaddr, domifstat, and user-mode port forwards.

domifaddr's sources (virsh's ``--source``): ``lease`` reads the dnsmasq lease file of the
NIC's managed network, ``arp`` the kernel's ARP table (any tapped NIC that has talked to
the host), ``agent`` needs a QEMU guest agent channel, which virtkit guests do not have yet.

port-forward adds/removes QEMU ``hostfwd`` rules of a user-mode NIC: on the running guest
through the monitor (``hostfwd_add``/``hostfwd_remove``), in the definition, or both
(virsh's --live/--config rules, see hotplug.scope).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from virtkit.daemon.hotplug.disks import (
    live_domain,
    monitor,
    scope,
    set_config,
    set_live,
    validated,
)
from virtkit.daemon.locks import DomainKey
from virtkit.errors import ConfigError, NotFoundError, QmpError, StateError
from virtkit.model.domain import Domain, Nic, NicType
from virtkit.model.portfwd import hostfwd_key, parse_hostfwd
from virtkit.network import bridge as B
from virtkit.qemu.argv import tap_name

if TYPE_CHECKING:
    from virtkit.daemon.service import Entry, Service

SOURCES = ("lease", "arp", "agent")


def _current(e: Entry) -> Domain:
    return live_domain(e) if e.active else e.domain


def _iface(dom: Domain, i: int, nic: Nic, running: bool) -> str:
    if nic.type is NicType.USER or not running:
        return "-"
    return tap_name(dom, i)


def iflist(svc: Service, name: str) -> list[dict[str, Any]]:
    e = svc.entry(name)
    dom = _current(e)
    return [{"interface": _iface(dom, i, n, e.active), "type": str(n.type),
             "source": n.source or "", "model": str(n.model), "mac": n.mac or "",
             "hostfwd": n.hostfwd} for i, n in enumerate(dom.nics)]  # fmt: skip


async def ifaddr(svc: Service, name: str, source: str = "lease") -> list[dict[str, Any]]:
    if source not in SOURCES:
        raise ConfigError(f"unknown address source {source!r}; use one of {', '.join(SOURCES)}")
    e = svc.entry(name)
    if not e.active:
        raise StateError(f"domain {name!r} is not running", current=str(e.state),
                         required="running")  # fmt: skip
    if source == "agent":
        raise StateError(
            f"domain {name!r} has no guest agent channel; use --source lease (managed "
            "networks) or --source arp", current="no agent", required="guest agent",
        )  # fmt: skip
    dom = live_domain(e)
    out = []
    if source == "lease":
        from virtkit.daemon.network.service import manager

        m = manager(svc)
        for i, nic in enumerate(dom.nics):
            if nic.type is not NicType.NETWORK or not nic.source or not nic.mac:
                continue
            if m.db.get(nic.source) is None:
                continue
            for lease in m.leases(nic.source, nic.mac):
                out.append({"name": tap_name(dom, i), "mac": nic.mac, "type": "ipv4",
                            "address": lease["address"], "prefix": lease["prefix"]})  # fmt: skip
        return out
    arp = await asyncio.to_thread(B.arp_table)
    for i, nic in enumerate(dom.nics):
        if nic.type is NicType.USER or not nic.mac or nic.mac not in arp:
            continue
        ip, _dev = arp[nic.mac]
        out.append({"name": tap_name(dom, i), "mac": nic.mac, "type": "ipv4", "address": ip,
                    "prefix": 0})  # fmt: skip
    return out


def ifstat(svc: Service, name: str, interface: str | None = None) -> list[dict[str, Any]]:
    """Counters seen from the guest (a tap's tx is the guest's rx), per tapped NIC."""
    from virtkit.daemon.domains.stats import Host, net_stats

    e = svc.entry(name)
    if not e.active:
        raise StateError(f"domain {name!r} is not running", current=str(e.state),
                         required="running")  # fmt: skip
    dom = live_domain(e)
    st = net_stats(dom, Host())
    out = []
    for i, nic in enumerate(dom.nics):
        dev = str(st.get(f"net.{i}.name", ""))
        if interface is not None and interface not in (dev, nic.mac):
            continue
        if nic.type is NicType.USER:
            if interface is not None:
                raise ConfigError(
                    f"interface {interface} of {name!r} is user-mode: QEMU keeps no counters "
                    "for it that virtkit can read cheaply"
                )
            continue
        row: dict[str, Any] = {"interface": dev, "mac": nic.mac}
        for d in ("rx", "tx"):
            for what, key in (("bytes", "bytes"), ("packets", "pkts"), ("errs", "errs"),
                              ("drop", "drop")):  # fmt: skip
                row[f"{d}_{what}"] = int(st.get(f"net.{i}.{d}.{key}", 0))
        out.append(row)
    if interface is not None and not out:
        raise NotFoundError(f"domain {name!r} has no interface {interface!r}; see domiflist")
    return out


# -- port forwards ----------------------------------------------------------------------------


def _user_nic(dom: Domain, mac: str | None, where: str) -> tuple[int, Nic]:
    found = [(i, n) for i, n in enumerate(dom.nics) if n.type is NicType.USER
             and (mac is None or n.mac == mac.lower())]  # fmt: skip
    if not found:
        what = f" with MAC {mac}" if mac else ""
        raise NotFoundError(f"{where} has no user-mode interface{what}; port forwards need "
                            "--network user")  # fmt: skip
    if len(found) > 1:
        raise ConfigError(f"{where} has several user-mode interfaces; choose one with --mac")
    return found[0]


def _changed(nic: Nic, add: list[str], remove: list[str]) -> list[str]:
    rules = list(nic.hostfwd)
    for r in remove:
        key = hostfwd_key(r if "-" in r else r + "-:1")
        if not any(hostfwd_key(x) == key for x in rules):
            raise NotFoundError(f"no port forward {key} on this interface (have: "
                                f"{', '.join(rules) or 'none'})")  # fmt: skip
        rules = [x for x in rules if hostfwd_key(x) != key]
    for r in add:
        if any(hostfwd_key(x) == hostfwd_key(r) for x in rules):
            raise ConfigError(f"host port {hostfwd_key(r)} is already forwarded; remove it first")
        rules.append(r)
    return rules


def _canon_remove(r: str) -> str:
    """``tcp::2222`` or a full rule -> its canonical key form ``tcp::2222-:1``."""
    full = r if "-" in r else r + "-:1"
    try:
        return parse_hostfwd(full)
    except ValueError as exc:
        raise ConfigError(str(exc).replace("-:1", "")) from None


async def port_forward(svc: Service, name: str, add: list[str], remove: list[str], *,
                       mac: str | None = None, live: bool = False, config: bool = False,
                       persistent: bool = False) -> dict[str, Any]:  # fmt: skip
    try:
        add = [parse_hostfwd(r) for r in add]
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    remove = [_canon_remove(r) for r in remove]
    async with svc.locks.hold(DomainKey(name), "port-forward"):
        e = svc.entry(name)
        if not add and not remove:
            dom = _current(e)
            i, nic = _user_nic(dom, mac, f"domain {name!r}")
            return {"mac": nic.mac, "rules": nic.hostfwd, "live": e.active, "config": False}
        sc = scope(e, live, config, persistent)
        new_cfg = None
        if sc.config:
            i, nic = _user_nic(e.domain, mac, f"the definition of {name!r}")
            nics = [n.model_dump(mode="json", exclude_defaults=True) for n in e.domain.nics]
            nics[i]["hostfwd"] = _changed(nic, add, remove)
            new_cfg = validated(e.domain, nics=nics)
        rules: list[str] = []
        if sc.live:
            cur = live_domain(e)
            i, nic = _user_nic(cur, mac, f"the running guest of {name!r}")
            rules = _changed(nic, add, remove)
            await _apply_live(monitor(e), await _netdev(e, nic, i), add, remove)
            live_nics = list(cur.nics)
            live_nics[i] = nic.model_copy(update={"hostfwd": rules})
            set_live(svc, e, cur.model_copy(update={"nics": live_nics}))
        if new_cfg is not None:
            set_config(svc, e, new_cfg)
            if not rules:
                rules = _user_nic(new_cfg, mac, name)[1].hostfwd
        svc.bus.publish(name, "port-forward", f"+{add} -{[hostfwd_key(r) for r in remove]}")
    return {"mac": nic.mac, "rules": rules, "live": sc.live, "config": sc.config}


async def _netdev(e: Entry, nic: Nic, i: int) -> str:
    """The QEMU netdev id of the NIC (hot-plugged NICs keep their own index)."""
    from virtkit.daemon.hotplug.nic import live_nics

    found = (await live_nics(monitor(e))).get(nic.mac or "")
    return f"net{i if found is None else found}"


async def _apply_live(mon: Any, netdev: str, add: list[str], remove: list[str]) -> None:
    done: list[str] = []
    try:
        for r in remove:
            await _hmp(mon, f"hostfwd_remove {netdev} {hostfwd_key(r)}")
        for r in add:
            await _hmp(mon, f"hostfwd_add {netdev} {r}")
            done.append(r)
    except BaseException:
        for r in done:  # put the guest back the way it was (removals are not redone)
            with contextlib.suppress(QmpError):
                await _hmp(mon, f"hostfwd_remove {netdev} {hostfwd_key(r)}")
        raise


async def _hmp(mon: Any, line: str) -> None:
    reply = await mon.execute("human-monitor-command", {"command-line": line})
    text = str(reply or "").strip()
    # hostfwd_add answers nothing on success, hostfwd_remove "host forwarding rule ... removed"
    if text and not (line.startswith("hostfwd_remove") and text.endswith(" removed")):
        if "could not set up host forwarding" in text.lower() or "bind" in text.lower():
            raise ConfigError(f"QEMU cannot forward: {text} (is the host port already in use?)")
        raise QmpError(f"QEMU refused `{line}`: {text}")
