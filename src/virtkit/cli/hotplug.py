"""Hot-plug verbs: attach-disk, detach-disk, attach-device, detach-device, attach-interface,
detach-interface, setvcpus, vcpucount, vcpuinfo,
setmem, setmaxmem, dommemstat (virsh's words, flags and output shapes).

Imports at module level: stdlib and virtkit.cli.main only (the CLI must start fast).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from virtkit.cli.main import DOMAIN, a, args, client, command, say
from virtkit.errors import ConfigError

LIVE = a("--live", action="store_true", help="change the running guest")
CONFIG = a("--config", action="store_true", help="change the persistent definition")
CURRENT = a("--current", action="store_true", help="live if running, else config (default)")
PERSISTENT = a("--persistent", action="store_true", help="both: live (if running) and config")


def _flags(ns: argparse.Namespace, persistent: bool = True) -> dict[str, bool]:
    out = {"live": ns.live, "config": ns.config}
    if persistent:
        out["persistent"] = ns.persistent
    return out


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(1 << 16)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def _kib(text: str) -> int:
    """virsh sizes: a bare number is KiB; or with a unit (160M, 1G, 512MiB)."""
    from virtkit.storage.sizes import parse_size

    size = parse_size(text, default_unit="KiB")
    if size % 1024:
        raise ConfigError(f"size {text!r} is not a whole number of KiB")
    return size // 1024


@args(
    DOMAIN,
    a("source", help="image file"),
    a("target", help="guest device (vdb, vdc, ...)"),
    a("--driver", default="qemu", choices=["qemu"]),
    a("--subdriver", choices=["qcow2", "raw"], help="image format (default: from the name)"),
    a("--targetbus", default="virtio", choices=["virtio", "sata", "scsi"]),
    a("--mode", choices=["readonly", "shareable"], help="readonly: the guest cannot write"),
    a("--type", default="disk", choices=["disk"]),
    LIVE,
    CONFIG,
    PERSISTENT,
    CURRENT,
)
@command("attach-disk", "attach a disk image to a domain (hot plug with --live)")
def cmd_attach_disk(ns: argparse.Namespace) -> int:
    if ns.mode == "shareable":
        raise ConfigError("--mode shareable is not supported; use --mode readonly")
    client(ns).attach_disk(
        ns.domain,
        os.path.abspath(ns.source),
        ns.target,
        subdriver=ns.subdriver,
        bus=ns.targetbus,
        readonly=ns.mode == "readonly",
        **_flags(ns),
    )
    say("Disk attached successfully")
    return 0


@args(
    DOMAIN,
    a("target", help="guest device (vdb, ...)"),
    a(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for the guest to release the disk",
    ),
    LIVE,
    CONFIG,
    PERSISTENT,
    CURRENT,
)
@command("detach-disk", "detach a disk from a domain (waits for the guest to release it)")
def cmd_detach_disk(ns: argparse.Namespace) -> int:
    client(ns).detach_disk(ns.domain, ns.target, timeout_s=ns.timeout, **_flags(ns))
    say("Disk detached successfully")
    return 0


@args(
    DOMAIN,
    a(
        "file",
        help="device file: YAML (memory: {size_mib: N} / disk: {...}) or "
        "libvirt XML (<memory model='dimm'>, <disk>)",
    ),
    LIVE,
    CONFIG,
    PERSISTENT,
    CURRENT,
)
@command("attach-device", "attach a device from a file (DIMM memory, disk)")
def cmd_attach_device(ns: argparse.Namespace) -> int:
    client(ns).attach_device(ns.domain, _read(ns.file), **_flags(ns))
    say("Device attached successfully")
    return 0


@args(
    DOMAIN,
    a("file", help="device file, as for attach-device (a disk needs only its target)"),
    LIVE,
    CONFIG,
    PERSISTENT,
    CURRENT,
)
@command("detach-device", "detach a device described by a file (DIMM memory, disk)")
def cmd_detach_device(ns: argparse.Namespace) -> int:
    client(ns).detach_device(ns.domain, _read(ns.file), **_flags(ns))
    say("Device detached successfully")
    return 0


@args(
    DOMAIN,
    a("type", choices=["user", "bridge", "network"], help="interface type"),
    a("source", nargs="?", help="the bridge (type bridge) or managed network (type network)"),
    a("--model", default="virtio", choices=["virtio", "e1000", "e1000e", "rtl8139"]),
    a("--mac", help="MAC address (default: a random 52:54:00:xx:xx:xx)"),
    a("--target", help="accepted: the host tap name is chosen by virtkit"),
    LIVE,
    CONFIG,
    PERSISTENT,
    CURRENT,
)
@command("attach-interface", "attach a network interface (hot plug with --live)")
def cmd_attach_interface(ns: argparse.Namespace) -> int:
    if ns.type in ("bridge", "network") and not ns.source:
        example = "bridge br0" if ns.type == "bridge" else "network default"
        raise ConfigError(
            f"attach-interface {ns.type} needs the {ns.type}: attach-interface DOM {example}"
        )
    client(ns).attach_interface(
        ns.domain, ns.type, source=ns.source, model=ns.model, mac=ns.mac, **_flags(ns)
    )
    say("Interface attached successfully")
    return 0


@args(
    DOMAIN,
    a("type", choices=["user", "bridge", "network"], help="interface type"),
    a("--mac", help="which interface, when there are several of that type"),
    LIVE,
    CONFIG,
    PERSISTENT,
    CURRENT,
)
@command("detach-interface", "detach a network interface (waits for the guest)")
def cmd_detach_interface(ns: argparse.Namespace) -> int:
    client(ns).detach_interface(ns.domain, ns.type, mac=ns.mac, **_flags(ns))
    say("Interface detached successfully")
    return 0


@args(
    DOMAIN,
    a("count", type=int, help="number of vCPUs"),
    a("--maximum", action="store_true", help="set the maximum (with --config)"),
    a("--guest", action="store_true", help="not supported (needs a guest agent)"),
    LIVE,
    CONFIG,
    CURRENT,
)
@command("setvcpus", "change the number of vCPUs (hot plug with --live)")
def cmd_setvcpus(ns: argparse.Namespace) -> int:
    if ns.guest:
        raise ConfigError("--guest is not supported; use --live (vCPU hot plug)")
    client(ns).setvcpus(ns.domain, ns.count, maximum=ns.maximum, **_flags(ns, False))
    return 0


@args(DOMAIN)
@command("vcpucount", "show the domain's vCPU counts (maximum/current, config/live)")
def cmd_vcpucount(ns: argparse.Namespace) -> int:
    c = client(ns).vcpucount(ns.domain)
    for which in ("maximum", "current"):
        for where in ("config", "live"):
            value = c[f"{which}_{where}"]
            if value is not None:
                say(f"{which:<13}{where:<15}{value}")
    return 0


@args(DOMAIN)
@command("vcpuinfo", "show each vCPU: host CPU, state, CPU time")
def cmd_vcpuinfo(ns: argparse.Namespace) -> int:
    out: list[str] = []
    c = client(ns)
    vcpus = c.vcpuinfo(ns.domain)
    host_cpus = c.nodeinfo()["cpus"] if vcpus else 0
    for v in vcpus:
        from virtkit.model.hostfeat import parse_cpuset

        allowed = set(parse_cpuset(v["affinity"])) if v.get("affinity") else set()
        out += [
            f"{'VCPU:':<16}{v['vcpu']}",
            f"{'CPU:':<16}{v['cpu']}",
            f"{'State:':<16}{v['state']}",
            f"{'CPU time:':<16}{v['cpu_time_s']:.1f}s",
            f"{'CPU Affinity:':<16}" + "".join("-y"[i in allowed] for i in range(host_cpus)),
            "",
        ]
    sys.stdout.write("\n".join(out) + ("\n" if out else ""))
    return 0


@args(
    DOMAIN,
    a("size", help="new balloon target: KiB, or with a unit (160M, 1G)"),
    LIVE,
    CONFIG,
    CURRENT,
)
@command("setmem", "change the memory of a domain (virtio balloon)")
def cmd_setmem(ns: argparse.Namespace) -> int:
    client(ns).setmem(ns.domain, _kib(ns.size), **_flags(ns, False))
    return 0


@args(DOMAIN, a("size", help="boot memory: KiB, or with a unit (512M, 1G)"), LIVE, CONFIG, CURRENT)
@command("setmaxmem", "change the memory a domain boots with (--config)")
def cmd_setmaxmem(ns: argparse.Namespace) -> int:
    client(ns).setmaxmem(ns.domain, _kib(ns.size), **_flags(ns, False))
    return 0


@args(
    DOMAIN,
    a("--period", type=int, help="guest statistics collection period (seconds)"),
    LIVE,
    CONFIG,
    CURRENT,
)
@command("dommemstat", "memory statistics of a running domain (KiB)")
def cmd_dommemstat(ns: argparse.Namespace) -> int:
    stats: dict[str, Any] = client(ns).dommemstat(ns.domain, ns.period)
    for key, value in stats.items():
        say(f"{key} {value}")
    return 0
