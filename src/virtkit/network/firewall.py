"""nftables rules of a managed network: one table per network, removed as a whole.

``ruleset`` is a pure function (unit-tested); ``apply``/``remove`` run ``nft -f -``.
The table is named after the bridge (unique per host): ``virtkit_<bridge>``.

  nat:      masquerade the subnet towards everything outside it; forward out from the
            subnet, back in only for established connections (like libvirt)
  routed:   forward both ways, no NAT
  isolated: nothing is forwarded to or from the bridge
"""

from __future__ import annotations

import shutil
import subprocess

from virtkit.errors import HostError
from virtkit.model.network import NetMode, Network

NFT_TIMEOUT_S = 10.0


def table_name(bridge: str) -> str:
    return f"virtkit_{bridge}"


def ruleset(net: Network) -> str:
    assert net.bridge is not None
    br, sub = net.bridge, str(net.subnet)
    out_dev = f' oifname "{net.forward_dev}"' if net.forward_dev else ""
    in_dev = f' iifname "{net.forward_dev}"' if net.forward_dev else ""
    lines = [f"table ip {table_name(br)} {{"]
    if net.mode is NetMode.NAT:
        lines += [
            "  chain postrouting {",
            "    type nat hook postrouting priority srcnat; policy accept;",
            f"    ip saddr {sub} ip daddr 224.0.0.0/24 return",
            f"    ip saddr {sub} ip daddr 255.255.255.255 return",
            f"    ip saddr {sub} ip daddr != {sub}{out_dev} masquerade",
            "  }",
        ]
    lines += ["  chain forward {", "    type filter hook forward priority filter; policy accept;",
              f'    iifname "{br}" oifname "{br}" accept']  # fmt: skip
    if net.mode is NetMode.NAT:
        lines += [
            f'    iifname "{br}"{out_dev} ip saddr {sub} accept',
            f'    oifname "{br}"{in_dev} ip daddr {sub} ct state established,related accept',
        ]
    elif net.mode is NetMode.ROUTED:
        lines += [
            f'    iifname "{br}"{out_dev} ip saddr {sub} accept',
            f'    oifname "{br}"{in_dev} ip daddr {sub} accept',
        ]
    lines += [
        f'    iifname "{br}" reject with icmp type port-unreachable',
        f'    oifname "{br}" reject with icmp type port-unreachable',
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _nft(script: str, what: str) -> subprocess.CompletedProcess[str]:
    nft = shutil.which("nft") or "/usr/sbin/nft"
    try:
        return subprocess.run([nft, "-f", "-"], input=script, capture_output=True, text=True,
                              timeout=NFT_TIMEOUT_S, check=False)  # fmt: skip
    except FileNotFoundError:
        raise HostError(f"cannot {what}: nft is not installed (apt-get install nftables)") from None
    except subprocess.TimeoutExpired:
        raise HostError(f"cannot {what}: nft did not answer in {NFT_TIMEOUT_S:g} s") from None


def apply(net: Network) -> None:
    """Install the network's table, replacing a leftover of the same name atomically."""
    assert net.bridge is not None
    name = table_name(net.bridge)
    # One transaction: create (so the delete cannot fail), delete, define afresh.
    script = f"table ip {name}\ndelete table ip {name}\n" + ruleset(net)
    r = _nft(script, f"install the firewall rules of network {net.name!r}")
    if r.returncode != 0:
        raise HostError(f"nft refused the rules of network {net.name!r}: {r.stderr.strip()}")


def remove(bridge: str) -> None:
    """Delete the network's table; no error if it is not there."""
    name = table_name(bridge)
    _nft(f"table ip {name}\ndelete table ip {name}\n", "remove firewall rules")


def exists(bridge: str) -> bool:
    nft = shutil.which("nft") or "/usr/sbin/nft"
    try:
        r = subprocess.run([nft, "list", "table", "ip", table_name(bridge)], capture_output=True,
                           text=True, timeout=NFT_TIMEOUT_S, check=False)  # fmt: skip
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0
