"""CLI: ``virtkit pki`` (CA and TLS certificates) and ``qemu-monitor-command``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from urllib.parse import quote

from virtkit.cli.main import DOMAIN, a, args, client, command, say


@args(
    a("action", choices=["init", "server", "client"],
      help="init: make a CA; server: the TLS listener's certificate; client: a client's"),
    a("--dir", required=True, help="the CA directory (ca.pem, ca-key.pem)"),
    a("--host", action="append", default=[],
      help="server: a DNS name or IP address it is reached by (repeatable)"),
    a("--name", default="", help="client: the certificate's common name (the user)"),
    a("--out", default=None, help="where to write the certificate (default: --dir)"),
    a("--force", action="store_true", help="init: replace an existing CA"),
)  # fmt: skip
@command("pki", "make a CA and TLS server/client certificates for virtkit+tls://")
def cmd_pki(ns: argparse.Namespace) -> int:
    from virtkit.daemon.auth import pki
    from virtkit.errors import ConfigError

    ca = Path(ns.dir)
    out = Path(ns.out) if ns.out else ca
    if ns.action == "init":
        say(f"CA written: {pki.init_ca(ca, force=ns.force)}")
    elif ns.action == "server":
        if not ns.host:
            raise ConfigError("pki server needs --host NAME (and/or --host IP)")
        say(f"server certificate written: {pki.issue(ca, out, 'server', ns.host[0], ns.host)}")
    else:
        if not ns.name:
            raise ConfigError("pki client needs --name CN (the user it is for)")
        say(f"client certificate written: {pki.issue(ca, out, 'client', ns.name)}")
    return 0


@args(
    DOMAIN,
    a("cmd", nargs="+", help="QMP JSON, or an HMP command with --hmp"),
    a("--hmp", action="store_true", help="a human monitor command"),
    a("--pretty", action="store_true", help="indent the JSON reply"),
)
@command("qemu-monitor-command", "send a raw QMP/HMP command (admin only; taints the domain)")
def cmd_qemu_monitor_command(ns: argparse.Namespace) -> int:
    c = client(ns)
    body = {"command": " ".join(ns.cmd), "hmp": ns.hmp}
    reply = c.request("POST", f"/v1/domains/{quote(ns.domain, safe='')}/monitor", body)["reply"]
    if ns.hmp and isinstance(reply, str):
        sys.stdout.write(reply)
    else:
        say(json.dumps({"return": reply}, indent=2 if ns.pretty else None))
    return 0
