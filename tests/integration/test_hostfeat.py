"""Host features on a real tiny guest under TCG: two guest NUMA cells (and sockets) the guest
sees, memory bound to host node 0, vCPU and emulator pinning applied at start and changed
live, KSM opt-out on QEMU's command line, the overcommit allowance shown and enforced."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.conftest import Daemon, qemu_pids, tiny_yaml
from tests.integration.test_survival import console_roundtrip

pytestmark = pytest.mark.qemu

NUMA_GUEST = """\
accel: tcg
vcpus: 2
topology: {sockets: 2, cores: 1, threads: 1}
max_memory_mib: 512
memory_slots: 2
numa:
  cells:
    - {cpus: "0", memory_mib: 128}
    - {cpus: "1", memory_mib: 128}
numatune: {nodeset: "0", mode: strict}
cputune:
  vcpupin: [{vcpu: 0, cpuset: "1"}]
  emulatorpin: "0"
mem_merge: false
"""


def threads(pid: int) -> dict[str, str]:
    """QEMU thread name (debug-threads=on: 'CPU 0/TCG', 'qemu-system-x86') -> allowed CPUs."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        comm = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        m = re.search(r"Cpus_allowed_list:\s*(\S+)", status)
        out.setdefault(comm, m.group(1) if m else "")
    return out


def bound_regions(pid: int) -> int:
    """QEMU's mappings whose memory policy is bind:0 (the kernel's view of host-nodes=0)."""
    maps = Path(f"/proc/{pid}/numa_maps").read_text().splitlines()
    return sum(1 for line in maps if line.split()[1:2] == ["bind:0"])


def test_numa_guest_pinning_and_ksm_opt_out(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two host CPUs to tell pins apart")
    f = tmp_path / "numa.yaml"
    f.write_text(tiny_yaml(tiny, "numa", extra=NUMA_GUEST))
    daemon.cli("define", str(f))
    daemon.cli("start", "numa")
    daemon.wait_console("numa", "tiny# ")
    # the guest sees its two NUMA nodes, each with one CPU (of its own socket)
    console_roundtrip(
        daemon, "numa",
        "echo NODES-$(ls -d /sys/devices/system/node/node* | wc -l)-"
        "$(cat /sys/devices/system/node/node1/cpulist)-PKG"
        "$(cat /sys/devices/system/cpu/cpu1/topology/physical_package_id)",
        "NODES-2-1-PKG1",
    )  # fmt: skip
    (pid,) = qemu_pids(str(daemon.run_dir))
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"pc-q35-7.2,accel=tcg,mem-merge=off" in argv
    assert b"memory-backend-ram,id=ram1,size=128M,host-nodes=0,policy=bind" in argv
    # the kernel has the binding: both cells' RAM, and a hot-plugged DIMM's, are bind:0
    assert bound_regions(pid) == 2
    dimm = tmp_path / "dimm.yaml"
    dimm.write_text("memory: {size_mib: 128}\n")
    daemon.cli("attach-device", "numa", str(dimm), "--live")
    assert bound_regions(pid) == 3
    # pins from the definition were applied before the guest ran
    t = threads(pid)
    assert t["CPU 0/TCG"] == "1"
    assert t["qemu-system-x86"] == "0"
    out = daemon.cli("vcpupin", "numa").stdout
    assert re.search(r"^ 0\s+1$", out, re.M), out
    # change live: the thread moves, the definition keeps its pin
    daemon.cli("vcpupin", "numa", "0", "0-1", "--live")
    assert threads(pid)["CPU 0/TCG"] == "0-1"
    assert re.search(r"^ 0\s+0-1$", daemon.cli("vcpupin", "numa").stdout, re.M)
    assert re.search(r"^ 0\s+1$", daemon.cli("vcpupin", "numa", "--config").stdout, re.M)
    daemon.cli("emulatorpin", "numa", "1", "--live")
    assert threads(pid)["qemu-system-x86"] == "1"
    assert "*: 1" in daemon.cli("emulatorpin", "numa").stdout
    info = daemon.cli("vcpuinfo", "numa").stdout
    assert re.search(r"CPU Affinity:\s+yy", info), info
    r = daemon.cli("numatune", "numa")
    assert "numa_mode      : strict" in r.stdout and "numa_nodeset   : 0" in r.stdout
    # the promise is visible, and a start beyond the allowance is refused without QEMU
    node = daemon.cli("nodeinfo").stdout
    assert re.search(r"vCPUs promised:\s+2 of \d+", node), node
    # 256 MiB at boot + the 128 MiB DIMM
    limit = int(re.search(r"Memory promised:\s+384 of (\d+) MiB", node).group(1))  # type: ignore[union-attr]
    f2 = tmp_path / "huge.yaml"
    f2.write_text(tiny_yaml(tiny, "huge", extra="accel: tcg\n").replace(
        "memory_mib: 256", f"memory_mib: {limit}"))  # fmt: skip
    daemon.cli("define", str(f2))
    r = daemon.cli("start", "huge", check=False)
    assert r.returncode == 4, r.stderr
    assert f"needs {limit} MiB more memory, but 384 MiB are already promised" in r.stderr
    assert "VIRTKIT_MEMORY_ALLOCATION_RATIO" in r.stderr
    assert "<cell id=\"1\" cpus=\"1\" memory=\"131072\" unit=\"KiB\" />" in daemon.cli(
        "dumpxml", "numa").stdout  # fmt: skip
    daemon.cli("destroy", "numa")


def test_host_views_on_this_host(daemon: Daemon) -> None:
    """Read-only views of the real host (nothing is written to its sysfs)."""
    caps = daemon.cli("capabilities").stdout
    nodes = len([n for n in os.listdir("/sys/devices/system/node") if re.fullmatch(r"node\d+", n)])
    assert f'<cells num="{nodes}">' in caps and '<sibling id="0" value="10" />' in caps
    assert re.search(r"^CPU\(s\):\s+\d+$", daemon.cli("nodeinfo").stdout, re.M)
    ksm = daemon.cli("node-memory-tune").stdout
    if os.path.isdir("/sys/kernel/mm/ksm"):
        assert "Shared memory:" in ksm and "shm_pages_to_scan" in ksm and "shm_full_scans" in ksm
    names = daemon.cli("nodedev-list", "--cap", "pci").stdout.split()
    if names:
        assert all(re.fullmatch(r"pci_[0-9a-f]{4}_[0-9a-f]{2}_[0-9a-f]{2}_[0-7]", n) for n in names)
        xml = daemon.cli("nodedev-dumpxml", names[0]).stdout
        assert f"<name>{names[0]}</name>" in xml and '<capability type="pci">' in xml
    r = daemon.cli("nodedev-dumpxml", "pci_0000_7f_1f_7", check=False)
    assert r.returncode == 3 and "nodedev-list" in r.stderr


def test_vcpu_hotplug_within_allowance_gets_pins(
    daemon: Daemon, tiny: object, tmp_path: Path
) -> None:
    host_cpus = len(os.sched_getaffinity(0))
    if host_cpus < 2:
        pytest.skip("needs two host CPUs to tell pins apart")
    daemon.stop()
    daemon.env["VIRTKIT_CPU_ALLOCATION_RATIO"] = "1"  # the host allows host_cpus vCPUs
    daemon.start()
    f = tmp_path / "hp.yaml"
    extra = f"accel: tcg\nvcpus: 1\nmax_vcpus: {host_cpus + 1}\ncputune: {{emulatorpin: '0'}}\n"
    f.write_text(tiny_yaml(tiny, "hp", extra=extra))
    daemon.cli("define", str(f))
    daemon.cli("start", "hp")
    daemon.wait_console("hp", "tiny# ")
    (pid,) = qemu_pids(str(daemon.run_dir))
    daemon.cli("setvcpus", "hp", "2", "--live")
    # the new vCPU thread is not left on the emulator's CPU: unpinned vCPUs get every CPU
    assert threads(pid)["CPU 1/TCG"] == f"0-{host_cpus - 1}"
    assert threads(pid)["qemu-system-x86"] == "0"
    r = daemon.cli("setvcpus", "hp", str(host_cpus + 1), "--live", check=False)
    assert r.returncode == 4, r.stderr
    assert f"needs {host_cpus - 1} more vCPUs" in r.stderr and "cpu_allocation_ratio 1" in r.stderr
    daemon.cli("destroy", "hp")
