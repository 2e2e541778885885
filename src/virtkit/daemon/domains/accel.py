"""Choosing the accelerator: KVM only when it really boots a guest, else TCG.

The verdict comes from host/kvm.py's probe (a standard kernel must reach init
under KVM before a deadline), cached per host + QEMU identity. ``auto`` uses
KVM when the verdict says usable; otherwise TCG, and the start result carries
a warning saying why.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from virtkit.errors import HostError
from virtkit.model.domain import Accel
from virtkit.paths import Paths
from virtkit.qemu.caps import Caps

TCG_NOTE = "running under TCG (software emulation, much slower than KVM)"


class AccelResolver:
    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self._lock = asyncio.Lock()

    async def verdict(self, caps: Caps, allow_probe: bool = True) -> tuple[bool | None, str]:
        """(usable, reason): usable is None when nothing is known and no probe could run."""
        from virtkit.host import kvm

        if not os.path.exists("/dev/kvm"):
            return False, "/dev/kvm does not exist (no KVM kernel module, or no hardware support)"
        if not os.access("/dev/kvm", os.R_OK | os.W_OK):
            return False, "/dev/kvm is not accessible to this user (add it to the 'kvm' group)"
        async with self._lock:
            cached = kvm.load_cached_verdict(caps.binary, cache_dir=self.paths.cache_dir)
            if cached is not None:
                return cached.usable, cached.reason
            if not allow_probe:
                return None, "KVM has not been verified on this host"
            guest = _cached_probe_guest()
            if guest is None:
                return None, (
                    "KVM has not been verified on this host (run `virtkit host-validate` "
                    "to test it)"
                )
            v = await asyncio.get_running_loop().run_in_executor(
                None,
                lambda: kvm.probe_kvm(caps.binary, guest[0], guest[1],
                                      cache_dir=self.paths.cache_dir),
            )  # fmt: skip
            return v.usable, v.reason

    async def resolve(self, requested: Accel, caps: Caps) -> tuple[Accel, str]:
        """The accelerator to use and a note for the user ('' when nothing to say)."""
        if requested is Accel.TCG:
            return Accel.TCG, ""
        usable, reason = await self.verdict(caps)
        if requested is Accel.KVM:
            if usable is False:
                raise HostError(
                    f"accel kvm was requested but KVM is not usable here: {reason}; "
                    "use --accel tcg or --accel auto"
                )
            return Accel.KVM, ""
        if usable:
            return Accel.KVM, ""
        if "TCG" in reason:  # the probe's verdict already says so
            return Accel.TCG, f"warning: {reason}"
        return Accel.TCG, f"warning: {reason}; {TCG_NOTE}"


def _cached_probe_guest() -> tuple[Path, Path] | None:
    """The tiny guest's kernel and initrd if already built (never builds from here)."""
    from virtkit.guests.tiny import find_tiny

    g = find_tiny()
    return (g.kernel, g.initrd) if g is not None else None
