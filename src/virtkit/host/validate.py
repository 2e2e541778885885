"""``virtkit host-validate``: virt-host-validate's QEMU checks plus a real KVM verdict.

Each check is data (``Check``); ``format_report`` renders them the way
virt-host-validate does::

    QEMU: Checking for hardware virtualization                                 : PASS
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from virtkit.host.facts import (
    CGROUP_CONTROLLERS,
    HostFacts,
    HostRoot,
    gather,
)
from virtkit.host.verdict import KvmVerdict

GROUP = "QEMU"
_LABEL_WIDTH = 60


class CheckStatus(StrEnum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    INFO = "INFO"


@dataclass(frozen=True)
class Check:
    group: str
    name: str  # what follows "Checking ", e.g. "for hardware virtualization"
    status: CheckStatus
    detail: str = ""  # what was found
    hint: str = ""  # what to do about a WARN or FAIL


def run_checks(root: HostRoot, kvm_verdict: KvmVerdict | None) -> list[Check]:
    """All host checks, in virt-host-validate's order, then KVM boot and accelerator."""
    facts = gather(root)
    return [
        _hw_virt(facts),
        _kvm_module(facts),
        *_dev_kvm(facts),
        _device(
            facts.vhost_net.exists,
            "/dev/vhost-net",
            CheckStatus.WARN,
            "Load the 'vhost_net' module to improve performance of virtio networking",
        ),
        _device(
            facts.tun.exists,
            "/dev/net/tun",
            CheckStatus.FAIL,
            "Load the 'tun' module to enable networking for QEMU guests",
        ),
        *_cgroups(facts),
        *_iommu(facts),
        _kvm_boot(kvm_verdict),
        _accelerator(facts, kvm_verdict),
    ]


def _check(name: str, status: CheckStatus, detail: str = "", hint: str = "") -> Check:
    return Check(GROUP, name, status, detail, hint)


def _hw_virt(f: HostFacts) -> Check:
    name = "for hardware virtualization"
    if f.cpu.virt_flag:
        return _check(name, CheckStatus.PASS, f"CPU flag {f.cpu.virt_flag}")
    if f.kvm.exists and f.kvm_modules.paravirtual:
        mods = ", ".join(f.kvm_modules.paravirtual)
        return _check(
            name,
            CheckStatus.WARN,
            f"no vmx/svm CPU flag, but {mods} provides /dev/kvm",
            "Paravirtual KVM may not boot standard guest kernels; see the KVM boot check below",
        )
    return _check(
        name,
        CheckStatus.FAIL,
        "no vmx/svm CPU flag",
        "Only emulated CPUs are available, performance will be significantly limited; "
        "enable VT-x/AMD-V in the firmware (or nested virtualization on the "
        "hypervisor)",
    )


def _kvm_module(f: HostFacts) -> Check:
    name = "if a KVM kernel module is loaded"
    mods = f.kvm_modules
    if mods.core and mods.vendor:
        return _check(name, CheckStatus.PASS, ", ".join(sorted(mods.loaded)))
    vendor = {"GenuineIntel": "kvm_intel", "AuthenticAMD": "kvm_amd"}.get(f.cpu.vendor)
    load = f"modprobe {vendor}" if vendor else "modprobe kvm_intel (or kvm_amd)"
    if mods.core:
        return _check(
            name,
            CheckStatus.WARN,
            "kvm is loaded but no vendor module",
            f"Run '{load}' and check that the firmware enables virtualization",
        )
    return _check(
        name,
        CheckStatus.FAIL,
        "no kvm module",
        f"Run '{load}' and check that the firmware enables virtualization",
    )


def _dev_kvm(f: HostFacts) -> list[Check]:
    exists = _device(
        f.kvm.exists,
        "/dev/kvm",
        CheckStatus.FAIL,
        "Check that the 'kvm_intel' or 'kvm_amd' modules are loaded & the BIOS "
        "has enabled virtualization",
    )
    if not f.kvm.exists:
        return [exists]
    name = "if device /dev/kvm is accessible"
    if f.kvm.accessible:
        return [exists, _check(name, CheckStatus.PASS)]
    return [
        exists,
        _check(
            name,
            CheckStatus.FAIL,
            "not readable and writable by this user",
            "Check /dev/kvm is world writable or you are in a group that is "
            "allowed to access it (usually 'kvm')",
        ),
    ]


def _device(exists: bool, path: str, missing: CheckStatus, hint: str) -> Check:
    name = f"if device {path} exists"
    if exists:
        return _check(name, CheckStatus.PASS)
    return _check(name, missing, f"{path} is missing", hint)


def _cgroups(f: HostFacts) -> list[Check]:
    out = []
    for c in CGROUP_CONTROLLERS:
        name = f"for cgroup '{c}' controller support"
        if f.cgroups.has(c):
            where = "v2" if c in f.cgroups.v2_controllers else "v1"
            out.append(_check(name, CheckStatus.PASS, f"cgroup {where}"))
        else:
            out.append(
                _check(
                    name,
                    CheckStatus.WARN,
                    f"cgroups: {f.cgroups.version}",
                    f"Enable '{c}' in the kernel config or mount/enable the cgroup "
                    "controller; virtkit cannot limit guests by it",
                )
            )
    return out


def _iommu(f: HostFacts) -> list[Check]:
    io = f.iommu
    support = "for device assignment IOMMU support"
    enabled = "if IOMMU is enabled by kernel"
    if not io.supported:
        table = "IVRS" if f.cpu.vendor == "AuthenticAMD" else "DMAR"
        return [
            _check(
                support,
                CheckStatus.WARN,
                "no IOMMU found",
                f"No ACPI {table} table found, IOMMU either disabled in BIOS or not "
                "supported by this hardware platform",
            )
        ]
    found = ", ".join(io.units) or f"ACPI {io.acpi_table} table"
    checks = [_check(support, CheckStatus.PASS, found)]
    if io.enabled:
        checks.append(_check(enabled, CheckStatus.PASS, f"{io.groups} IOMMU groups"))
    else:
        opt = "amd_iommu=on" if f.cpu.vendor == "AuthenticAMD" else "intel_iommu=on"
        seen = " ".join(io.cmdline) or "no iommu option on the kernel command line"
        checks.append(
            _check(
                enabled,
                CheckStatus.WARN,
                seen,
                f"IOMMU appears to be disabled in kernel. Add {opt} to kernel cmdline arguments",
            )
        )
    return checks


def _kvm_boot(v: KvmVerdict | None) -> Check:
    name = "if KVM boots a guest"
    if v is None:
        return _check(
            name,
            CheckStatus.INFO,
            "not probed",
            "Run 'virtkit host-validate' with the probe enabled",
        )
    detail = v.reason
    if v.usable:
        return _check(name, CheckStatus.PASS, detail)
    return _check(
        name,
        CheckStatus.FAIL,
        detail,
        "Guests still run, under TCG (much slower); re-run the probe after changing KVM",
    )


def _accelerator(f: HostFacts, v: KvmVerdict | None) -> Check:
    name = "which accelerator virtkit will use"
    if v is not None:
        what = "kvm (hardware)" if v.usable else "tcg (software emulation)"
    elif f.kvm.accessible:
        what = "kvm if the KVM probe passes, else tcg (software emulation)"
    else:
        what = "tcg (software emulation)"
    return _check(name, CheckStatus.INFO, what)


def format_report(checks: list[Check]) -> str:
    """Plain-text report, one line per check, reasons indented below WARN/FAIL/INFO."""
    lines = []
    for c in checks:
        lines.append(f"{c.group}: Checking {c.name:<{_LABEL_WIDTH}}: {c.status.value}")
        if c.status in (CheckStatus.WARN, CheckStatus.FAIL):
            notes = [c.detail, c.hint] if c.detail and c.detail not in c.hint else [c.hint]
            lines.extend(f"      {n}" for n in notes if n)
        elif c.status is CheckStatus.INFO and c.detail:
            lines.append(f"      {c.detail}")
    return "\n".join(lines) + "\n"
