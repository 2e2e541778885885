"""Snapshot verbs: snapshot-create-as, snapshot-list, snapshot-info, snapshot-current,
snapshot-revert, snapshot-delete (virsh's words and output shapes)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any
from urllib.parse import quote

from virtkit.cli.main import DOMAIN, a, args, client, command, say


def _path(dom: str, snap: str | None = None) -> str:
    p = f"/v1/domains/{quote(dom, safe='')}/snapshots"
    return p if snap is None else f"{p}/{quote(snap, safe='')}"


def _stamp(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(ts))


@args(DOMAIN, a("name", help="snapshot name"), a("description", nargs="?", default=""),
      a("--description", dest="desc_opt", default=None),
      a("--disk-only", action="store_true", help="external qcow2 overlays, no memory"),
      a("--atomic", action="store_true", help="accepted: snapshots are always atomic"))  # fmt: skip
@command("snapshot-create-as", "create a snapshot (with memory for a running domain)")
def cmd_create(ns: argparse.Namespace) -> int:
    body = {"name": ns.name, "disk_only": ns.disk_only,
            "description": ns.desc_opt if ns.desc_opt is not None else ns.description}  # fmt: skip
    s = client(ns).request("POST", _path(ns.domain), body)
    say(f"Domain snapshot {s['name']} created")
    return 0


@args(DOMAIN, a("--tree", action="store_true"), a("--parent", action="store_true"),
      a("--name", action="store_true", help="names only"))  # fmt: skip
@command("snapshot-list", "list a domain's snapshots")
def cmd_list(ns: argparse.Namespace) -> int:
    snaps: list[dict[str, Any]] = client(ns).request("GET", _path(ns.domain))
    if ns.name:
        for s in snaps:
            say(s["name"])
    elif ns.tree:
        by_parent: dict[str | None, list[dict[str, Any]]] = {}
        for s in snaps:
            by_parent.setdefault(s["parent"], []).append(s)

        def walk(parent: str | None, prefix: str) -> None:
            kids = by_parent.get(parent, [])
            for i, s in enumerate(kids):
                last = i == len(kids) - 1
                if parent is None:
                    say(s["name"])
                    walk(s["name"], "  ")
                else:
                    say(f"{prefix}{'+- '}{s['name']}")
                    walk(s["name"], prefix + ("   " if last else "|  "))

        walk(None, "")
    else:
        cols = " Name" + " " * 14 + "Creation Time               State"
        head = [cols + ("      Parent" if ns.parent else "")]
        head.append("-" * (len(head[0]) + 4))
        for s in snaps:
            line = f" {s['name']:<18}{_stamp(s['created']):<28}{s['state']}"
            if ns.parent:
                line += f"   {s['parent'] or ''}"
            head.append(line)
        sys.stdout.write("\n".join(head) + "\n\n")
    return 0


def _info(ns: argparse.Namespace, name: str) -> dict[str, Any]:
    return dict(client(ns).request("GET", _path(ns.domain, name)))


@args(DOMAIN, a("snapshotname", nargs="?"), a("--current", action="store_true"))
@command("snapshot-info", "show a snapshot")
def cmd_info(ns: argparse.Namespace) -> int:
    s = _info(ns, "@current" if ns.current or not ns.snapshotname else ns.snapshotname)
    rows = [("Name", s["name"]), ("Domain", s["domain"]),
            ("Current", "yes" if s["current"] else "no"), ("State", s["state"]),
            ("Location", s["location"]), ("Parent", s["parent"] or "-"),
            ("Children", str(len(s["children"]))), ("Description", s["description"] or "-"),
            ("Metadata", "yes")]  # fmt: skip
    sys.stdout.write("".join(f"{k + ':':<16}{v}\n" for k, v in rows) + "\n")
    return 0


@args(DOMAIN, a("--name", action="store_true", help="print only the name"))
@command("snapshot-current", "show the current snapshot")
def cmd_current(ns: argparse.Namespace) -> int:
    s = _info(ns, "@current")
    if ns.name:
        say(s["name"])
    else:
        say(f"{s['name']} ({s['kind']}, taken {_stamp(s['created'])} while {s['state']})")
    return 0


@args(DOMAIN, a("snapshotname", nargs="?"), a("--current", action="store_true"),
      a("--running", action="store_true", help="accepted"),
      a("--paused", action="store_true", help="accepted"))  # fmt: skip
@command("snapshot-revert", "revert a domain to a snapshot (memory too, if it has it)")
def cmd_revert(ns: argparse.Namespace) -> int:
    name = "@current" if ns.current or not ns.snapshotname else ns.snapshotname
    s = client(ns).request("POST", _path(ns.domain, name) + "/revert")
    say(f"Domain '{ns.domain}' reverted to snapshot {s['name']}")
    return 0


@args(DOMAIN, a("snapshotname", nargs="?"), a("--current", action="store_true"))
@command("snapshot-delete", "delete a snapshot (external ones are merged back)")
def cmd_delete(ns: argparse.Namespace) -> int:
    name = "@current" if ns.current or not ns.snapshotname else ns.snapshotname
    client(ns).request("DELETE", _path(ns.domain, name))
    say(f"Domain snapshot {ns.snapshotname or 'current'} deleted")
    return 0
