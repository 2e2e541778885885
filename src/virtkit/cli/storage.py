"""virsh's storage verbs: pool-* and vol-*. Same words, same output shapes.

Imported by cli/main.py to register the verbs: stdlib and cli.main helpers only at
import time (rich is imported by the transfer verbs when they draw a bar).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from virtkit.cli.main import a, args, client, command, say
from virtkit.errors import ConfigError, VirtkitError

POOL = a("pool", help="pool name")
VOL = a("vol", help="volume name (with --pool) or path")
VPOOL = a("--pool", default=None, help="pool the volume is in")
BYTES = a("--bytes", action="store_true", help="sizes in bytes")
_ZEROS = bytes(65536)
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def pretty(n: int | None, in_bytes: bool = False) -> str:
    """virsh's capacity text: 1.00 GiB (or '1073741824 bytes' with --bytes)."""
    if n is None:
        return "-"
    if in_bytes:
        return f"{n} bytes"
    value, unit = float(n), 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value, unit = value / 1024, unit + 1
    return f"{value:.2f} {_UNITS[unit]}"


def table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(head)]

    def line(cells: list[str]) -> str:
        return (" " + "   ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))).rstrip()

    first = line(head)
    return "\n".join([first, "-" * (sum(widths) + 3 * len(widths)), *map(line, rows)]) + "\n\n"


def kv(rows: list[tuple[str, str]]) -> str:
    return "".join(f"{k + ':':<16}{v}\n" for k, v in rows) + "\n"


# -- pools --------------------------------------------------------------------------------------


@args(a("name", help="pool name"), a("type", help="pool type (dir)"),
      a("extra", nargs="*", help="virsh's source-host source-path source-dev source-name target"),
      a("--target", default=None, help="directory of the pool"),
      a("--source-path", default=None, help=argparse.SUPPRESS))  # fmt: skip
@command("pool-define-as", "define a storage pool (type dir) from its target directory")
def cmd_pool_define_as(ns: argparse.Namespace) -> int:
    target = ns.target
    if target is None and len(ns.extra) >= 5 and ns.extra[4] != "-":
        target = ns.extra[4]  # virsh pool-define-as NAME dir - - - - /path
    if not target:
        raise ConfigError("give the pool's directory: --target /path/to/dir")
    client(ns).define_pool(ns.name, ns.type, target)
    say(f"Pool {ns.name} defined")
    return 0


@args(a("--all", action="store_true", help="include inactive pools"),
      a("--inactive", action="store_true", help="only inactive pools"),
      a("--details", action="store_true", help="show capacity, allocation, available"),
      a("--name", action="store_true", help="print only names"))  # fmt: skip
@command("pool-list", "list storage pools")
def cmd_pool_list(ns: argparse.Namespace) -> int:
    rows = client(ns).list_pools(ns.all or ns.inactive)
    if ns.inactive:
        rows = [r for r in rows if r["state"] != "running"]
    if ns.name:
        for r in rows:
            say(r["name"])
        return 0
    if ns.details:
        head = ["Name", "State", "Autostart", "Persistent", "Capacity", "Allocation", "Available"]
        cells = [[r["name"], r["state"], _yes(r["autostart"]), _yes(r["persistent"]),
                  pretty(r["capacity"]), pretty(r["allocation"]), pretty(r["available"])]
                 for r in rows]  # fmt: skip
    else:
        head = ["Name", "State", "Autostart"]
        cells = [[r["name"], "active" if r["state"] == "running" else "inactive",
                  _yes(r["autostart"])] for r in rows]  # fmt: skip
    sys.stdout.write(table(head, cells))
    return 0


def _yes(b: bool) -> str:
    return "yes" if b else "no"


@args(POOL, BYTES)
@command("pool-info", "show storage pool information")
def cmd_pool_info(ns: argparse.Namespace) -> int:
    p = client(ns).pool_info(ns.pool)
    rows = [("Name", p["name"]), ("UUID", p["uuid"]), ("State", p["state"]),
            ("Persistent", _yes(p["persistent"])), ("Autostart", _yes(p["autostart"]))]  # fmt: skip
    if p["state"] == "running":
        rows += [(k.title(), pretty(p[k], ns.bytes)) for k in ("capacity", "allocation",
                                                               "available")]  # fmt: skip
    sys.stdout.write(kv(rows))
    return 0


@args(POOL)
@command("pool-dumpxml", "print a storage pool's definition as libvirt pool XML")
def cmd_pool_dumpxml(ns: argparse.Namespace) -> int:
    from xml.sax.saxutils import escape

    p = client(ns).pool_info(ns.pool)
    out = [f"<pool type='{escape(p['type'])}'>", f"  <name>{escape(p['name'])}</name>",
           f"  <uuid>{p['uuid']}</uuid>"]  # fmt: skip
    for k in ("capacity", "allocation", "available"):
        out.append(f"  <{k} unit='bytes'>{p[k] or 0}</{k}>")
    out += ["  <source>", "  </source>", "  <target>", f"    <path>{escape(p['target'])}</path>",
            "  </target>", "</pool>"]  # fmt: skip
    say("\n".join(out))
    return 0


def _pool_verb(verb: str, help_: str, done: str) -> None:
    @args(POOL)
    @command(f"pool-{verb}", help_)
    def cmd(ns: argparse.Namespace) -> int:
        client(ns).pool_action(ns.pool, verb)
        say(f"Pool {ns.pool} {done}")
        return 0


_pool_verb("start", "start (activate) a storage pool", "started")
_pool_verb("destroy", "stop (deactivate) a storage pool; its files stay", "destroyed")
_pool_verb("build", "create a storage pool's directory", "built")
_pool_verb("refresh", "rescan a storage pool's directory for volumes", "refreshed")


@args(POOL)
@command("pool-undefine", "remove an inactive storage pool's definition (files stay)")
def cmd_pool_undefine(ns: argparse.Namespace) -> int:
    client(ns).undefine_pool(ns.pool)
    say(f"Pool {ns.pool} has been undefined")
    return 0


@args(POOL, a("--disable", action="store_true", help="do not start it with the daemon"))
@command("pool-autostart", "start a storage pool when the daemon starts")
def cmd_pool_autostart(ns: argparse.Namespace) -> int:
    client(ns).pool_autostart(ns.pool, not ns.disable)
    say(f"Pool {ns.pool} {'unmarked' if ns.disable else 'marked'} as autostarted")
    return 0


# -- volumes ------------------------------------------------------------------------------------


def _vol(ns: argparse.Namespace, c: Any) -> tuple[str, str]:
    if ns.pool:
        return str(ns.pool), str(ns.vol)
    if "/" in ns.vol:
        d = c.lookup_volume(os.path.abspath(ns.vol))
        return str(d["pool"]), str(d["name"])
    raise ConfigError(f"which pool is {ns.vol!r} in? add --pool POOL (or give the volume's path)")


@args(POOL, a("name", help="volume name"), a("capacity", help="size, e.g. 10G"),
      a("--allocation", default=None, help="bytes to allocate now (default: sparse)"),
      a("--format", default="raw", choices=["raw", "qcow2"]),
      a("--backing-vol", default=None, help="backing volume (name in POOL, or path)"),
      a("--backing-vol-format", default=None, choices=["raw", "qcow2"]),
      a("--prealloc-metadata", action="store_true", help=argparse.SUPPRESS))  # fmt: skip
@command("vol-create-as", "create a volume in a storage pool")
def cmd_vol_create_as(ns: argparse.Namespace) -> int:
    spec = {"name": ns.name, "capacity": ns.capacity, "format": ns.format,
            # --prealloc-metadata: qcow2 metadata now, data on write (0 < allocation < size)
            "allocation": ns.allocation or ("1" if ns.prealloc_metadata else None),
            "backing_vol": ns.backing_vol,
            "backing_vol_format": ns.backing_vol_format}  # fmt: skip
    client(ns).create_volume(ns.pool, spec)
    say(f"Vol {ns.name} created")
    return 0


@args(a("pool", nargs="?", help="pool name"), a("--pool", dest="pool_opt", default=None),
      a("--details", action="store_true", help="show type, capacity and allocation"))  # fmt: skip
@command("vol-list", "list the volumes of a storage pool")
def cmd_vol_list(ns: argparse.Namespace) -> int:
    pool = ns.pool or ns.pool_opt
    if not pool:
        raise ConfigError("which pool? `virtkit vol-list POOL` (`virtkit pool-list` shows them)")
    rows = client(ns).list_volumes(pool, ns.details)
    if ns.details:
        head = ["Name", "Path", "Type", "Capacity", "Allocation"]
        cells = [[r["name"], r["path"], r["type"], pretty(r["capacity"]),
                  pretty(r["allocation"])] for r in rows]  # fmt: skip
    else:
        head, cells = ["Name", "Path"], [[r["name"], r["path"]] for r in rows]
    sys.stdout.write(table(head, cells))
    return 0


@args(VOL, VPOOL, BYTES)
@command("vol-info", "show storage volume information")
def cmd_vol_info(ns: argparse.Namespace) -> int:
    c = client(ns)
    v = c.volume_info(*_vol(ns, c))
    rows = [("Name", v["name"]), ("Type", v["type"]), ("Capacity", pretty(v["capacity"], ns.bytes)),
            ("Allocation", pretty(v["allocation"], ns.bytes)), ("Format", v["format"])]  # fmt: skip
    if v.get("backing"):
        rows.append(("Backing", f"{v['backing']} ({v['backing_format']})"))
    if v.get("used_by"):
        rows.append(("Used by", ", ".join(v["used_by"])))
    sys.stdout.write(kv(rows))
    return 0


@args(VOL, VPOOL)
@command("vol-path", "print a storage volume's path", "vol-key")
def cmd_vol_path(ns: argparse.Namespace) -> int:
    c = client(ns)
    say(c.volume_info(*_vol(ns, c))["path"])
    return 0


@args(VOL, VPOOL)
@command("vol-delete", "delete a storage volume (refused while a domain uses it)")
def cmd_vol_delete(ns: argparse.Namespace) -> int:
    c = client(ns)
    c.delete_volume(*_vol(ns, c))
    say(f"Vol {ns.vol} deleted")
    return 0


@args(VOL, a("capacity", help="new size (or change with --delta), e.g. 20G"), VPOOL,
      a("--delta", action="store_true", help="grow (or with --shrink, shrink) by CAPACITY"),
      a("--shrink", action="store_true", help="allow shrinking (loses the data at the end)"),
      a("--allocate", action="store_true", help=argparse.SUPPRESS))  # fmt: skip
@command("vol-resize", "resize a storage volume")
def cmd_vol_resize(ns: argparse.Namespace) -> int:
    cap, delta = ns.capacity, ns.delta
    if cap.startswith("-"):  # virsh: a negative size means --delta and needs --shrink
        if not ns.shrink:
            raise ConfigError("a negative size shrinks the volume: add --shrink if you mean it")
        cap, delta = cap[1:], True
    c = client(ns)
    c.resize_volume(*_vol(ns, c), cap, delta=delta, shrink=ns.shrink)
    say(f"Size of volume '{ns.vol}' successfully changed {'by' if delta else 'to'} {cap}")
    return 0


@args(VOL, a("newname", help="name of the copy"), VPOOL)
@command("vol-clone", "copy a storage volume (full, sparse copy) in its pool")
def cmd_vol_clone(ns: argparse.Namespace) -> int:
    c = client(ns)
    c.clone_volume(*_vol(ns, c), ns.newname)
    say(f"Vol {ns.newname} cloned from {ns.vol}")
    return 0


def _bar(label: str, total: int) -> tuple[Any, Any]:
    """A rich progress bar on stderr when it is a terminal, else (None, None)."""
    if not sys.stderr.isatty():
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    bar = Progress(label, BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   console=Console(stderr=True))  # fmt: skip
    bar.start()
    return bar, bar.add_task(label, total=total)


@args(VOL, a("file", help="file to read"), VPOOL)
@command("vol-upload", "replace a storage volume's content with a file's")
def cmd_vol_upload(ns: argparse.Namespace) -> int:
    c = client(ns)
    pool, vol = _vol(ns, c)
    try:
        f = open(ns.file, "rb")  # noqa: SIM115
    except OSError as exc:
        raise ConfigError(f"cannot read {ns.file}: {exc.strerror}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        bar, task = _bar(f"Uploading {os.path.basename(ns.file)}", size)
        try:
            c.upload_volume(pool, vol, f, size,
                            (lambda n: bar.update(task, completed=n)) if bar else None)  # fmt: skip
        finally:
            if bar is not None:
                bar.stop()
    return 0


@args(VOL, a("file", help="file to write"), VPOOL,
      a("--sparse", action="store_true", help="accepted: zeros always become holes"))  # fmt: skip
@command("vol-download", "copy a storage volume's content into a file")
def cmd_vol_download(ns: argparse.Namespace) -> int:
    c = client(ns)
    pool, vol = _vol(ns, c)
    size = int(c.volume_info(pool, vol)["file_size"] or 0)
    try:
        f = open(ns.file, "wb")  # noqa: SIM115
    except OSError as exc:
        raise ConfigError(f"cannot write {ns.file}: {exc.strerror}") from None
    bar, task = _bar(f"Downloading {vol}", size)
    try:
        with f:
            done = _download(c, pool, vol, f, size, bar, task)
            f.truncate(done)  # trailing holes
    except (VirtkitError, OSError, KeyboardInterrupt):
        os.unlink(ns.file)
        raise
    finally:
        if bar is not None:
            bar.stop()
    return 0


def _download(c: Any, pool: str, vol: str, f: Any, size: int, bar: Any, task: Any) -> int:
    done, chunk = 0, 4 << 20
    while done < size:
        data = c.read_volume(pool, vol, done, min(chunk, size - done))
        if not data:
            break
        view = memoryview(data)
        for i in range(0, len(data), 65536):  # zero blocks become holes
            block = view[i : i + 65536]
            if block.tobytes() != _ZEROS[: len(block)]:
                f.seek(done + i)
                f.write(block)
        done += len(data)
        if bar is not None:
            bar.update(task, completed=done)
    return done
