"""attach-interface / detach-interface: NIC hot plug (QMP netdev_add + device_add; bridged
and managed-network NICs get their tap from network/taps.py first, pyroute2 running in an
executor; a network NIC's tap joins the network's bridge, where its dnsmasq serves it).

QEMU ids and QMP arguments come from qemu/ids.py and qemu/devices.py (as on the command
line): netdev ``net<i>``, device ``nic<i>``. A hot-plugged NIC takes
the first index no device uses; NICs are found again by MAC (qom-get), which survives
detaches that shift positions in the domain's NIC list."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from virtkit.daemon.hotplug.disks import (
    device_add_pci,
    last_seq,
    live_domain,
    monitor,
    scope,
    set_config,
    set_live,
    validated,
    wait_deleted,
)
from virtkit.daemon.locks import DomainKey
from virtkit.errors import ConfigError, NotFoundError, QmpError
from virtkit.model.domain import Domain, Nic, NicType
from virtkit.network import taps
from virtkit.qemu import ids
from virtkit.qemu.argv import tap_name
from virtkit.qemu.devices import nic_records
from virtkit.qemu.qmp import Monitor

if TYPE_CHECKING:
    from virtkit.daemon.service import Service

PERIPHERAL = "/machine/peripheral"


async def live_nics(mon: Monitor) -> dict[str, int]:
    """MAC -> index i of the running guest's NIC devices ``nic<i>``."""
    out: dict[str, int] = {}
    for item in await mon.execute("qom-list", {"path": PERIPHERAL}):
        name = str(item.get("name", ""))
        i = ids.nic_index(name)
        if i is not None:
            mac = await mon.execute("qom-get", {"path": f"{PERIPHERAL}/{name}", "property": "mac"})
            out[str(mac).lower()] = i
    return out


def _tap_domain(dom: Domain, i: int, nic: Nic) -> Domain:
    """A stand-in whose only bridged NIC sits at index ``i`` (taps.* name taps by index)."""
    return dom.model_copy(update={"nics": [*([Nic()] * i), nic]})


async def _in_executor(fn: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def attach_interface(
    svc: Service,
    name: str,
    type_: str,
    source: str | None = None,
    *,
    model: str = "virtio",
    mac: str | None = None,
    live: bool = False,
    config: bool = False,
    persistent: bool = False,
) -> dict[str, Any]:
    try:
        nic = Nic(type=type_, source=source, model=model, mac=mac or svc.new_mac())
    except ValueError as exc:
        raise ConfigError(f"bad interface for attach-interface: {exc}") from None
    if nic.type is NicType.BRIDGE:
        taps.check_bridges(Domain(name="check", nics=[nic]))
    async with svc.locks.hold(DomainKey(name), "attach-interface"):
        e = svc.entry(name)
        sc = scope(e, live, config, persistent)
        nets: dict[str, str] = {}
        if nic.type is NicType.NETWORK:  # defined (live: active, its MAC free on it)
            from virtkit.daemon.network.service import bridges_for

            probe = e.domain.model_copy(update={"nics": [nic]})
            nets = await bridges_for(svc, probe)
            if sc.live:
                taps.check_bridges(probe, nets)
        new_cfg = None
        if sc.config:
            nics = [n.model_dump(mode="json", exclude_defaults=True) for n in e.domain.nics]
            new_cfg = validated(e.domain, nics=[*nics, nic.model_dump(mode="json")])
        if sc.live:
            cur = live_domain(e)
            mon = monitor(e)
            used = await live_nics(mon)
            if nic.mac in used:
                raise ConfigError(f"MAC {nic.mac} is already used by a NIC of {name!r}")
            i = len(cur.nics)
            while i in used.values():
                i += 1
            await _plug(mon, cur, i, nic, nets, owner=e.sup.record.qemu_uid if e.sup else None)
            set_live(svc, e, cur.model_copy(update={"nics": [*cur.nics, nic]}))
        if new_cfg is not None:
            set_config(svc, e, new_cfg)
        svc.bus.publish(name, "device-attached", f"interface {nic.type} {nic.mac}")
    return {"mac": nic.mac, "type": str(nic.type), "live": sc.live, "config": sc.config}


async def _plug(mon: Monitor, dom: Domain, i: int, nic: Nic, nets: dict[str, str],
                owner: int | None = None) -> None:  # fmt: skip
    stand_in = _tap_domain(dom, i, nic)
    if taps.tapped(nic):
        await _in_executor(lambda: taps.create_taps(stand_in, nets, owner=owner))
    netdev, dev = nic_records(i, nic, tap_name(dom, i))  # as on a command line
    try:
        await mon.execute("netdev_add", netdev.qmp())
        try:
            await device_add_pci(mon, dom, dev.qmp())
        except BaseException:
            with contextlib.suppress(QmpError):
                await mon.execute("netdev_del", {"id": netdev.id})
            raise
    except BaseException:
        await _in_executor(taps.remove_taps, stand_in)
        raise


def _pick(nics: list[Nic], type_: str, mac: str | None, where: str) -> Nic:
    found = [n for n in nics if str(n.type) == type_ and (mac is None or n.mac == mac.lower())]
    if not found:
        raise NotFoundError(f"no {type_} interface{f' with MAC {mac}' if mac else ''} in {where}")
    if len(found) > 1:
        raise ConfigError(f"{where} has several {type_} interfaces; choose one with --mac")
    return found[0]


async def detach_interface(
    svc: Service,
    name: str,
    type_: str,
    *,
    mac: str | None = None,
    live: bool = False,
    config: bool = False,
    persistent: bool = False,
) -> dict[str, Any]:
    async with svc.locks.hold(DomainKey(name), "detach-interface"):
        e = svc.entry(name)
        sc = scope(e, live, config, persistent)
        cfg_nic = (
            _pick(e.domain.nics, type_, mac, f"the definition of {name!r}") if sc.config else None
        )
        if sc.live:
            cur = live_domain(e)
            nic = _pick(cur.nics, type_, mac, f"the running guest of {name!r}")
            mon = monitor(e)
            i = (await live_nics(mon)).get(nic.mac or "")
            if i is None:
                raise NotFoundError(f"QEMU has no device for interface {nic.mac} of {name!r}")
            after = last_seq(svc)
            await mon.execute("device_del", {"id": ids.nic_device(i)})
            await wait_deleted(svc, name, ids.nic_device(i), after)
            with contextlib.suppress(QmpError):
                await mon.execute("netdev_del", {"id": ids.netdev(i)})
            if taps.tapped(nic):
                await _in_executor(taps.remove_taps, _tap_domain(cur, i, nic))
            set_live(svc, e, cur.model_copy(update={"nics": [n for n in cur.nics if n is not nic]}))
        if cfg_nic is not None:
            set_config(
                svc,
                e,
                e.domain.model_copy(
                    update={"nics": [n for n in e.domain.nics if n is not cfg_nic]}
                ),
            )
        svc.bus.publish(name, "device-detached", f"interface {type_}")
    return {"live": sc.live, "config": sc.config}
