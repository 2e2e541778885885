"""Managed NAT network, end to end, inside a network namespace the test creates.

The daemon (and every CLI call) runs under ``ip netns exec``: the bridge, its dnsmasq, the
nftables table and the guests' taps all live in that namespace, which has nothing but
loopback besides them, so no packet can leave this machine.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon, tiny_yaml
from tests.integration.test_survival import console_roundtrip

pytestmark = pytest.mark.qemu
BRIDGE = "vknat0"
NET_YAML = f"name: lan\nmode: nat\nbridge: {BRIDGE}\naddress: 10.77.0.1/24\n"


def in_ns(ns: str, *cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True,
                          check=False)  # fmt: skip


def ns_links(ns: str) -> list[str]:
    out = in_ns(ns, "ls", "/sys/class/net").stdout.split()
    return sorted(out)


def dnsmasq_pids(marker: str) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes()
            except OSError:
                continue
            if b"dnsmasq" in cmd.split(b"\0", 1)[0] and marker.encode() in cmd:
                pids.append(int(p.name))
    return pids


@pytest.fixture
def nsdaemon() -> Iterator[Daemon]:
    ns = f"vkns{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    base = Path(tempfile.mkdtemp(prefix="vk", dir="/tmp"))
    d = Daemon(base, netns=ns)
    try:
        d.start()
        yield d
    finally:
        d.cleanup()
        for pid in dnsmasq_pids(str(base)):  # never leave a dnsmasq, even on failure
            os.kill(pid, signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", ns], check=False)
        subprocess.run(["rm", "-rf", str(base)], check=False)


def guest(tiny: object, tmp_path: Path, name: str, mac: str) -> Path:
    f = tmp_path / f"{name}.yaml"
    f.write_text(tiny_yaml(
        tiny, name, cmdline="console=ttyS0 virtkit.dhcp=1",
        extra=f"accel: tcg\nnics:\n  - type: network\n    source: lan\n    mac: '{mac}'\n",
    ))  # fmt: skip
    return f


def test_nat_network_dhcp_ping_and_clean_destroy(
    nsdaemon: Daemon, tiny: object, tmp_path: Path
) -> None:
    d, ns = nsdaemon, nsdaemon.netns or ""
    (tmp_path / "lan.yaml").write_text(NET_YAML)
    d.cli("net-define", str(tmp_path / "lan.yaml"))
    assert "lan" in d.cli("net-list", "--all").stdout
    d.cli("net-start", "lan")
    assert BRIDGE in ns_links(ns) and not os.path.exists(f"/sys/class/net/{BRIDGE}")
    assert in_ns(ns, "nft", "list", "table", "ip", f"virtkit_{BRIDGE}").returncode == 0
    [pid] = dnsmasq_pids(str(d.base))

    # kill -9 the daemon: the network's dnsmasq is adopted, not restarted
    d.kill9()
    d.start()
    info = d.cli("net-info", "lan").stdout
    assert re.search(r"Active:\s+yes", info), info
    assert dnsmasq_pids(str(d.base)) == [pid]

    macs = {"g1": "52:54:00:77:00:01", "g2": "52:54:00:77:00:02"}
    for name, mac in macs.items():
        d.cli("define", str(guest(tiny, tmp_path, name, mac)))
        d.cli("start", name)
    ips = {}
    for name in macs:
        text = d.wait_console(name, "VIRTKIT-DHCP-OK", timeout=120)
        m = re.search(r"VIRTKIT-DHCP-OK eth0 (10\.77\.0\.\d+)", text)
        assert m, text[-2000:]
        ips[name] = m.group(1)
    leases = d.cli("net-dhcp-leases", "lan").stdout
    for name, mac in macs.items():
        assert mac in leases and f"{ips[name]}/24" in leases, leases
    addr = d.cli("domifaddr", "g1").stdout
    assert macs["g1"] in addr and f"{ips['g1']}/24" in addr, addr
    iflist = d.cli("domiflist", "g2").stdout
    assert "network" in iflist and "lan" in iflist and macs["g2"] in iflist

    d.wait_console("g1", "tiny# ")
    ping = f"ping -c 2 -W 5 {ips['g2']} && ping -c 1 -W 5 10.77.0.1 && echo PING-$((40+2))-OK"
    console_roundtrip(d, "g1", ping, "PING-42-OK")
    arp = d.cli("domifaddr", "g1", "--source", "arp").stdout
    assert macs["g1"] in arp and ips["g1"] in arp, arp
    stat = d.cli("domifstat", "g1").stdout
    assert re.search(r" rx_packets [1-9]", stat), stat

    # a daemon restart with guests running: network, dnsmasq and taps are all adopted
    d.kill9()
    d.start()
    assert dnsmasq_pids(str(d.base)) == [pid]
    assert f"{ips['g2']}/24" in d.cli("domifaddr", "g2").stdout

    # hot plug onto the managed network: the new tap joins its bridge, dnsmasq leases to it
    hot = "52:54:00:77:00:11"
    d.cli("attach-interface", "g1", "network", "lan", "--mac", hot, "--live")
    assert d.cli("domiflist", "g1").stdout.count("lan") == 2
    on_bridge = in_ns(ns, "ip", "-o", "link", "show", "master", BRIDGE).stdout
    assert len(on_bridge.splitlines()) == 3, on_bridge
    r = d.cli("attach-interface", "g2", "network", "lan", "--mac", hot, "--live", check=False)
    assert r.returncode != 0 and "already used on network 'lan'" in r.stderr, r.stderr
    dhcp = (
        "ip link set eth1 up; udhcpc -i eth1 -n -q -t 10 -T 1 -s /usr/share/udhcpc/default.script"
    )
    console_roundtrip(d, "g1", dhcp + "; echo UDHCP-$((2+3))", "UDHCP-5")
    assert hot in d.cli("net-dhcp-leases", "lan").stdout
    d.cli("detach-interface", "g1", "network", "--mac", hot, "--live")
    assert d.cli("domiflist", "g1").stdout.count("lan") == 1
    on_bridge = in_ns(ns, "ip", "-o", "link", "show", "master", BRIDGE).stdout
    assert len(on_bridge.splitlines()) == 2, on_bridge

    # in use: neither destroyed nor undefined; a duplicate MAC on the network is refused
    r = d.cli("net-destroy", "lan", check=False)
    assert r.returncode == 4 and "g1" in r.stderr and "g2" in r.stderr, r.stderr
    r = d.cli("net-undefine", "lan", check=False)
    assert r.returncode == 4, r.stderr
    d.cli("define", str(guest(tiny, tmp_path, "g3", macs["g1"])))
    r = d.cli("start", "g3", check=False)
    assert r.returncode == 2 and "already used on network 'lan'" in r.stderr, r.stderr
    taps = [n for n in ns_links(ns) if n.startswith("vk") and n != BRIDGE]
    assert len(taps) == 2, taps

    for name in macs:
        d.cli("destroy", name)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(t in ns_links(ns) for t in taps):
        time.sleep(0.1)
    d.cli("net-destroy", "lan")
    assert ns_links(ns) == ["lo"], ns_links(ns)
    assert dnsmasq_pids(str(d.base)) == []
    assert in_ns(ns, "nft", "list", "table", "ip", f"virtkit_{BRIDGE}").returncode != 0
    d.cli("net-undefine", "lan")
    assert "lan" not in d.cli("net-list", "--all").stdout


def test_default_network_moves_off_a_used_subnet_and_bad_starts_leave_nothing(
    nsdaemon: Daemon, tmp_path: Path
) -> None:
    d, ns = nsdaemon, nsdaemon.netns or ""
    # the namespace already uses 192.168.122.0/24 (and owns a link named like our bridge)
    subprocess.run(["ip", "-n", ns, "link", "add", "virbr0", "type", "bridge"], check=True)
    subprocess.run(["ip", "-n", ns, "addr", "add", "192.168.122.7/24", "dev", "virbr0"],
                   check=True)  # fmt: skip
    subprocess.run(["ip", "-n", ns, "link", "set", "virbr0", "up"], check=True)
    r = d.cli("net-start", "default")
    assert "192.168.122.0/24 is in use" in r.stderr and "192.168.123.0/24" in r.stderr, r.stderr
    info = d.cli("net-info", "default").stdout
    assert re.search(r"Bridge:\s+virbr1", info) and "192.168.123.1/24" in info, info
    assert re.search(r"Autostart:\s+yes", info), info
    d.cli("net-destroy", "default")
    d.cli("net-autostart", "default", "--disable")  # or it comes back with the daemon
    assert ns_links(ns) == ["lo", "virbr0"]

    # a bridge name the host already uses: refused at start, nothing left half-made
    (tmp_path / "x.yaml").write_text("name: x\nbridge: virbr0\naddress: 10.66.0.1/24\n")
    d.cli("net-define", str(tmp_path / "x.yaml"))
    r = d.cli("net-start", "x", check=False)
    assert r.returncode == 2 and "bridge name 'virbr0' is already used" in r.stderr, r.stderr
    # a subnet a host route uses: refused at start, nothing left half-made
    (tmp_path / "y.yaml").write_text("name: y\nbridge: vky0\naddress: 192.168.122.129/25\n")
    d.cli("net-define", str(tmp_path / "y.yaml"))
    r = d.cli("net-start", "y", check=False)
    assert r.returncode == 2 and "overlaps" in r.stderr and "virbr0" in r.stderr, r.stderr
    assert ns_links(ns) == ["lo", "virbr0"] and dnsmasq_pids(str(d.base)) == []
    assert "virtkit_" not in in_ns(ns, "nft", "list", "tables").stdout
    assert "inactive" in d.cli("net-list", "--all").stdout

    # net-create: transient, started at once; a dnsmasq that died while the daemon was away
    # is started again on reconcile; net-destroy forgets the network
    (tmp_path / "t.xml").write_text(
        "<network><name>t</name><forward mode='nat'/><bridge name='vkt0'/>"
        "<ip address='10.55.0.1' netmask='255.255.255.0'><dhcp>"
        "<range start='10.55.0.10' end='10.55.0.20'/></dhcp></ip></network>"
    )
    d.cli("net-create", str(tmp_path / "t.xml"))
    assert re.search(r"t\s+active\s+no\s+no", d.cli("net-list").stdout)
    r = d.cli("net-autostart", "t", check=False)
    assert r.returncode == 4 and "transient" in r.stderr
    d.kill9()
    [old] = dnsmasq_pids(str(d.base))
    os.kill(old, signal.SIGKILL)
    d.start()
    [new] = dnsmasq_pids(str(d.base))
    assert new != old
    assert '<range start="10.55.0.10" end="10.55.0.20"' in d.cli("net-dumpxml", "t").stdout
    d.cli("net-destroy", "t")
    assert d.cli("net-list", "--all", "--name").stdout.split() == ["default", "x", "y"]
    assert ns_links(ns) == ["lo", "virbr0"] and dnsmasq_pids(str(d.base)) == []


def test_port_forward_on_a_running_guest(nsdaemon: Daemon, tiny: object, tmp_path: Path) -> None:
    d, ns = nsdaemon, nsdaemon.netns or ""
    f = tmp_path / "u.yaml"
    f.write_text(tiny_yaml(tiny, "u", extra="accel: tcg\nnics:\n  - type: user\n"
                           "    hostfwd: ['tcp:127.0.0.1:2222-:22']\n"))  # fmt: skip
    d.cli("define", str(f))
    d.cli("start", "u")

    def listening() -> str:
        return in_ns(ns, "ss", "-ltnH").stdout

    assert "127.0.0.1:2222" in listening()
    r = d.cli(
        "port-forward", "u", "--add", "tcp:127.0.0.1:8022-:22", "--remove", "tcp:127.0.0.1:2222"
    )
    assert "tcp:127.0.0.1:8022-:22" in r.stdout and "2222" not in r.stdout.splitlines()[-1]
    text = listening()
    assert "127.0.0.1:8022" in text and "127.0.0.1:2222" not in text, text
    assert d.cli("port-forward", "u").stdout.split() == ["tcp:127.0.0.1:8022-:22"]
    # the definition was not changed (--live is the default on a running guest)
    assert "2222" in d.cli("dumpconfig", "u").stdout
    r = d.cli("port-forward", "u", "--add", "tcp:127.0.0.1:8022-:23", check=False)
    assert r.returncode == 2 and "already forwarded" in r.stderr
    d.cli("destroy", "u")


def test_restart_tears_down_what_a_crashed_start_left(nsdaemon: Daemon, tmp_path: Path) -> None:
    """The daemon died between making a network's parts and recording it as active: the
    next daemon finds the marker and removes bridge, nft table and dnsmasq."""
    import sqlite3

    d, ns = nsdaemon, nsdaemon.netns or ""
    (tmp_path / "lan.yaml").write_text(NET_YAML)
    d.cli("net-define", str(tmp_path / "lan.yaml"))
    d.cli("net-start", "lan")
    d.kill9()
    db = sqlite3.connect(d.state_dir / "virtkit.db")
    with db:
        db.execute("UPDATE networks SET active=0 WHERE name='lan'")
    db.close()
    assert BRIDGE in ns_links(ns) and dnsmasq_pids(str(d.base))
    d.start()
    assert ns_links(ns) == ["lo"] and dnsmasq_pids(str(d.base)) == []
    assert "virtkit_" not in in_ns(ns, "nft", "list", "tables").stdout
    assert re.search(r"lan\s+inactive", d.cli("net-list", "--all").stdout)


def test_a_guest_on_default_creates_and_starts_it(
    nsdaemon: Daemon, tiny: object, tmp_path: Path
) -> None:
    """System mode: `default` is defined and started on first use (192.168.122.0/24 here,
    inside the test's namespace, never in the host's)."""
    d, ns = nsdaemon, nsdaemon.netns or ""
    f = tmp_path / "g.yaml"
    f.write_text(tiny_yaml(tiny, "g", extra="accel: tcg\nnics:\n  - type: network\n"
                           "    source: default\n"))  # fmt: skip
    d.cli("define", str(f))
    d.cli("start", "g")
    info = d.cli("net-info", "default").stdout
    assert re.search(r"Active:\s+yes", info) and "192.168.122.1/24" in info, info
    assert re.search(r"Bridge:\s+virbr0", info) and re.search(r"Used by:\s+g", info), info
    [tap] = [n for n in ns_links(ns) if n.startswith("vk")]
    assert tap in in_ns(ns, "ls", "/sys/class/net/virbr0/brif").stdout
    assert tap in d.cli("domiflist", "g").stdout
    d.cli("destroy", "g")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and tap in ns_links(ns):
        time.sleep(0.1)
    d.cli("net-destroy", "default")
    assert ns_links(ns) == ["lo"] and dnsmasq_pids(str(d.base)) == []
