"""The real KVM probe on this host, with the tiny guest.

The verdict must match what the host really is: no /dev/kvm -> not usable;
paravirtual KVM (kvm_pvm) -> not usable because the kernel did not boot.
The same probe guest must reach its marker under TCG well inside the deadline,
so a KVM failure is KVM's fault and not the guest's.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from virtkit.host import facts
from virtkit.host.kvm import probe_kvm
from virtkit.host.verdict import load_cached_verdict
from virtkit.model.domain import Accel

pytest.importorskip(
    "virtkit.guests.tiny", reason="virtkit.guests.tiny (the probe guest) is not available yet"
)

QEMU = shutil.which("qemu-system-x86_64")
pytestmark = [pytest.mark.qemu, pytest.mark.skipif(QEMU is None, reason="no QEMU installed")]
TIMEOUT_S = 15.0


def _probe_processes() -> list[str]:
    out = []
    for p in Path("/proc").iterdir():
        try:
            cmd = (p / "cmdline").read_bytes() if p.name.isdigit() else b""
        except OSError:
            continue
        if b"virtkit-kvm-probe-" in cmd:
            out.append(p.name)
    return out


def test_probe_verdict_matches_this_host(tiny: Any, tmp_path: Path) -> None:
    assert QEMU is not None
    host = facts.gather(facts.HOST)
    v = probe_kvm(QEMU, tiny.kernel, tiny.initrd, timeout_s=TIMEOUT_S, cache_dir=tmp_path)
    assert not v.cached
    assert v.accel is (Accel.KVM if v.usable else Accel.TCG)
    assert v.elapsed_s <= TIMEOUT_S + 2
    if not host.kvm.exists:
        assert not v.usable and "does not exist" in v.reason
    elif host.kvm_modules.paravirtual:
        assert not v.usable, v.reason
        assert "kernel did not" in v.reason and "KVM" in v.reason
        assert "paravirtual" in v.reason
    assert not _probe_processes(), "the probe left QEMU running"

    cached = load_cached_verdict(QEMU, cache_dir=tmp_path)
    assert cached is not None and cached.cached
    assert (cached.usable, cached.reason, cached.key) == (v.usable, v.reason, v.key)
    again = probe_kvm(QEMU, tiny.kernel, tiny.initrd, cache_dir=tmp_path)
    assert again.cached and again.usable == v.usable


def test_probe_guest_reaches_marker_under_tcg(tiny: Any, tmp_path: Path) -> None:
    """The same probe, with kvm->tcg and host->max: proves the deadline discriminates."""
    wrapper = tmp_path / "qemu-tcg"
    wrapper.write_text(
        '#!/bin/bash\nargs=()\nfor a in "$@"; do\n'
        '  case "$a" in kvm) a=tcg;; host) a=max;; esac; args+=("$a")\ndone\n'
        f'exec {QEMU} "${{args[@]}}"\n'
    )
    wrapper.chmod(0o755)
    # A fake root whose /dev/kvm is a plain file, so the boot is attempted on any host.
    root = tmp_path / "root"
    (root / "dev").mkdir(parents=True)
    (root / "dev/kvm").write_text("")
    t0 = time.monotonic()
    v = probe_kvm(str(wrapper), tiny.kernel, tiny.initrd, timeout_s=60, cache_dir=None,
                  root=facts.HostRoot(root))  # fmt: skip
    assert v.usable, v.reason
    assert time.monotonic() - t0 < 60
    print(f"probe guest reached the marker under TCG in {v.elapsed_s:.1f} s")
