"""User-mode port forwards (QEMU's ``hostfwd`` rules): parsing only, no I/O."""

from __future__ import annotations

import ipaddress
import re

HOSTFWD_RE = re.compile(
    r"^(?P<proto>tcp|udp):(?P<haddr>[0-9.]*):(?P<hport>\d{1,5})-(?P<gaddr>[0-9.]*):(?P<gport>\d{1,5})$"
)


def parse_hostfwd(text: str) -> str:
    """QEMU's ``hostfwd`` rule ``tcp:[hostaddr]:hostport-[guestaddr]:guestport``, checked
    and returned in its canonical form (a leading protocol is required; '' addresses mean
    all host addresses / the guest's DHCP address, as in QEMU)."""
    m = HOSTFWD_RE.fullmatch(text.strip())
    if m is None:
        raise ValueError(
            f"invalid port forward {text!r}: use tcp::HOSTPORT-:GUESTPORT (or udp:, with "
            "optional addresses: tcp:127.0.0.1:2222-:22)"
        )
    for key in ("haddr", "gaddr"):
        if m[key]:
            try:
                ipaddress.IPv4Address(m[key])
            except ValueError:
                raise ValueError(f"invalid port forward {text!r}: {m[key]!r} is not an IPv4 "
                                 "address") from None  # fmt: skip
    for key in ("hport", "gport"):
        if not 1 <= int(m[key]) <= 65535:
            raise ValueError(f"invalid port forward {text!r}: ports are 1-65535")
    return f"{m['proto']}:{m['haddr']}:{int(m['hport'])}-{m['gaddr']}:{int(m['gport'])}"


def hostfwd_key(rule: str) -> str:
    """What ``hostfwd_remove`` takes: ``tcp:hostaddr:hostport``."""
    return rule.split("-", 1)[0]
