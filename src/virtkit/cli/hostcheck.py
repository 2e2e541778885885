"""`virtkit host-validate`: virt-host-validate's checks plus a real KVM boot probe.

Runs in the CLI process (it reads host facts; no daemon needed). The verdict
is cached where the daemon looks for it, so `start` with accel auto follows it.
"""

from __future__ import annotations

import sys

from virtkit.errors import HostError


def host_validate(*, reprobe: bool, probe: bool) -> int:
    from virtkit.host import kvm
    from virtkit.host.facts import HOST
    from virtkit.host.validate import CheckStatus, format_report, run_checks
    from virtkit.paths import paths_for
    from virtkit.qemu.caps import find_qemu

    qemu = find_qemu()
    cache_dir = paths_for().cache_dir
    verdict = None
    if probe:
        if not reprobe:
            verdict = kvm.load_cached_verdict(qemu, cache_dir=cache_dir)
        if verdict is None:
            try:
                from virtkit.guests.tiny import ensure_tiny

                guest = ensure_tiny()
            except HostError as exc:
                print(f"warning: cannot build the KVM probe guest: {exc.message}", file=sys.stderr)
            else:
                if HOST.path("/dev/kvm").exists():
                    print("Booting a probe guest under KVM (up to 15 s)...", file=sys.stderr)
                verdict = kvm.probe_kvm(qemu, guest.kernel, guest.initrd, cache_dir=cache_dir,
                                        force=reprobe)  # fmt: skip
    checks = run_checks(HOST, verdict)
    sys.stdout.write(format_report(checks))
    if verdict is not None and verdict.cached:
        print("(KVM boot verdict from cache; --reprobe boots the probe again)")
    return 1 if any(c.status is CheckStatus.FAIL for c in checks) else 0
