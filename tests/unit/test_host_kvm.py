"""host/kvm.py + host/verdict.py: the KVM probe's logic and cache, with fake QEMU scripts.

The fake "QEMU" is a shell script that finds the probe's serial file in its
arguments and behaves like a working KVM (prints the marker), a hanging one,
or one that fails to start.  Real QEMU is in tests/integration/test_kvm_probe.py.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from virtkit.errors import HostError, NotFoundError
from virtkit.host.facts import HostRoot
from virtkit.host.kvm import PROBE_MARKER, probe_argv, probe_kvm
from virtkit.host.verdict import (
    KvmVerdict,
    cache_path,
    load_cached_verdict,
    store_verdict,
    verdict_key,
)
from virtkit.model.domain import Accel

FIND_SERIAL = """#!/bin/sh
for a in "$@"; do
  case "$a" in file,id=probe0,path=*) serial="${a#file,id=probe0,path=}";; esac
done
"""


@pytest.fixture
def host(tmp_path: Path) -> HostRoot:
    root = tmp_path / "root"
    (root / "dev").mkdir(parents=True)
    (root / "dev/kvm").write_text("")
    (root / "proc").mkdir()
    (root / "proc/cpuinfo").write_text("model name\t: Fake CPU\nflags\t\t: fpu vmx\n")
    (root / "proc/sys/kernel").mkdir(parents=True)
    (root / "proc/sys/kernel/osrelease").write_text("6.1.0-test\n")
    return HostRoot(root)


@pytest.fixture
def guest(tmp_path: Path) -> tuple[Path, Path]:
    kernel, initrd = tmp_path / "vmlinuz", tmp_path / "initrd.img"
    kernel.write_bytes(b"kernel")
    initrd.write_bytes(b"initrd")
    return kernel, initrd


def fake_qemu(tmp_path: Path, body: str, name: str = "qemu") -> str:
    path = tmp_path / name
    path.write_text(FIND_SERIAL + body)
    path.chmod(0o755)
    return str(path)


def test_probe_argv_is_the_documented_command_line(tmp_path: Path) -> None:
    argv = probe_argv("qemu", Path("/k"), Path("/i"), Path("/a,b/serial.log"))
    assert argv[:7] == ["qemu", "-accel", "kvm", "-machine", "q35", "-cpu", "host"]
    assert argv[argv.index("-append") + 1] == "console=ttyS0 virtkit.probe=1 panic=-1 quiet"
    assert "file,id=probe0,path=/a,,b/serial.log" in argv  # commas escaped for QEMU
    assert {"-nodefaults", "-no-user-config", "-no-reboot"} <= set(argv)


def test_working_kvm_is_usable_and_cached(
    tmp_path: Path, host: HostRoot, guest: tuple[Path, Path]
) -> None:
    qemu = fake_qemu(tmp_path, f'echo "booting"; echo {PROBE_MARKER} > "$serial"; sleep 30\n')
    cache = tmp_path / "cache"
    v = probe_kvm(qemu, *guest, timeout_s=10, cache_dir=cache, root=host)
    assert v.usable and v.accel is Accel.KVM and not v.cached
    assert v.elapsed_s < 5  # did not wait for the script's sleep
    assert "reached init under KVM" in v.reason
    again = probe_kvm(qemu, *guest, cache_dir=cache, root=host)
    assert again.cached and again.usable and again.key == v.key


def test_marker_then_poweroff_counts_as_boot(
    tmp_path: Path, host: HostRoot, guest: tuple[Path, Path]
) -> None:
    qemu = fake_qemu(tmp_path, f'echo {PROBE_MARKER} > "$serial"; exit 0\n')
    assert probe_kvm(qemu, *guest, timeout_s=10, cache_dir=None, root=host).usable


def test_hang_hits_deadline_and_leaves_no_process(
    tmp_path: Path, host: HostRoot, guest: tuple[Path, Path]
) -> None:
    pidfile = tmp_path / "child.pid"
    qemu = fake_qemu(tmp_path, f"sleep 300 & echo $! > {pidfile}; wait\n")
    t0 = time.monotonic()
    v = probe_kvm(qemu, *guest, timeout_s=0.5, cache_dir=None, root=host)
    assert time.monotonic() - t0 < 5
    assert not v.usable and v.accel is Accel.TCG
    assert "did not reach init under KVM within 0.5 s (no console output)" in v.reason
    assert v.reason.endswith("virtkit will use TCG (software emulation)")
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the probe left a process of its group behind"


def test_hang_reports_last_console_line_and_pvm(
    tmp_path: Path, host: HostRoot, guest: tuple[Path, Path]
) -> None:
    (host.root / "sys/module/kvm_pvm").mkdir(parents=True)
    qemu = fake_qemu(tmp_path, 'echo "Decompressing Linux..." > "$serial"; sleep 30\n')
    v = probe_kvm(qemu, *guest, timeout_s=0.5, cache_dir=None, root=host)
    assert "last console line: 'Decompressing Linux...'" in v.reason
    assert "nested or paravirtual KVM (kvm_pvm loaded)" in v.reason


def test_qemu_fails_to_start_with_kvm(
    tmp_path: Path, host: HostRoot, guest: tuple[Path, Path]
) -> None:
    qemu = fake_qemu(
        tmp_path,
        'echo "Could not access KVM kernel module: No such device" >&2\n'
        'echo "qemu-system-x86_64: failed to initialize kvm: No such device" >&2\nexit 1\n',
    )
    v = probe_kvm(qemu, *guest, timeout_s=10, cache_dir=None, root=host)
    assert not v.usable
    assert "did not boot under KVM: QEMU exited with status 1" in v.reason
    assert "(failed to initialize kvm: No such device)" in v.reason


def test_qemu_aborts(tmp_path: Path, host: HostRoot, guest: tuple[Path, Path]) -> None:
    qemu = fake_qemu(
        tmp_path,
        'echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69" >&2\nkill -ABRT $$\n',
    )
    v = probe_kvm(qemu, *guest, timeout_s=10, cache_dir=None, root=host)
    assert "QEMU was killed by SIGABRT (error: failed to set MSR 0x10a to 0x69)" in v.reason


def test_dev_kvm_missing_short_circuits(
    tmp_path: Path, host: HostRoot, guest: tuple[Path, Path]
) -> None:
    (host.root / "dev/kvm").unlink()
    cache = tmp_path / "cache"
    v = probe_kvm(str(tmp_path / "no-such-qemu"), *guest, cache_dir=cache, root=host)
    assert not v.usable and v.accel is Accel.TCG and v.elapsed_s == 0.0
    assert v.reason.startswith("/dev/kvm does not exist")
    assert not cache.exists()  # nothing launched, nothing worth caching


def test_missing_guest_and_missing_qemu_raise(
    tmp_path: Path, host: HostRoot, guest: tuple[Path, Path]
) -> None:
    with pytest.raises(NotFoundError, match="ensure_tiny"):
        probe_kvm("qemu", tmp_path / "nope", guest[1], cache_dir=None, root=host)
    with pytest.raises(HostError, match="cannot run QEMU"):
        probe_kvm(str(tmp_path / "no-such-qemu"), *guest, cache_dir=None, root=host)


def test_cache_round_trip_and_key_follows_qemu_binary(tmp_path: Path, host: HostRoot) -> None:
    qemu = tmp_path / "qemu-system-x86_64"
    qemu.write_bytes(b"version 1")
    cache = tmp_path / "cache"
    key = verdict_key(str(qemu), host)
    v = KvmVerdict(False, Accel.TCG, "it hung", 15.0, False, key, 1700000000.5)
    path = store_verdict(cache, v)
    assert path == cache_path(cache, key)
    assert json.loads(path.read_text())["accel"] == "tcg"
    assert not list(cache.glob(".*tmp*"))  # the temp file was renamed away
    loaded = load_cached_verdict(str(qemu), cache_dir=cache, root=host)
    assert loaded == KvmVerdict(False, Accel.TCG, "it hung", 15.0, True, key, 1700000000.5)

    qemu.write_bytes(b"version 2, a different size")
    assert verdict_key(str(qemu), host) != key
    assert load_cached_verdict(str(qemu), cache_dir=cache, root=host) is None


def test_key_follows_kernel_cpu_and_dev_kvm(tmp_path: Path, host: HostRoot) -> None:
    qemu = tmp_path / "qemu"
    qemu.write_bytes(b"q")
    key = verdict_key(str(qemu), host)
    assert verdict_key(str(qemu), host) == key
    (host.root / "proc/sys/kernel/osrelease").write_text("6.2.0-other\n")
    k2 = verdict_key(str(qemu), host)
    (host.root / "proc/cpuinfo").write_text("model name\t: Fake CPU\nflags\t\t: fpu svm\n")
    k3 = verdict_key(str(qemu), host)
    (host.root / "dev/kvm").unlink()
    k4 = verdict_key(str(qemu), host)
    assert len({key, k2, k3, k4}) == 4


def test_corrupt_or_foreign_cache_is_ignored(tmp_path: Path, host: HostRoot) -> None:
    qemu = tmp_path / "qemu"
    qemu.write_bytes(b"q")
    cache = tmp_path / "cache"
    key = verdict_key(str(qemu), host)
    cache.mkdir()
    cache_path(cache, key).write_text("{not json")
    assert load_cached_verdict(str(qemu), cache_dir=cache, root=host) is None
    cache_path(cache, key).write_text(json.dumps({"format": 1, "key": "other"}))
    assert load_cached_verdict(str(qemu), cache_dir=cache, root=host) is None


def test_cached_verdict_is_returned_without_launching(
    tmp_path: Path, host: HostRoot, guest: tuple[Path, Path]
) -> None:
    qemu = tmp_path / "not-executable-qemu"
    qemu.write_bytes(b"launching this would raise HostError")
    cache = tmp_path / "cache"
    key = verdict_key(str(qemu), host)
    store_verdict(cache, KvmVerdict(True, Accel.KVM, "ok", 1.0, False, key, 1.0))
    v = probe_kvm(str(qemu), *guest, cache_dir=cache, root=host)
    assert v.cached and v.usable
    with pytest.raises(HostError):
        probe_kvm(str(qemu), *guest, cache_dir=cache, root=host, force=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"
