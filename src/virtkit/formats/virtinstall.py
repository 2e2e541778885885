"""virt-install's command line -> ``InstallSpec`` (pure: no I/O, no environment, no clock).

The approach is virt-manager's ``virtinst/cli.py``: argparse finds the options,
one parser per option reads its comma-separated sub-options into a Draft
(vi_guest, vi_devices; grammar in vi_optstr), and a separate defaults pass
builds the model (vi_build), so the user's values always win.

Every virt-install option is either implemented, accepted with a warning
(deprecated no-ops such as --os-type), or refused with "not supported by
virtkit yet": nothing is silently dropped. Graphics default to none (the
daemon is headless) where virt-install would pick VNC when a display exists.
"""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from virtkit.errors import ConfigError
from virtkit.formats import vi_devices as dev
from virtkit.formats import vi_guest as guest
from virtkit.formats.vi_build import build
from virtkit.formats.vi_draft import Draft, GraphicsDraft
from virtkit.formats.vi_host import (
    parse_cputune,
    parse_hostdev,
    parse_memorybacking,
    parse_numatune,
)
from virtkit.model.domain import GraphicsType
from virtkit.model.install import InstallSpec

__all__ = ["ParsedInstall", "parse_install_args", "supported_options"]


@dataclass(frozen=True)
class ParsedInstall:
    spec: InstallSpec
    dry_run: bool
    print_xml: bool
    warnings: list[str]


Handler = Callable[[Draft, str], None]

# (flags, handler, kind) — kind: "one" (last wins), "many" (repeatable),
# "flag" (no value), "opt" (optional value).
_VALUE: list[tuple[tuple[str, ...], Handler, str]] = [
    (("--name", "-n"), lambda d, v: setattr(d, "name", v), "one"),
    (("--uuid", "-u"), lambda d, v: setattr(d, "uuid", v), "one"),
    (("--memory", "-m"), guest.parse_memory, "one"),
    (("--ram", "-r"), lambda d, v: _ram(d, v), "one"),
    (("--vcpus",), guest.parse_vcpus, "one"),
    (("--cpu",), guest.parse_cpu, "one"),
    (("--hostdev", "--host-device"), parse_hostdev, "many"),
    (("--numatune",), parse_numatune, "one"),
    (("--cputune",), parse_cputune, "one"),
    (("--memorybacking",), parse_memorybacking, "one"),
    (("--os-type",), lambda d, v: _deprecated(d, "--os-type", "use --os-variant"), "one"),
    (("--os-variant", "--osinfo"), guest.parse_os_variant, "one"),
    (("--location", "-l"), guest.parse_location, "one"),
    (("--cdrom", "-c"), guest.parse_cdrom, "one"),
    (("--boot",), guest.parse_boot, "many"),
    (("--extra-args", "-x"), lambda d, v: setattr(d, "extra_args", v), "one"),
    (
        ("--initrd-inject",),
        lambda d, v: d.initrd_inject.append(guest.abs_path("--initrd-inject", "path", v)),
        "many",
    ),
    (("--disk",), dev.parse_disk, "many"),
    (("--network", "-w"), dev.parse_network, "many"),
    (("--graphics",), dev.parse_graphics, "many"),
    (("--console",), lambda d, v: _once(d, "--console", v), "many"),
    (("--serial",), lambda d, v: _once(d, "--serial", v), "many"),
    (("--virt-type",), guest.parse_virt_type, "one"),
    (("--arch",), guest.parse_arch, "one"),
    (("--machine",), guest.parse_machine, "one"),
    (("--boot-profile",), guest.parse_boot_profile, "one"),  # virtkit's own: fast = microvm
    (("--description",), lambda d, v: setattr(d, "description", v), "one"),
    (("--metadata",), guest.parse_metadata, "many"),
    (("--memballoon",), guest.parse_memballoon, "one"),
    (("--autoconsole",), guest.parse_autoconsole, "one"),
    (("--cloud-init",), guest.parse_cloud_init, "opt"),
    (("--wait",), guest.parse_wait, "opt"),
    (("--print-xml",), guest.parse_print_xml, "opt"),
    (("--import",), lambda d, v: d.methods.append(("--import", "")), "flag"),
    (("--pxe",), lambda d, v: d.methods.append(("--pxe", "")), "flag"),
    (("--nodisks",), lambda d, v: setattr(d, "no_disks", True), "flag"),
    (("--nonetworks",), lambda d, v: setattr(d, "no_nics", True), "flag"),
    (("--nographics",), lambda d, v: _nographics(d), "flag"),
    (("--noautoconsole",), lambda d, v: setattr(d, "autoconsole", False), "flag"),
    (("--noreboot",), lambda d, v: setattr(d, "noreboot", True), "flag"),
    (("--autostart",), lambda d, v: setattr(d, "autostart", True), "flag"),
    (("--transient",), lambda d, v: setattr(d, "transient", True), "flag"),
    (("--dry-run",), lambda d, v: setattr(d, "dry_run", True), "flag"),
    (("--hvm", "-v"), lambda d, v: _deprecated(d, "--hvm", "every guest is HVM"), "flag"),
    (("--accelerate",), lambda d, v: _deprecated(d, "--accelerate", "see --virt-type"), "flag"),
    (("--debug", "-d"), lambda d, v: _deprecated(d, "--debug", "see the daemon log"), "flag"),
    (
        ("--quiet", "-q"),
        lambda d, v: _deprecated(d, "--quiet", "virtkit has no quiet mode"),
        "flag",
    ),
    (("--force",), lambda d, v: _deprecated(d, "--force", "virtkit never prompts"), "flag"),
]

# virt-install options virtkit does not implement (yet): refused by name, never dropped.
UNSUPPORTED = [
    "--xml",
    "--qemu-commandline",
    "--unattended",
    "--install",
    "--reinstall",
    "--livecd",
    "--container",
    "--paravirt",
    "--sysinfo",
    "--idmap",
    "--features",
    "--clock",
    "--memtune",
    "--blkiotune",
    "--pm",
    "--events",
    "--resource",
    "--iothreads",
    "--seclabel",
    "--security",
    "--keywrap",
    "--launchSecurity",
    "--filesystem",
    "--controller",
    "--input",
    "--sound",
    "--video",
    "--parallel",
    "--channel",
    "--smartcard",
    "--tpm",
    "--redirdev",
    "--rng",
    "--panic",
    "--shmem",
    "--memdev",
    "--vsock",
    "--iommu",
    "--watchdog",
    "--destroy-on-exit",
    "--check",
    "--cpuset",
    "--file",
    "--file-size",
    "--nonsparse",
    "--vnc",
    "--vncport",
    "--vnclisten",
    "--sdl",
    "--noapic",
    "--noacpi",
    "--prompt",
    "--check-cpu",
    "--mac",
    "--bridge",
    "--keymap",
    "--nosound",
    "--audio",
    "--tpm",
    "--noautoconsole-graphical",
]
_UNSUPPORTED_SHORT = {"-f": "--file", "-s": "--file-size", "-b": "--bridge", "-p": "--paravirt"}


def supported_options() -> list[str]:
    return sorted(f for flags, _, _ in _VALUE for f in flags if f.startswith("--"))


def _nographics(d: Draft) -> None:
    if d.graphics is None:
        dev.parse_graphics(d, "none")
    elif d.graphics.type is not GraphicsType.NONE:
        raise ConfigError("--nographics conflicts with --graphics; give one of them")


def _once(d: Draft, option: str, text: str) -> None:
    dev.parse_console(d, text, option)


def _ram(d: Draft, text: str) -> None:
    d.warnings.append("--ram is deprecated; use --memory")
    guest.parse_memory(d, text, "--ram")


def _deprecated(d: Draft, option: str, why: str) -> None:
    d.warnings.append(f"{option} is deprecated and ignored ({why})")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        m = re.match(r"argument (--?[\w-]+)(/-\w)?: expected one argument", message)
        if m:
            opt = m.group(1)
            raise ConfigError(
                f"{opt} needs a value (write {opt}=VALUE when the value starts with '-')"
            )
        raise ConfigError(f"virtkit install: {message}")


def _argparser() -> _Parser:
    p = _Parser(prog="virtkit install", add_help=False, allow_abbrev=False)
    for flags, _, kind in _VALUE:
        dest = flags[0].lstrip("-").replace("-", "_")
        if kind == "one":
            p.add_argument(*flags, dest=dest)
        elif kind == "many":
            p.add_argument(*flags, dest=dest, action="append")
        elif kind == "flag":
            p.add_argument(*flags, dest=dest, action="store_true")
        else:
            p.add_argument(*flags, dest=dest, nargs="?", const="", default=None)
    return p


def _known() -> set[str]:
    return {f for flags, _, _ in _VALUE for f in flags}


def _prescan(argv: list[str]) -> None:
    known = _known()
    for token in argv:
        if not token.startswith("-") or token == "-" or token[1:2].isdigit() or " " in token:
            continue
        name = token.split("=", 1)[0] if token.startswith("--") else token[:2]
        if name in known:
            continue
        if name in ("-h", "--help"):
            raise ConfigError(
                "virtkit install takes virt-install's options: " + " ".join(supported_options())
            )
        if name == "--connect":
            raise ConfigError(
                "--connect belongs to virtkit itself: virtkit --connect URI install ..."
            )
        full = _UNSUPPORTED_SHORT.get(name, name)
        if full in UNSUPPORTED:
            raise ConfigError(f"virt-install option {full} is not supported by virtkit yet")
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigError(f"unknown option {name}{hint}")


def parse_install_args(argv: list[str], *, unprivileged: bool = False) -> ParsedInstall:
    """Parse a virt-install command line (without the program name).

    Raises ConfigError naming the option and the fix for every mistake.
    """
    _prescan(argv)
    ns, rest = _argparser().parse_known_args(argv)
    if rest:
        raise ConfigError(
            f"unexpected argument {rest[0]!r}: options take one value; quote "
            "values that contain spaces"
        )
    d = Draft(unprivileged=unprivileged)
    for flags, handler, kind in _VALUE:
        value = getattr(ns, flags[0].lstrip("-").replace("-", "_"))
        if kind == "flag":
            if value:
                handler(d, "")
        elif kind == "many":
            for v in value or []:
                handler(d, v)
        elif value is not None:
            handler(d, value)
    consoles = (ns.console or [], ns.serial or [])
    if any(len(c) > 1 for c in consoles):
        raise ConfigError(
            "give --console and --serial at most once each: virtkit guests have one serial port"
        )
    if d.graphics is None:
        d.graphics = GraphicsDraft(type=GraphicsType.NONE)  # headless daemon: no display
    spec = build(d)
    return ParsedInstall(
        spec=spec, dry_run=d.dry_run, print_xml=d.print_xml, warnings=list(d.warnings)
    )
