"""The fast boot profile: model rules, the microvm argv pieces, the PVH kernel check,
the host TSC frequency, and virt-install's --boot-profile."""

from __future__ import annotations

from pathlib import Path

import pytest

from virtkit.errors import ConfigError
from virtkit.formats.domfile import domain_from_mapping
from virtkit.host.bootfiles import check_pvh_kernel
from virtkit.host.facts import HostRoot, tsc_khz
from virtkit.model.domain import Accel
from virtkit.qemu.argv_micro import kernel_cmdline, mmio_device, to_mmio

BASE = {"name": "f", "machine": "microvm", "boot": {"kernel": "/k", "initrd": "/i"}}


def test_a_plain_fast_domain_is_valid() -> None:
    dom = domain_from_mapping(dict(BASE, disks=[{"path": "/d.qcow2"}], nics=[{}]), "t")
    assert dom.machine == "microvm"


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"boot": {}}, "boots a kernel directly"),
        ({"boot": {"kernel": "/k", "uefi": True}}, "UEFI"),
        ({"disks": [{"path": "/x.iso", "device": "cdrom"}]}, "virtio disks only"),
        ({"disks": [{"path": "/x.img", "bus": "sata"}]}, "virtio disks only"),
        ({"nics": [{"model": "e1000"}]}, "virtio NICs only"),
        ({"graphics": {"type": "vnc"}}, "graphical console"),
        ({"max_vcpus": 2}, "hot plug"),
        ({"max_memory_mib": 1024}, "hot plug"),
    ],
)
def test_what_the_fast_profile_cannot_do(extra: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError) as exc:
        domain_from_mapping(dict(BASE, **extra), "t")
    assert words in str(exc.value) and "q35" in str(exc.value)


def test_mmio_rewrite_keeps_other_devices() -> None:
    assert mmio_device("virtio-blk-pci,drive=d,id=vda") == "virtio-blk-device,drive=d,id=vda"
    assert mmio_device("virtio-rng-pci") == "virtio-rng-device"
    assert mmio_device("isa-serial,chardev=s") == "isa-serial,chardev=s"
    argv = ["-device", "virtio-net-pci,id=n", "-name", "virtio-x-pci", "-device", "e1000"]
    assert to_mmio(argv) == ["-device", "virtio-net-device,id=n", "-name", "virtio-x-pci",
                             "-device", "e1000"]  # fmt: skip


def test_tsc_goes_on_the_command_line_under_tcg_only() -> None:
    assert kernel_cmdline("console=ttyS0", Accel.TCG, 2700000) == (
        "console=ttyS0 tsc_early_khz=2700000"
    )
    assert kernel_cmdline("console=ttyS0", Accel.KVM, 2700000) == "console=ttyS0"
    assert kernel_cmdline("tsc_early_khz=1", Accel.TCG, 2700000) == "tsc_early_khz=1"
    assert kernel_cmdline("", Accel.TCG, None) == ""


def _cpuinfo(tmp_path: Path, model: str, mhz: str, flags: str = "fpu tsc constant_tsc") -> HostRoot:
    p = tmp_path / "proc" / "cpuinfo"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(f"processor\t: 0\nmodel name\t: {model}\ncpu MHz\t\t: {mhz}\nflags\t\t: {flags}\n")
    return HostRoot(tmp_path)


def test_tsc_khz_sources(tmp_path: Path) -> None:
    assert tsc_khz(_cpuinfo(tmp_path, "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", "1200.0")) == (
        2400000
    )
    assert tsc_khz(_cpuinfo(tmp_path, "AMD EPYC 7B13", "2450.000")) == 2450000
    assert tsc_khz(_cpuinfo(tmp_path, "AMD EPYC 7B13", "2450.000", flags="fpu")) is None
    sysfs = tmp_path / "sys/devices/system/cpu/cpu0/tsc_freq_khz"
    sysfs.parent.mkdir(parents=True)
    sysfs.write_text("2999999\n")
    assert tsc_khz(HostRoot(tmp_path)) == 2999999


def test_pvh_kernel_check(tmp_path: Path) -> None:
    elf = tmp_path / "vmlinux"
    elf.write_bytes(b"\x7fELF" + bytes(600))
    check_pvh_kernel(str(elf))
    bz = tmp_path / "vmlinuz"
    bz.write_bytes(bytes(0x202) + b"HdrS" + bytes(100))
    with pytest.raises(ConfigError, match=r"compressed bzImage.*vmlinux"):
        check_pvh_kernel(str(bz))
    junk = tmp_path / "junk"
    junk.write_bytes(b"junk")
    with pytest.raises(ConfigError, match="not an ELF file"):
        check_pvh_kernel(str(junk))


def test_virt_install_boot_profile(tmp_path: Path) -> None:
    from virtkit.formats.virtinstall import parse_install_args

    k, i = tmp_path / "vmlinux", tmp_path / "initrd"
    args = ["--name", "f", "--memory", "256", "--boot-profile", "fast", "--import",
            "--boot", f"kernel={k},initrd={i}", "--disk", "none", "--network", "none"]  # fmt: skip
    assert parse_install_args(args).spec.domain.machine == "microvm"
    with pytest.raises(ConfigError, match="--boot-profile 'turbo' is unknown"):
        parse_install_args(["--name", "f", "--boot-profile", "turbo"])


def test_microvm_argv_has_no_pci_and_passes_the_tsc() -> None:
    from tests.golden.test_golden import DEFAULT_PATHS, caps, load_case
    from virtkit.qemu.argv import build_argv

    dom, paths, accel = load_case("fast-profile")
    argv = build_argv(dom, caps(), paths, accel, tsc_khz=2700000)
    assert "microvm,accel=tcg,x-option-roms=off,rtc=on,isa-serial=off" in argv
    assert argv[argv.index("-append") + 1] == "console=ttyS0 tsc_early_khz=2700000"
    devices = [argv[i + 1] for i, a in enumerate(argv) if a == "-device"]
    assert not [d for d in devices if "-pci" in d.split(",")[0] or "pcie" in d], devices
    assert any(d.startswith("virtio-blk-device,") for d in devices)
    assert any(d.startswith("virtio-net-device,") for d in devices)
    assert paths == DEFAULT_PATHS
