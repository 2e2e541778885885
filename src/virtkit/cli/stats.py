"""domstats: virsh's ``Domain: 'name'`` + ``key=value`` statistics (or ``--json``).

One API call (GET /v1/stats) whatever the number of domains.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from virtkit.cli.main import a, args, client, command

# virsh domstats flag -> stats group
FLAGS = {"state": "state", "cpu_total": "cpu", "balloon": "balloon", "vcpu": "vcpu",
         "interface": "interface", "block": "block"}  # fmt: skip


def format_domstats(domains: list[dict[str, Any]]) -> str:
    """virsh's layout: a header per domain, indented key=value lines, a blank line after."""
    out = []
    for d in domains:
        out.append(f"Domain: '{d['name']}'")
        out.extend(f"  {k}={v}" for k, v in d["stats"].items())
        out.append("")
    return "\n".join(out) + ("\n" if out else "")


@args(a("domains", nargs="*", metavar="DOM", help="domains (default: all)"),
      a("--state", action="store_true", help="state and reason"),
      a("--cpu-total", action="store_true", help="QEMU process CPU time (ns)"),
      a("--balloon", action="store_true", help="guest memory and RSS (KiB)"),
      a("--vcpu", action="store_true", help="vCPU count and per-vCPU time"),
      a("--interface", action="store_true", help="NIC counters (tap NICs; user NICs read 0)"),
      a("--block", action="store_true", help="disk read/write bytes and requests"),
      a("--list-active", action="store_true", help="running domains only"),
      a("--json", action="store_true", help="JSON instead of key=value lines"))  # fmt: skip
@command("domstats", "domain statistics (virsh domstats)")
def cmd_domstats(ns: argparse.Namespace) -> int:
    groups = [g for flag, g in FLAGS.items() if getattr(ns, flag)]
    res = client(ns).stats(ns.domains or None, groups or None, active=ns.list_active)
    if ns.json:
        sys.stdout.write(json.dumps(res, indent=2) + "\n")
    else:
        sys.stdout.write(format_domstats(res["domains"]))
    return 0


from virtkit.cli import top as _top  # noqa: E402, F401  (registers `top`)
