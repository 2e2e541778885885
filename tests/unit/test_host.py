"""host/facts.py and host/validate.py against fake /proc, /sys and /dev trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from virtkit.host import facts
from virtkit.host.facts import CgroupVersion, HostRoot
from virtkit.host.validate import Check, CheckStatus, format_report, run_checks
from virtkit.host.verdict import KvmVerdict
from virtkit.model.domain import Accel

INTEL_CPUINFO = """\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz
flags\t\t: fpu vme de pse tsc msr pae vmx ept lm

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz
flags\t\t: fpu vme de pse tsc msr pae vmx ept lm
"""

PLAIN_CPUINFO = """\
processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu vme de pse tsc msr pae hypervisor lm
"""


class Tree:
    """A fake host root: write files by their absolute host path."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = HostRoot(base)

    def write(self, absolute: str, text: str = "") -> Tree:
        p = self.base / absolute.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return self

    def mkdir(self, absolute: str) -> Tree:
        (self.base / absolute.lstrip("/")).mkdir(parents=True, exist_ok=True)
        return self


def intel_host(tmp_path: Path) -> Tree:
    return (
        Tree(tmp_path)
        .write("/proc/cpuinfo", INTEL_CPUINFO)
        .write("/proc/meminfo", "MemTotal:       16318480 kB\nMemFree: 1 kB\n")
        .write("/proc/modules", "kvm_intel 409600 0 - Live 0x0\nkvm 1146880 1 kvm_intel, Live 0\n")
        .write("/proc/cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/sda1 intel_iommu=on quiet\n")
        .write("/proc/mounts", "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n")
        .write("/sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma\n")
        .write("/sys/devices/system/cpu/online", "0-1\n")
        .write("/dev/kvm")
        .write("/dev/net/tun")
        .write("/dev/vhost-net")
        .mkdir("/sys/class/iommu/dmar0")
        .mkdir("/sys/kernel/iommu_groups/0")
        .mkdir("/sys/kernel/iommu_groups/1")
        .write("/sys/firmware/acpi/tables/DMAR", "x")
    )


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def verdict(usable: bool) -> KvmVerdict:
    accel = Accel.KVM if usable else Accel.TCG
    return KvmVerdict(usable, accel, "because", 1.0, False, "k", 0.0)


def test_intel_host_facts(tmp_path: Path) -> None:
    f = facts.gather(intel_host(tmp_path).root)
    assert f.cpu.vendor == "GenuineIntel"
    assert f.cpu.model_name.startswith("Intel(R) Xeon(R)")
    assert f.cpu.virt_flag == "vmx"
    assert not f.cpu.under_hypervisor
    assert f.online_cpus == 2
    assert f.memory_mib == 15936
    assert f.kvm_modules.loaded == {"kvm", "kvm_intel"}
    assert f.kvm_modules.vendor == ("kvm_intel",)
    assert f.kvm_modules.paravirtual == ()
    assert f.kvm.accessible and f.tun.exists and f.vhost_net.exists
    assert f.numa_nodes == 1


def test_intel_host_checks_pass(tmp_path: Path) -> None:
    checks = by_name(run_checks(intel_host(tmp_path).root, verdict(True)))
    for name in (
        "for hardware virtualization",
        "if a KVM kernel module is loaded",
        "if device /dev/kvm exists",
        "if device /dev/kvm is accessible",
        "if device /dev/vhost-net exists",
        "if device /dev/net/tun exists",
        "for cgroup 'cpu' controller support",
        "for cgroup 'io' controller support",
        "for device assignment IOMMU support",
        "if IOMMU is enabled by kernel",
        "if KVM boots a guest",
    ):
        assert checks[name].status is CheckStatus.PASS, checks[name]
    acc = checks["which accelerator virtkit will use"]
    assert acc.status is CheckStatus.INFO and acc.detail.startswith("kvm")


def test_no_virt_flags(tmp_path: Path) -> None:
    t = Tree(tmp_path).write("/proc/cpuinfo", PLAIN_CPUINFO)
    f = facts.gather(t.root)
    assert f.cpu.virt_flag is None and f.cpu.under_hypervisor
    assert f.kvm_modules.loaded == frozenset()
    checks = by_name(run_checks(t.root, None))
    hw = checks["for hardware virtualization"]
    assert hw.status is CheckStatus.FAIL and "emulated" in hw.hint
    mod = checks["if a KVM kernel module is loaded"]
    assert mod.status is CheckStatus.FAIL and "modprobe kvm_amd" in mod.hint


def test_dev_kvm_missing(tmp_path: Path) -> None:
    t = intel_host(tmp_path)
    (tmp_path / "dev/kvm").unlink()
    checks = by_name(run_checks(t.root, None))
    assert checks["if device /dev/kvm exists"].status is CheckStatus.FAIL
    assert "if device /dev/kvm is accessible" not in checks
    acc = checks["which accelerator virtkit will use"]
    assert acc.detail == "tcg (software emulation)"
    assert checks["if KVM boots a guest"].status is CheckStatus.INFO


def test_paravirtual_kvm_in_sys_module(tmp_path: Path) -> None:
    t = Tree(tmp_path).write("/proc/cpuinfo", PLAIN_CPUINFO).write("/dev/kvm")
    t.mkdir("/sys/module/kvm/parameters").mkdir("/sys/module/kvm_pvm/parameters")
    t.mkdir("/sys/module/virtio_blk")
    f = facts.gather(t.root)
    assert f.kvm_modules.loaded == {"kvm", "kvm_pvm"}
    assert f.kvm_modules.paravirtual == ("kvm_pvm",)
    checks = by_name(run_checks(t.root, verdict(False)))
    hw = checks["for hardware virtualization"]
    assert hw.status is CheckStatus.WARN and "kvm_pvm" in hw.detail
    assert checks["if a KVM kernel module is loaded"].status is CheckStatus.PASS
    assert checks["if KVM boots a guest"].status is CheckStatus.FAIL
    assert checks["which accelerator virtkit will use"].detail.startswith("tcg")


def test_cgroup_v1_only(tmp_path: Path) -> None:
    mounts = "".join(
        f"cgroup /sys/fs/cgroup/{c} cgroup rw,nosuid,{c} 0 0\n"
        for c in ("cpu,cpuacct", "memory", "blkio", "cpuset")
    )
    t = Tree(tmp_path).write("/proc/mounts", "proc /proc proc rw 0 0\n" + mounts)
    cg = facts.cgroups(t.root)
    assert cg.version is CgroupVersion.V1
    assert cg.v2_mount is None
    assert cg.v1_controllers == {"cpu", "memory", "blkio", "cpuset"}
    assert cg.has("io") and cg.has("cpu") and not cg.has("pids")
    checks = by_name(run_checks(t.root, None))
    pids = checks["for cgroup 'pids' controller support"]
    assert pids.status is CheckStatus.WARN and "v1" in pids.detail
    assert checks["for cgroup 'io' controller support"].status is CheckStatus.PASS


def test_cgroup_v2_controllers(tmp_path: Path) -> None:
    cg = facts.cgroups(intel_host(tmp_path).root)
    assert cg.version is CgroupVersion.V2 and cg.v2_mount == "/sys/fs/cgroup"
    assert {"cpu", "memory", "pids", "io", "cpuset"} <= cg.v2_controllers
    assert all(cg.has(c) for c in facts.CGROUP_CONTROLLERS)


def test_cgroup_v2_without_proc_mounts(tmp_path: Path) -> None:
    t = Tree(tmp_path).write("/sys/fs/cgroup/cgroup.controllers", "cpu memory\n")
    cg = facts.cgroups(t.root)
    assert cg.version is CgroupVersion.V2
    assert cg.has("memory") and not cg.has("io")


def test_cgroup_hybrid(tmp_path: Path) -> None:
    t = Tree(tmp_path).write(
        "/proc/mounts",
        "cgroup /sys/fs/cgroup/pids cgroup rw,pids 0 0\n"
        "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n",
    )
    t.write("/sys/fs/cgroup/unified/cgroup.controllers", "")
    cg = facts.cgroups(t.root)
    assert cg.version is CgroupVersion.HYBRID and cg.v2_mount == "/sys/fs/cgroup/unified"
    assert cg.has("pids") and not cg.has("memory")


def test_no_cgroups(tmp_path: Path) -> None:
    assert facts.cgroups(HostRoot(tmp_path)).version is CgroupVersion.NONE


def test_iommu_present(tmp_path: Path) -> None:
    io = facts.iommu(intel_host(tmp_path).root)
    assert io.units == ("dmar0",) and io.groups == 2 and io.acpi_table == "DMAR"
    assert io.cmdline == ("intel_iommu=on",)
    assert io.supported and io.enabled


def test_iommu_absent(tmp_path: Path) -> None:
    t = Tree(tmp_path).write("/proc/cpuinfo", INTEL_CPUINFO).write("/proc/cmdline", "quiet\n")
    io = facts.iommu(t.root)
    assert not io.supported and not io.enabled and io.cmdline == ()
    checks = by_name(run_checks(t.root, None))
    sup = checks["for device assignment IOMMU support"]
    assert sup.status is CheckStatus.WARN and "DMAR" in sup.hint
    assert "if IOMMU is enabled by kernel" not in checks


def test_iommu_supported_but_disabled(tmp_path: Path) -> None:
    t = Tree(tmp_path).write("/proc/cpuinfo", INTEL_CPUINFO)
    t.write("/sys/firmware/acpi/tables/DMAR", "x")
    checks = by_name(run_checks(t.root, None))
    assert checks["for device assignment IOMMU support"].status is CheckStatus.PASS
    enabled = checks["if IOMMU is enabled by kernel"]
    assert enabled.status is CheckStatus.WARN and "intel_iommu=on" in enabled.hint


def test_numa_two_nodes(tmp_path: Path) -> None:
    t = Tree(tmp_path).write("/sys/devices/system/cpu/online", "0-3,8-11\n")
    t.mkdir("/sys/devices/system/node/node0").mkdir("/sys/devices/system/node/node1")
    t.write("/sys/devices/system/node/possible", "0-1\n")
    t.write("/sys/devices/system/node/has_memory", "0-1\n")
    assert facts.numa_nodes(t.root) == 2
    assert facts.online_cpus(t.root) == 8


def test_missing_everything_is_tolerated(tmp_path: Path) -> None:
    f = facts.gather(HostRoot(tmp_path))
    assert f.cpu.model_name == "" and f.cpu.flags == frozenset()
    assert f.online_cpus == 0 and f.memory_mib == 0 and f.numa_nodes == 1
    assert not f.kvm.exists and not f.kvm.accessible
    assert f.kernel_release  # falls back to os.uname()


@pytest.mark.parametrize(
    ("text", "cpus"), [("0", [0]), ("0-2,5", [0, 1, 2, 5]), ("", []), ("x,3", [3])]
)
def test_parse_cpu_list(text: str, cpus: list[int]) -> None:
    assert facts.parse_cpu_list(text) == cpus


def test_format_report_lines() -> None:
    checks = [
        Check("QEMU", "for hardware virtualization", CheckStatus.PASS, "CPU flag vmx"),
        Check("QEMU", "if device /dev/vhost-net exists", CheckStatus.WARN,
              "/dev/vhost-net is missing", "Load the 'vhost_net' module"),
        Check("QEMU", "if KVM boots a guest", CheckStatus.FAIL, "", "Use TCG"),
        Check("QEMU", "which accelerator virtkit will use", CheckStatus.INFO, "tcg"),
    ]  # fmt: skip
    assert format_report(checks).splitlines() == [
        "QEMU: Checking for hardware virtualization                                 : PASS",
        "QEMU: Checking if device /dev/vhost-net exists                             : WARN",
        "      /dev/vhost-net is missing",
        "      Load the 'vhost_net' module",
        "QEMU: Checking if KVM boots a guest" + " " * 40 + ": FAIL",
        "      Use TCG",
        "QEMU: Checking which accelerator virtkit will use" + " " * 26 + ": INFO",
        "      tcg",
    ]


def test_format_report_of_real_checks_has_one_line_per_check(tmp_path: Path) -> None:
    checks = run_checks(intel_host(tmp_path).root, verdict(True))
    report = format_report(checks)
    status_lines = [ln for ln in report.splitlines() if ln.startswith("QEMU: Checking ")]
    assert len(status_lines) == len(checks)
    assert all(ln.rsplit(": ", 1)[1] in set(CheckStatus) for ln in status_lines)
