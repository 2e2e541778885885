"""Host-feature verbs: nodeinfo, capabilities, node-memory-tune (KSM), nodedev-list,
nodedev-dumpxml, nodedev-detach, nodedev-reattach, nodedev-sriov, vcpupin, emulatorpin,
numatune (virsh's words, flags and output shapes).

Imports at module level: stdlib and virtkit.cli.main only (the CLI must start fast).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from virtkit.cli.main import DOMAIN, a, args, client, command, say
from virtkit.errors import ConfigError

LIVE = a("--live", action="store_true", help="the running guest")
CONFIG = a("--config", action="store_true", help="the persistent definition")
CURRENT = a("--current", action="store_true", help="live if running, else config (default)")
NODEDEV = a("device", help="node device name (pci_0000_03_00_0) or PCI address")


def _flags(ns: argparse.Namespace) -> dict[str, bool]:
    return {"live": ns.live, "config": ns.config}


@command("nodeinfo", "show the host's CPUs, memory and what guests have been promised")
def cmd_nodeinfo(ns: argparse.Namespace) -> int:
    n = client(ns).nodeinfo()
    o = n["overcommit"]
    rows = [
        ("CPU model:", n["cpu_model"]),
        ("CPU(s):", n["cpus"]),
        ("CPU frequency:", f"{n['cpu_mhz']} MHz"),
        ("CPU socket(s):", n["sockets"]),
        ("Core(s) per socket:", n["cores_per_socket"]),
        ("Thread(s) per core:", n["threads_per_core"]),
        ("NUMA cell(s):", n["numa_cells"]),
        ("Memory size:", f"{n['memory_kib']} KiB"),
        ("vCPUs promised:", f"{o['vcpus_promised']} of {o['vcpus_limit']} ({o['host_cpus']} "
                            f"CPUs x cpu_allocation_ratio {o['cpu_allocation_ratio']:g})"),
        ("Memory promised:", f"{o['memory_promised_mib']} of {o['memory_limit_mib']} MiB "
                             f"({o['host_memory_mib']} MiB x memory_allocation_ratio "
                             f"{o['memory_allocation_ratio']:g})"),
        ("Running guests:", o["guests"]),
    ]  # fmt: skip
    for label, value in rows:
        say(f"{label:<21}{value}")
    return 0


@args(a("--json", action="store_true", help="the daemon's JSON instead of libvirt XML"))
@command("capabilities", "show the host's capabilities (CPU, NUMA topology) as libvirt XML")
def cmd_capabilities(ns: argparse.Namespace) -> int:
    caps = client(ns).capabilities()
    if ns.json:
        import json

        say(json.dumps(caps, indent=2))
        return 0
    from virtkit.formats.libvirt_host_xml import capabilities_xml

    sys.stdout.write(capabilities_xml(caps))
    return 0


@args(
    a("--shm-pages-to-scan", type=int, metavar="N", help="pages KSM scans before sleeping"),
    a("--shm-sleep-millisecs", type=int, metavar="N", help="milliseconds between scans"),
    a("--shm-merge-across-nodes", type=int, choices=[0, 1], help="merge pages across NUMA"),
    a("--shm-run", type=int, choices=[0, 1, 2], help="0 stop, 1 run, 2 stop and unmerge all"),
)
@command("node-memory-tune", "show or set kernel same-page merging (KSM) parameters")
def cmd_node_memory_tune(ns: argparse.Namespace) -> int:
    changes = {
        k: v
        for k, v in (
            ("pages_to_scan", ns.shm_pages_to_scan),
            ("sleep_millisecs", ns.shm_sleep_millisecs),
            ("merge_across_nodes", ns.shm_merge_across_nodes),
            ("run", ns.shm_run),
        )
        if v is not None
    }
    st = client(ns).ksm(**changes)
    if not st["available"]:
        say("KSM is not available on this host (no /sys/kernel/mm/ksm)")
        return 0
    if changes:
        return 0
    from virtkit.host.ksm import VIRSH_ORDER

    say("Shared memory:")
    values = st["values"]
    for key in VIRSH_ORDER:  # virsh's lines; `--json`-free: the API has every KSM file
        if key in values:
            say(f"\t{'shm_' + key:<15} {values[key]}")
    return 0


@args(a("--cap", help="only devices with this capability (pci)"),
      a("--tree", action="store_true", help="accepted; prints the flat list"))  # fmt: skip
@command("nodedev-list", "list the host's devices (PCI)")
def cmd_nodedev_list(ns: argparse.Namespace) -> int:
    for d in client(ns).nodedev_list(ns.cap):
        say(d["name"])
    return 0


@args(NODEDEV)
@command("nodedev-dumpxml", "show a host device as libvirt node device XML")
def cmd_nodedev_dumpxml(ns: argparse.Namespace) -> int:
    from virtkit.formats.libvirt_host_xml import nodedev_xml

    sys.stdout.write(nodedev_xml(client(ns).nodedev(ns.device)))
    return 0


@args(NODEDEV, a("--driver", default="vfio", choices=["vfio"], help="the stub driver"))
@command("nodedev-detach", "bind a host PCI device to vfio-pci for passthrough", "nodedev-dettach")
def cmd_nodedev_detach(ns: argparse.Namespace) -> int:
    d = client(ns).nodedev(ns.device, "detach")
    say(f"Device {d['name']} detached")
    return 0


@args(NODEDEV)
@command("nodedev-reattach", "give a host PCI device back to its host driver")
def cmd_nodedev_reattach(ns: argparse.Namespace) -> int:
    d = client(ns).nodedev(ns.device, "reattach")
    say(f"Device {d['name']} re-attached")
    return 0


@args(NODEDEV, a("--numvfs", type=int, required=True, metavar="N", help="VFs to have (0 removes)"))
@command("nodedev-sriov", "create or remove SR-IOV virtual functions of a PCI device")
def cmd_nodedev_sriov(ns: argparse.Namespace) -> int:
    d = client(ns).nodedev(ns.device, "sriov", numvfs=ns.numvfs)
    say(f"Device {d['name']} has {d['sriov_numvfs']} virtual functions")
    for vf in d["virtfns"]:
        say("  pci_" + vf.replace(":", "_").replace(".", "_"))
    return 0


def _table(head: str, rows: list[tuple[str, str]]) -> None:
    say(head)
    say("-" * 22)
    for left, right in rows:
        say(f" {left:<6} {right}")


@args(DOMAIN, a("vcpu", nargs="?", type=int, help="vCPU number"),
      a("cpulist", nargs="?", help="host CPUs: 0-3,8 (^N excludes)"),
      LIVE, CONFIG, CURRENT)  # fmt: skip
@command("vcpupin", "show or set the host CPUs each vCPU may run on")
def cmd_vcpupin(ns: argparse.Namespace) -> int:
    r = client(ns).vcpupin(ns.domain, ns.vcpu, ns.cpulist, **_flags(ns))
    if ns.cpulist is None:
        _table(" VCPU   CPU Affinity", [(str(p["vcpu"]), p["cpuset"]) for p in r["vcpus"]])
    return 0


@args(DOMAIN, a("cpulist", nargs="?", help="host CPUs: 0-3,8"), LIVE, CONFIG, CURRENT)
@command("emulatorpin", "show or set the host CPUs QEMU's own threads may run on")
def cmd_emulatorpin(ns: argparse.Namespace) -> int:
    r = client(ns).emulatorpin(ns.domain, ns.cpulist, **_flags(ns))
    if ns.cpulist is None:
        say(" emulator: CPU Affinity")
        say("-" * 34)
        say(f"       *: {r['cpuset']}")
    return 0


@args(DOMAIN, a("--mode", choices=["strict", "preferred", "interleave"]),
      a("--nodeset", help="host NUMA nodes: 0-1 ('' removes the binding)"),
      LIVE, CONFIG, CURRENT)  # fmt: skip
@command("numatune", "show or set the host NUMA nodes a domain's memory comes from")
def cmd_numatune(ns: argparse.Namespace) -> int:
    if ns.live and (ns.mode or ns.nodeset is not None):
        raise ConfigError("numatune changes take effect at the next start: use --config")
    r: dict[str, Any] = client(ns).numatune(ns.domain, ns.nodeset, ns.mode, **_flags(ns))
    if ns.mode is None and ns.nodeset is None:
        say(f"{'numa_mode':<15}: {r['mode']}")
        say(f"{'numa_nodeset':<15}: {r['nodeset']}")
    return 0
