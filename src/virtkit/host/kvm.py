"""Does KVM really work here?  Boot a standard kernel under it and see.

/dev/kvm can exist and still be useless: under nested or paravirtual KVM (PVM)
QEMU may abort at start (e.g. "failed to set MSR") or a standard guest kernel
may hang without printing a byte.  The probe boots the tiny guest's kernel and
initrd with ``-accel kvm -cpu host`` (what virtkit will run guests with) and
waits, up to a deadline, for its init to print ``VIRTKIT-PROBE-OK`` on ttyS0.
The verdict is cached per host + QEMU identity (see ``verdict.py``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from virtkit.errors import HostError, NotFoundError
from virtkit.host.facts import HOST, HostRoot, cpu_info, device_node, kvm_modules
from virtkit.host.verdict import (
    KvmVerdict,
    load_cached_verdict,
    read_verdict,
    store_verdict,
    verdict_key,
)
from virtkit.model.domain import Accel

__all__ = ["PROBE_MARKER", "KvmVerdict", "load_cached_verdict", "probe_argv", "probe_kvm"]

PROBE_MARKER = "VIRTKIT-PROBE-OK"
PROBE_APPEND = "console=ttyS0 virtkit.probe=1 panic=-1 quiet"
TCG_SUFFIX = "virtkit will use TCG (software emulation)"
_POLL_S = 0.05


@dataclass(frozen=True)
class _Boot:
    booted: bool
    exit_code: int | None  # None: still running at the deadline (killed by us)
    stderr: str
    console: str
    elapsed_s: float


def probe_argv(qemu: str, kernel: Path, initrd: Path, serial_log: Path) -> list[str]:
    """The probe's QEMU command line; the guest console goes to ``serial_log``."""
    serial = str(serial_log).replace(",", ",,")  # QEMU option syntax
    return [
        qemu, "-accel", "kvm", "-machine", "q35", "-cpu", "host",
        "-nodefaults", "-no-user-config", "-display", "none", "-m", "128", "-no-reboot",
        "-kernel", str(kernel), "-initrd", str(initrd), "-append", PROBE_APPEND,
        "-chardev", f"file,id=probe0,path={serial}", "-serial", "chardev:probe0",
    ]  # fmt: skip


def probe_kvm(
    qemu: str,
    kernel: Path,
    initrd: Path,
    *,
    timeout_s: float = 15.0,
    cache_dir: Path | None = None,
    root: HostRoot = HOST,
    force: bool = False,
) -> KvmVerdict:
    """Decide whether guests can run under KVM here (cached unless ``force``).

    Raises NotFoundError if the probe kernel or initrd is missing and HostError
    if the QEMU binary cannot be executed.  Never leaves a QEMU process behind.
    """
    key = verdict_key(qemu, root)
    if cache_dir is not None and not force:
        cached = read_verdict(cache_dir, key)
        if cached is not None:
            return cached
    now = time.time()
    kvm = device_node(root, "/dev/kvm")
    if not kvm.exists:
        reason = ("/dev/kvm does not exist (no KVM kernel module loaded, or virtualization "
                  f"is disabled in the firmware); {TCG_SUFFIX}")  # fmt: skip
        return KvmVerdict(False, Accel.TCG, reason, 0.0, False, key, now)
    if not kvm.accessible:
        reason = ("/dev/kvm exists but this user cannot read and write it (add the user to "
                  f"the 'kvm' group); {TCG_SUFFIX}")  # fmt: skip
        return KvmVerdict(False, Accel.TCG, reason, 0.0, False, key, now)
    for what, path in (("kernel", kernel), ("initrd", initrd)):
        if not path.is_file():
            raise NotFoundError(
                f"KVM probe {what} {path} does not exist; build the tiny guest first "
                "(virtkit.guests.tiny.ensure_tiny())"
            )
    boot = _boot(qemu, kernel, initrd, timeout_s)
    verdict = KvmVerdict(
        usable=boot.booted,
        accel=Accel.KVM if boot.booted else Accel.TCG,
        reason=_explain(boot, timeout_s, root),
        elapsed_s=round(boot.elapsed_s, 3),
        cached=False,
        key=key,
        checked_at=now,
    )
    if cache_dir is not None:
        store_verdict(cache_dir, verdict)
    return verdict


def _boot(qemu: str, kernel: Path, initrd: Path, timeout_s: float) -> _Boot:
    """Boot the probe in a fresh temp dir until the marker shows or the deadline passes."""
    with tempfile.TemporaryDirectory(prefix="virtkit-kvm-probe-") as tmp:
        work = Path(tmp)
        serial, errlog = work / "serial.log", work / "qemu.stderr"
        argv = probe_argv(qemu, kernel, initrd, serial)
        start = time.monotonic()
        with errlog.open("wb") as err:
            try:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                    start_new_session=True,
                )  # fmt: skip
            except OSError as e:
                raise HostError(
                    f"cannot run QEMU {argv[0]}: {e.strerror or e}; install qemu-system-x86 "
                    "or point virtkit at a working qemu-system-x86_64"
                ) from e
        try:
            booted, code = _wait(proc, serial, start + timeout_s)
        finally:
            if proc.returncode is None:
                os.killpg(proc.pid, signal.SIGKILL)  # QEMU leads its own process group
                proc.wait()
        elapsed = time.monotonic() - start
        return _Boot(booted, code, _read(errlog), _read(serial), elapsed)


def _wait(proc: subprocess.Popen[bytes], serial: Path, deadline: float) -> tuple[bool, int | None]:
    """(marker seen, QEMU's exit code or None if it was still running)."""
    marker = PROBE_MARKER.encode()
    while True:
        code = proc.poll()
        if marker in _read_bytes(serial):
            return True, code
        if code is not None:
            return False, code
        if time.monotonic() >= deadline:
            return False, None
        time.sleep(_POLL_S)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _read(path: Path) -> str:
    return _read_bytes(path).decode(errors="replace")


def _diagnosis(root: HostRoot) -> str:
    pv = kvm_modules(root).paravirtual
    if pv:
        return f"this looks like nested or paravirtual KVM ({', '.join(pv)} loaded)"
    if cpu_info(root).under_hypervisor:
        return "this looks like nested KVM (this host is itself a virtual machine)"
    return "KVM does not work properly on this host"


def _qemu_said(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    if not lines:
        return ""
    line = next((ln for ln in lines if "error" in ln.lower() or "fail" in ln.lower()), lines[-1])
    prog, sep, rest = line.partition(": ")
    return rest if sep and prog.startswith(("qemu", "/")) else line


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"QEMU was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"QEMU was killed by signal {-code}"
    return f"QEMU exited with status {code}"


def _explain(boot: _Boot, timeout_s: float, root: HostRoot) -> str:
    if boot.booted:
        return (f"a standard Linux kernel reached init under KVM in {boot.elapsed_s:.1f} s; "
                "virtkit will use KVM")  # fmt: skip
    diag = _diagnosis(root)
    if boot.exit_code is None:
        last = [ln.strip() for ln in boot.console.splitlines() if ln.strip()]
        seen = f"last console line: {last[-1][:120]!r}" if last else "no console output"
        return (f"/dev/kvm exists but a standard Linux kernel did not reach init under KVM "
                f"within {timeout_s:g} s ({seen}): {diag}; {TCG_SUFFIX}")  # fmt: skip
    said = _qemu_said(boot.stderr)
    if boot.exit_code == 0 and not said:
        what = "the guest reset or panicked before reaching init"
    else:
        what = _exit_text(boot.exit_code) + (f" ({said})" if said else "")
    return f"/dev/kvm exists but a standard Linux kernel did not boot under KVM: {what}: " \
           f"{diag}; {TCG_SUFFIX}"  # fmt: skip
