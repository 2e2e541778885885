"""Managed networks without side effects: the model, our format and libvirt network XML,
subnet and bridge picking, dnsmasq's config and lease file, the nftables ruleset, and
user-mode port-forward rules."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from virtkit.errors import ConfigError
from virtkit.formats.libvirt_netxml import network_from_xml, network_to_xml
from virtkit.formats.netfile import network_from_text, network_to_mapping
from virtkit.model.domain import Nic
from virtkit.model.network import (
    DEFAULT_SUBNET,
    NetMode,
    Network,
    default_network,
    overlapping,
    pick_bridge,
    pick_subnet,
)
from virtkit.model.portfwd import hostfwd_key, parse_hostfwd
from virtkit.network import dnsmasq, firewall

N = ipaddress.IPv4Network


def net(**kw: object) -> Network:
    return Network.model_validate({"name": "lan", "bridge": "vkbr0", **kw})


# -- model ------------------------------------------------------------------------------------


def test_defaults_fill_the_dhcp_range() -> None:
    n = net(address="10.0.5.1/24")
    assert (n.mode, n.dhcp_start, n.dhcp_end) == (NetMode.NAT, "10.0.5.2", "10.0.5.254")
    assert (n.gateway, str(n.subnet)) == ("10.0.5.1", "10.0.5.0/24")
    n = net(address="10.0.5.254/24")
    assert (n.dhcp_start, n.dhcp_end) == ("10.0.5.1", "10.0.5.253")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"address": "10.0.5.0/24"}, "network or broadcast address"),
        ({"address": "10.0.5.1"}, "needs a prefix length"),
        ({"address": "8.8.8.1/24"}, "not a private range"),
        ({"address": "10.0.5.1/31"}, "between /8 and /30"),
        ({"address": "nonsense"}, "invalid address"),
        ({"address": "10.0.5.1/24", "dhcp_start": "10.0.6.2"}, "is not a host address"),
        ({"address": "10.0.5.1/24", "dhcp_start": "10.0.5.9", "dhcp_end": "10.0.5.3"},
         "is after dhcp_end"),
        ({"address": "10.0.5.50/24", "dhcp_start": "10.0.5.2"}, "contains the host's own"),
        ({"bridge": "a-very-long-bridge-name"}, "invalid interface name"),
        ({"bridge": "-x"}, "invalid interface name"),
        ({"name": "-bad"}, "invalid network name"),
        ({"mode": "isolated", "forward_dev": "eth0"}, "isolated network forwards nowhere"),
        ({"dhcp": False, "dhcp_start": "192.168.122.9"}, "dhcp is false"),
        ({"dhcp_hosts": [{"mac": "52:54:00:zz:00:01", "ip": "192.168.122.9"}]},
         "invalid MAC address"),
        ({"dhcp_hosts": [{"mac": "53:54:00:00:00:01", "ip": "192.168.122.9"}]}, "multicast"),
        ({"dhcp_hosts": [{"mac": "52:54:00:00:00:01", "ip": "192.168.122.9"},
                         {"mac": "52:54:00:00:00:01", "ip": "192.168.122.10"}]}, "given twice"),
        ({"dhcp_hosts": [{"mac": "52:54:00:00:00:01", "ip": "10.1.1.1"}]}, "not a free address"),
        ({"mode": "bridge"}, "mode"),
        ({"colour": "red"}, "unknown field"),
    ],
)  # fmt: skip
def test_bad_networks_name_the_problem(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        network_from_text(__import__("json").dumps({"name": "lan", **fields}), "n.json")
    assert message in exc.value.message


def test_overlaps_and_subnet_picking() -> None:
    others = [("network a", N("10.0.0.0/16")), ("route x", N("192.168.1.0/24"))]
    assert overlapping(N("10.0.5.0/24"), others) == ["network a"]
    assert overlapping(N("10.1.0.0/24"), others) == []
    assert pick_subnet([]) == DEFAULT_SUBNET
    assert pick_subnet([N("0.0.0.0/0")]) == DEFAULT_SUBNET  # a default route is no collision
    assert pick_subnet([N("192.168.122.0/24")]) == N("192.168.123.0/24")
    assert pick_subnet([N("192.168.0.0/16")]) == N("10.250.122.0/24")
    assert pick_bridge(["eth0", "virbr0", "virbr1"]) == "virbr2"
    d = default_network(N("192.168.123.0/24"), "virbr1")
    assert (d.name, d.address, d.dhcp_start, d.dhcp_end, d.bridge) == (
        "default",
        "192.168.123.1/24",
        "192.168.123.2",
        "192.168.123.254",
        "virbr1",
    )


# -- our format and libvirt XML ------------------------------------------------------------------

LIBVIRT_DEFAULT = """\
<network connections='2'>
  <name>default</name>
  <uuid>9a05da11-e96b-47f3-8253-a3a482e445f5</uuid>
  <forward mode='nat'>
    <nat><port start='1024' end='65535'/></nat>
  </forward>
  <bridge name='virbr0' stp='on' delay='0'/>
  <mac address='52:54:00:0a:cd:21'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
      <host mac='52:54:00:00:00:10' name='web' ip='192.168.122.10'/>
    </dhcp>
  </ip>
</network>
"""


def test_libvirt_default_network_xml() -> None:
    n = network_from_xml(LIBVIRT_DEFAULT)
    assert (n.name, n.mode, n.bridge, n.address) == ("default", NetMode.NAT, "virbr0",
                                                     "192.168.122.1/24")  # fmt: skip
    assert n.uuid == "9a05da11-e96b-47f3-8253-a3a482e445f5"
    assert [(h.mac, h.ip, h.name) for h in n.dhcp_hosts] == [
        ("52:54:00:00:00:10", "192.168.122.10", "web")
    ]
    assert network_from_xml(network_to_xml(n)) == n  # round trip


@pytest.mark.parametrize(
    "n",
    [
        net(address="10.9.0.1/16", mode="routed", forward_dev="eth0", mtu=9000,
            dns_domain="lab.example"),
        net(address="172.20.0.1/24", mode="isolated", dhcp=False),
        net(address="10.3.0.1/24", dhcp_start="10.3.0.100", dhcp_end="10.3.0.150"),
    ],
)  # fmt: skip
def test_round_trips(n: Network) -> None:
    assert network_from_xml(network_to_xml(n)) == n
    assert network_from_text(__import__("json").dumps(network_to_mapping(n))) == n
    assert network_from_text(network_to_xml(n)) == n  # net-define takes XML too


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ("<domain><name>x</name></domain>", "expected a <network> document"),
        ("<network><name>x</name></network>", "needs an <ip"),
        ("<network><name>x</name><forward mode='bridge'/><ip address='10.0.0.1'/></network>",
         "unsupported value"),
        ("<network><name>x</name><ip address='10.0.0.1' prefix='24'/><dns/></network>",
         "unsupported element /network/dns"),
        ("<!DOCTYPE x [<!ENTITY a 'b'>]><network/>", "DTDs and entities are not allowed"),
        ("<network>", "not well-formed"),
        ("<network><name>x</name><ip address='10.0.0.1' netmask='255.0.255.0'/></network>",
         "netmask"),
    ],
)  # fmt: skip
def test_bad_network_xml(xml: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        network_from_xml(xml)
    assert message in exc.value.message


def test_isolated_network_from_xml_without_forward() -> None:
    n = network_from_xml("<network><name>iso</name><ip address='10.0.0.1' prefix='24'>"
                         "</ip></network>")  # fmt: skip
    assert n.mode is NetMode.ISOLATED and not n.dhcp


# -- dnsmasq and nftables ----------------------------------------------------------------------


def test_dnsmasq_config(tmp_path: Path) -> None:
    files = dnsmasq.Files(tmp_path / "lan")
    n = net(address="10.0.5.1/24", dhcp_hosts=[{"mac": "52:54:00:00:00:10", "ip": "10.0.5.10",
                                                "name": "web"}], dns_domain="lab")  # fmt: skip
    lines = dnsmasq.config(n, files).splitlines()
    for want in ("interface=vkbr0", "bind-dynamic", "except-interface=lo",
                 "listen-address=10.0.5.1", "dhcp-range=10.0.5.2,10.0.5.254,255.255.255.0",
                 f"dhcp-leasefile={files.leases}", f"pid-file={files.pidfile}",
                 "dhcp-host=52:54:00:00:00:10,10.0.5.10,web", "domain=lab", "local=/lab/",
                 "dhcp-lease-max=254"):  # fmt: skip
        assert want in lines, lines
    assert "no-resolv" not in lines and "dhcp-option=3" not in lines
    iso = dnsmasq.config(net(mode="isolated"), files).splitlines()
    assert "no-resolv" in iso and "dhcp-option=3" in iso


def test_lease_file_parsing(tmp_path: Path) -> None:
    text = ("1733100000 52:54:00:77:00:01 10.77.0.20 tiny 01:52:54:00:77:00:01\n"
            "1733100001 52:54:00:77:00:02 10.77.0.21 * *\n"
            "duid 00:01:00:01:2c:aa\n"
            "1733100002 1234 fd00::5 host6 00:01\n")  # fmt: skip
    leases = dnsmasq.parse_leases(text)
    assert [(x.mac, x.ip, x.hostname, x.client_id) for x in leases] == [
        ("52:54:00:77:00:01", "10.77.0.20", "tiny", "01:52:54:00:77:00:01"),
        ("52:54:00:77:00:02", "10.77.0.21", None, None),
    ]
    assert dnsmasq.read_leases(dnsmasq.Files(tmp_path / "none")) == []
    assert dnsmasq.running_pid(dnsmasq.Files(tmp_path / "none")) is None


def test_nft_rulesets() -> None:
    nat = firewall.ruleset(net(address="10.0.5.1/24"))
    assert nat.startswith("table ip virtkit_vkbr0 {")
    assert "ip saddr 10.0.5.0/24 ip daddr != 10.0.5.0/24 masquerade" in nat
    assert "ct state established,related accept" in nat
    routed = firewall.ruleset(net(mode="routed", forward_dev="eth1"))
    assert "masquerade" not in routed and 'oifname "vkbr0" iifname "eth1"' in routed
    iso = firewall.ruleset(net(mode="isolated"))
    assert "masquerade" not in iso and "saddr" not in iso
    assert 'iifname "vkbr0" reject' in iso and 'oifname "vkbr0" reject' in iso


# -- port forwards ---------------------------------------------------------------------------


def test_hostfwd_rules() -> None:
    assert parse_hostfwd("tcp::2222-:22") == "tcp::2222-:22"
    assert parse_hostfwd("udp:127.0.0.1:05353-10.0.2.15:53") == "udp:127.0.0.1:5353-10.0.2.15:53"
    assert hostfwd_key("tcp:127.0.0.1:2222-:22") == "tcp:127.0.0.1:2222"
    for bad in ("2222-:22", "tcp::0-:22", "tcp::2222-:70000", "tcp:1.2.3:1-:2", "sctp::1-:2"):
        with pytest.raises(ValueError):
            parse_hostfwd(bad)
    assert Nic(hostfwd=["tcp::2222-:22"]).hostfwd == ["tcp::2222-:22"]
    with pytest.raises(ValueError, match="user-mode interfaces only"):
        Nic(type="bridge", source="br0", hostfwd=["tcp::2222-:22"])
    with pytest.raises(ValueError, match="forwarded twice"):
        Nic(hostfwd=["tcp::2222-:22", "tcp::2222-:23"])


def test_port_forwards_in_libvirt_domain_xml() -> None:
    from virtkit.formats.libvirt_xml import domain_from_xml, domain_to_xml
    from virtkit.model.domain import Domain

    rules = ["tcp::2222-:22", "udp:127.0.0.1:53-:5353"]
    dom = Domain(name="pf", nics=[Nic(mac="52:54:00:00:00:01", hostfwd=rules)])
    xml = domain_to_xml(dom)
    assert '<portForward proto="tcp">' in xml and '<range start="2222" to="22" />' in xml
    assert domain_from_xml(xml).nics[0].hostfwd == dom.nics[0].hostfwd
    text = ("<domain type='kvm'><name>p</name><memory unit='MiB'>256</memory>"
            "<os><type arch='x86_64' machine='q35'>hvm</type></os><devices>"
            "<interface type='user'><backend type='passt'/><portForward proto='tcp'>"
            "<range start='8080' to='80'/><range start='8443'/></portForward></interface>"
            "</devices></domain>")  # fmt: skip
    assert domain_from_xml(text).nics[0].hostfwd == ["tcp::8080-:80", "tcp::8443-:8443"]
