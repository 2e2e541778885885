"""virsh's network verbs (net-*) and interface verbs (domiflist, domifaddr, domifstat), plus
``port-forward`` for user-mode NICs. Same words and output shapes as virsh.

Imported by cli/main.py to register the verbs: stdlib and cli helpers only at import time.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from virtkit.cli.main import DOMAIN, a, args, client, command, say, warn
from virtkit.cli.storage import kv, table
from virtkit.errors import ConfigError

NET = a("network", help="network name")


def _read(path: str) -> tuple[str, str]:
    if path == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(1 << 20 + 1), path
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text file (YAML, JSON or XML expected)") from None


def _yn(v: bool) -> str:
    return "yes" if v else "no"


def _note(d: dict[str, Any]) -> None:
    if d.get("note"):
        warn(f"note: {d['note']}")


@args(a("file", help="network file: our YAML/JSON, or libvirt network XML ('-': stdin)"))
@command("net-define", "define a network from a file (YAML, JSON or libvirt network XML)")
def cmd_net_define(ns: argparse.Namespace) -> int:
    text, source = _read(ns.file)
    d = client(ns).define_network(text=text, source=source)
    say(f"Network {d['name']} defined from {ns.file}")
    return 0


@args(a("file", help="network file (YAML, JSON or libvirt network XML)"))
@command("net-create", "create and start a transient network from a file")
def cmd_net_create(ns: argparse.Namespace) -> int:
    text, source = _read(ns.file)
    d = client(ns).define_network(text=text, source=source, start=True)
    say(f"Network {d['name']} created from {ns.file}")
    return 0


@args(a("name", help="network name"),
      a("--mode", default="nat", choices=["nat", "routed", "isolated"], help="forward mode"),
      a("--address", required=True, help="the host's address on the bridge, e.g. 10.0.5.1/24"),
      a("--bridge", default=None, help="bridge name (default: the first free virbrN)"),
      a("--dhcp-start", default=None), a("--dhcp-end", default=None),
      a("--no-dhcp", action="store_true", help="no DHCP server on this network"),
      a("--forward-dev", default=None, help="nat/routed: leave only through this interface"),
      a("--domain", default=None, help="DNS domain of the guests"))  # fmt: skip
@command("net-define-as", "define a network from options")
def cmd_net_define_as(ns: argparse.Namespace) -> int:
    cfg: dict[str, Any] = {"name": ns.name, "mode": ns.mode, "address": ns.address}
    for key, value in (("bridge", ns.bridge), ("dhcp_start", ns.dhcp_start),
                       ("dhcp_end", ns.dhcp_end), ("forward_dev", ns.forward_dev),
                       ("dns_domain", ns.domain)):  # fmt: skip
        if value is not None:
            cfg[key] = value
    if ns.no_dhcp:
        cfg["dhcp"] = False
    d = client(ns).define_network(config=cfg, source="net-define-as")
    say(f"Network {d['name']} defined (bridge {d['bridge']}, {d['subnet']})")
    return 0


@args(a("--all", action="store_true", help="include inactive networks"),
      a("--inactive", action="store_true", help="only inactive networks"),
      a("--name", action="store_true", help="print only names"))  # fmt: skip
@command("net-list", "list networks")
def cmd_net_list(ns: argparse.Namespace) -> int:
    rows = client(ns).list_networks(ns.all or ns.inactive)
    if ns.inactive:
        rows = [r for r in rows if not r["active"]]
    if ns.name:
        for r in rows:
            say(r["name"])
        return 0
    sys.stdout.write(table(["Name", "State", "Autostart", "Persistent"], [
        [r["name"], "active" if r["active"] else "inactive", _yn(r["autostart"]),
         _yn(r["persistent"])] for r in rows]))  # fmt: skip
    return 0


@args(NET)
@command("net-start", "start a (defined) network")
def cmd_net_start(ns: argparse.Namespace) -> int:
    d = client(ns).network_action(ns.network, "start")
    _note(d)
    say(f"Network {ns.network} started")
    return 0


@args(NET)
@command("net-destroy", "stop a network (bridge, firewall rules and dnsmasq go away)")
def cmd_net_destroy(ns: argparse.Namespace) -> int:
    client(ns).network_action(ns.network, "destroy")
    say(f"Network {ns.network} destroyed")
    return 0


@args(NET)
@command("net-undefine", "remove a network's definition")
def cmd_net_undefine(ns: argparse.Namespace) -> int:
    client(ns).undefine_network(ns.network)
    say(f"Network {ns.network} has been undefined")
    return 0


@args(NET, a("--disable", action="store_true", help="do not start with the daemon"))
@command("net-autostart", "start a network when the daemon starts")
def cmd_net_autostart(ns: argparse.Namespace) -> int:
    client(ns).network_autostart(ns.network, not ns.disable)
    say(f"Network {ns.network} {'unmarked' if ns.disable else 'marked'} as autostarted")
    return 0


@args(NET)
@command("net-info", "network information")
def cmd_net_info(ns: argparse.Namespace) -> int:
    d = client(ns).network_info(ns.network)
    dhcp = f"{d['dhcp_start']} - {d['dhcp_end']}" if d["dhcp"] else "off"
    sys.stdout.write(kv([
        ("Name", d["name"]), ("UUID", d["uuid"]), ("Active", _yn(d["active"])),
        ("Persistent", _yn(d["persistent"])), ("Autostart", _yn(d["autostart"])),
        ("Bridge", d["bridge"] or "-"), ("Mode", d["mode"]), ("Address", d["address"]),
        ("DHCP", dhcp), ("Used by", ", ".join(d["users"]) or "-"),
    ]))  # fmt: skip
    _note(d)
    return 0


@args(NET)
@command("net-dumpxml", "the network as libvirt network XML")
def cmd_net_dumpxml(ns: argparse.Namespace) -> int:
    sys.stdout.write(client(ns).network_xml(ns.network))
    return 0


@args(NET)
@command("net-dumpconfig", "the network in our YAML format")
def cmd_net_dumpconfig(ns: argparse.Namespace) -> int:
    import yaml

    sys.stdout.write(yaml.safe_dump(client(ns).network_config(ns.network), sort_keys=False))
    return 0


@args(NET, a("--mac", default=None, help="only this MAC address"))
@command("net-dhcp-leases", "DHCP leases of a network")
def cmd_net_dhcp_leases(ns: argparse.Namespace) -> int:
    rows = client(ns).network_leases(ns.network, ns.mac)
    sys.stdout.write(table(
        ["Expiry Time", "MAC address", "Protocol", "IP address", "Hostname", "Client ID or DUID"],
        [[time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["expiry"])), r["mac"], r["type"],
          f"{r['address']}/{r['prefix']}", r["hostname"] or "-", r["client_id"] or "-"]
         for r in rows]))  # fmt: skip
    return 0


# -- a domain's interfaces ----------------------------------------------------------------------


@args(DOMAIN)
@command("domiflist", "list a domain's network interfaces")
def cmd_domiflist(ns: argparse.Namespace) -> int:
    rows = client(ns).interfaces(ns.domain)
    sys.stdout.write(table(["Interface", "Type", "Source", "Model", "MAC"], [
        [r["interface"], r["type"], r["source"] or "-", r["model"], r["mac"]]
        for r in rows]))  # fmt: skip
    return 0


@args(DOMAIN, a("--source", default="lease", choices=["lease", "arp", "agent"],
                help="where addresses come from (default: DHCP leases)"))  # fmt: skip
@command("domifaddr", "a running domain's interface addresses")
def cmd_domifaddr(ns: argparse.Namespace) -> int:
    rows = client(ns).interface_addresses(ns.domain, ns.source)
    sys.stdout.write(table(["Name", "MAC address", "Protocol", "Address"], [
        [r["name"], r["mac"], r["type"], f"{r['address']}/{r['prefix']}" if r["prefix"]
         else r["address"]] for r in rows]))  # fmt: skip
    return 0


@args(DOMAIN, a("interface", nargs="?", default=None, help="tap name or MAC (default: all)"))
@command("domifstat", "a running domain's interface counters (seen from the guest)")
def cmd_domifstat(ns: argparse.Namespace) -> int:
    for r in client(ns).interface_stats(ns.domain, ns.interface):
        for key in ("rx_bytes", "rx_packets", "rx_errs", "rx_drop",
                    "tx_bytes", "tx_packets", "tx_errs", "tx_drop"):  # fmt: skip
            say(f"{r['interface']} {key} {r[key]}")
    return 0


@args(DOMAIN,
      a("--add", action="append", default=[], metavar="RULE",
        help="forward a host port: tcp::2222-:22 (repeatable)"),
      a("--remove", action="append", default=[], metavar="HOSTPORT",
        help="stop forwarding a host port: tcp::2222 (repeatable)"),
      a("--mac", default=None, help="the user-mode interface (when there are several)"),
      a("--live", action="store_true"), a("--config", action="store_true"),
      a("--persistent", action="store_true"))  # fmt: skip
@command("port-forward", "list, add or remove user-mode port forwards (hostfwd)")
def cmd_port_forward(ns: argparse.Namespace) -> int:
    flags = {"live": ns.live, "config": ns.config, "persistent": ns.persistent}
    d = client(ns).port_forward(ns.domain, add=ns.add, remove=ns.remove, mac=ns.mac, **flags)
    if ns.add or ns.remove:
        where = " and ".join(w for w, on in (("live", d["live"]), ("config", d["config"])) if on)
        say(f"Port forwards of {ns.domain} changed ({where})")
    for rule in d["rules"]:
        say(rule)
    return 0
