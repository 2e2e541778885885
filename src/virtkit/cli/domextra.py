"""CLI verbs: clone (virt-clone), save/restore/managedsave, domblklist/domblkinfo/blockresize,
and undefine with its storage options. Output in virsh's shapes.

Imports at module level: stdlib and virtkit.cli.main only (the CLI must start fast).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from virtkit.cli.main import DOMAIN, a, args, client, command, say

STATE_AFTER = (
    a("--running", action="store_true", help="the guest runs after restore"),
    a("--paused", action="store_true", help="the guest is paused after restore"),
)


def _paused(ns: argparse.Namespace) -> bool | None:
    return True if ns.paused else False if ns.running else None


def table(head: list[str], rows: list[list[str]]) -> str:
    """virsh's plain table: a leading space, columns three spaces apart, a dashed rule."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]

    def line(cells: list[str]) -> str:
        return " " + "   ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))

    lines = [line(head), "-" * len(line(head)), *map(line, rows)]
    return "\n".join(x.rstrip() for x in lines) + "\n\n"


def human(n: int) -> str:
    size, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            break
        size /= 1024
    return f"{size:.3f} {unit}"


# -- clone ----------------------------------------------------------------------------------------


@args(a("-o", "--original", required=True, help="the domain to clone (shut off)"),
      a("-n", "--name", required=True, help="name of the new domain"),
      a("--auto-clone", action="store_true", help="new image paths beside the originals"),
      a("-f", "--file", action="append", default=[], metavar="PATH",
        help="new image path, one per writable disk, in order"),
      a("--linked", action="store_true",
        help="qcow2 overlays instead of full copies (instant; the original image is frozen "
             "as their common read-only base)"))  # fmt: skip
@command("clone", "clone a shut-off domain: new name, uuid, MACs and disk images (virt-clone)")
def cmd_clone(ns: argparse.Namespace) -> int:
    files = [os.path.abspath(f) for f in ns.file]
    r = client(ns).clone(ns.original, ns.name, files, auto_clone=ns.auto_clone,
                         linked=ns.linked)  # fmt: skip
    for d in r["disks"]:
        if d["mode"] != "shared":
            say(f"Allocating '{os.path.basename(d['path'])}'")
    for p in r["original_overlays"]:
        say(f"Domain '{ns.original}' now writes to {p} (its old image is the read-only base)")
    say(f"\nClone '{ns.name}' created successfully.")
    return 0


# -- save / restore / managedsave -----------------------------------------------------------------


@args(DOMAIN, a("file", help="where to write the guest's state"), *STATE_AFTER)
@command("save", "save a running domain's state to a file and stop it")
def cmd_save(ns: argparse.Namespace) -> int:
    file = os.path.abspath(ns.file)
    client(ns).save(ns.domain, file, _paused(ns))
    say(f"\nDomain '{ns.domain}' saved to {file}\n")
    return 0


@args(a("file", help="a file written by `virtkit save`"), *STATE_AFTER)
@command("restore", "restore a domain from a saved state file")
def cmd_restore(ns: argparse.Namespace) -> int:
    file = os.path.abspath(ns.file)
    client(ns).restore(file, _paused(ns))
    say(f"Domain restored from {file}")
    return 0


@args(DOMAIN, *STATE_AFTER)
@command("managedsave", "save a domain's state; the next start resumes from it")
def cmd_managedsave(ns: argparse.Namespace) -> int:
    client(ns).managed_save(ns.domain, _paused(ns))
    say(f"\nDomain '{ns.domain}' state saved by virtkit\n")
    return 0


@args(DOMAIN)
@command("managedsave-remove", "remove a domain's managed save image")
def cmd_managedsave_remove(ns: argparse.Namespace) -> int:
    c = client(ns)
    if not c.info(ns.domain).get("managed_save"):
        say(f"Domain '{ns.domain}' has no manage save image; removal skipped")
        return 0
    c.managed_save_remove(ns.domain)
    say(f"Removed managedsave image for domain '{ns.domain}'")
    return 0


# -- block devices --------------------------------------------------------------------------------


@args(DOMAIN, a("--details", action="store_true", help="also the type and device"),
      a("--inactive", action="store_true", help="accepted (shut off: the definition)"))  # fmt: skip
@command("domblklist", "list a domain's block devices")
def cmd_domblklist(ns: argparse.Namespace) -> int:
    blocks = client(ns).blocks(ns.domain)
    if ns.details:
        rows = [[b["type"], b["device"], b["target"], b["source"]] for b in blocks]
        sys.stdout.write(table(["Type", "Device", "Target", "Source"], rows))
    else:
        sys.stdout.write(table(["Target", "Source"], [[b["target"], b["source"]] for b in blocks]))
    return 0


def _target(c: Any, domain: str, device: str) -> str:
    """virsh takes a target (vda) or the image path."""
    if "/" not in device:
        return device
    for b in c.blocks(domain):
        if b["source"] == device:
            return str(b["target"])
    return device


@args(DOMAIN, a("device", help="target (vda) or image path"),
      a("--human", action="store_true", help="sizes in KiB/MiB/GiB"))  # fmt: skip
@command("domblkinfo", "show a block device's capacity, allocation and physical size")
def cmd_domblkinfo(ns: argparse.Namespace) -> int:
    c = client(ns)
    info = c.block_info(ns.domain, _target(c, ns.domain, ns.device))
    for key in ("capacity", "allocation", "physical"):
        value = human(info[key]) if ns.human else str(info[key])
        say(f"{key.capitalize() + ':':<16}{value}")
    say("")
    return 0


@args(DOMAIN, a("path", help="target (vda) or image path"),
      a("size", help="new size: a number with a unit (10G, 512M); a bare number is KiB"),
      a("--shrink", action="store_true", help="allow shrinking (loses data)"))  # fmt: skip
@command("blockresize", "resize a domain's disk (running or shut off)")
def cmd_blockresize(ns: argparse.Namespace) -> int:
    from virtkit.storage.sizes import parse_size

    size = parse_size(ns.size, default_unit="KiB")
    c = client(ns)
    c.block_resize(ns.domain, _target(c, ns.domain, ns.path), size, ns.shrink)
    say(f"Block device '{ns.path}' is resized")
    return 0


# -- undefine -------------------------------------------------------------------------------------


@args(DOMAIN,
      a("--remove-all-storage", action="store_true", help="remove the domain's managed images"),
      a("--storage", default="", metavar="LIST",
        help="comma-separated targets or image paths to remove"),
      a("--delete-storage-volume-snapshots", action="store_true", help="accepted"),
      a("--managed-save", action="store_true", help="also remove the managed save image"),
      a("--snapshots-metadata", action="store_true", help="accepted"),
      a("--nvram", action="store_true", help="also remove the UEFI variable store"),
      a("--keep-nvram", action="store_true", help="keep the UEFI variables (default)"))  # fmt: skip
@command("undefine", "remove a domain's definition (and, if asked, its storage)")
def cmd_undefine(ns: argparse.Namespace) -> int:
    storage = [s.strip() for s in ns.storage.split(",") if s.strip()]
    r = client(ns).undefine_with(
        ns.domain, remove_all_storage=ns.remove_all_storage, storage=storage,
        managed_save=ns.managed_save, nvram=ns.nvram and not ns.keep_nvram,
    )  # fmt: skip
    say(f"Domain '{ns.domain}' has been undefined")
    for v in r["removed"]:
        say(f"Volume '{v['target']}'({v['path']}) removed.")
    for v in r["kept"]:
        if v["reason"].startswith("not managed"):
            say(f"Storage volume '{v['target']}'({v['path']}) is not managed by virtkit. "
                "Remove it manually.")  # fmt: skip
        else:
            say(f"Storage volume '{v['target']}'({v['path']}) not removed: {v['reason']}")
    return 0
