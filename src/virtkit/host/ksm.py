"""Kernel same-page merging: /sys/kernel/mm/ksm parameters and statistics.

virsh node-memory-tune's names are ``shm_<file>``. Reading is tolerant (a kernel
without KSM shows nothing); writing needs root and raises HostError / StateError
with what to do.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from virtkit.errors import ConfigError, HostError, StateError
from virtkit.host.facts import HostRoot

KSM_DIR = "/sys/kernel/mm/ksm"
# tunables: file -> (lowest, highest) value the kernel takes
PARAMS: dict[str, tuple[int, int]] = {
    "pages_to_scan": (0, 1 << 31),
    "sleep_millisecs": (0, 1 << 31),
    "merge_across_nodes": (0, 1),
    "run": (0, 2),
}
STATS = (
    "pages_shared",
    "pages_sharing",
    "pages_unshared",
    "pages_volatile",
    "full_scans",
    "stable_node_chains",
    "stable_node_dups",
    "general_profit",
)
# virsh node-memory-tune prints these, in this order
VIRSH_ORDER = (
    "pages_to_scan",
    "sleep_millisecs",
    "pages_shared",
    "pages_sharing",
    "pages_unshared",
    "pages_volatile",
    "full_scans",
    "merge_across_nodes",
)


@dataclass(frozen=True)
class KsmState:
    available: bool
    values: dict[str, int]  # every readable parameter and statistic, by sysfs file name


def read(root: HostRoot) -> KsmState:
    values: dict[str, int] = {}
    for name in (*PARAMS, *STATS):
        text = root.read_text(f"{KSM_DIR}/{name}")
        if text is None:
            continue
        try:
            values[name] = int(text.strip())
        except ValueError:
            continue
    return KsmState(available=bool(values), values=values)


def write(root: HostRoot, changes: dict[str, int]) -> KsmState:
    """Set KSM parameters (file name -> value); returns the state read back."""
    state = read(root)
    if not state.available:
        raise HostError(
            f"this kernel has no KSM ({KSM_DIR} is missing): build it with CONFIG_KSM=y"
        )
    for name, value in changes.items():
        if name not in PARAMS:
            raise ConfigError(f"unknown KSM parameter {name!r}; valid: {', '.join(PARAMS)}")
        lo, hi = PARAMS[name]
        if not lo <= value <= hi:
            raise ConfigError(f"KSM {name} must be between {lo} and {hi} (got {value})")
    for name, value in changes.items():
        path = root.path(f"{KSM_DIR}/{name}")
        try:
            path.write_text(f"{value}\n")
        except PermissionError:
            raise HostError(
                f"cannot write {KSM_DIR}/{name}: permission denied; KSM tuning needs the "
                "system daemon (root)"
            ) from None
        except OSError as exc:
            if exc.errno == errno.EBUSY and name == "merge_across_nodes":
                shared = state.values.get("pages_shared", 0)
                raise StateError(
                    f"the kernel refuses to change merge_across_nodes while {shared} pages are "
                    "shared; unmerge first (--shm-run 2 or echo 2 > run), then set it",
                    current=f"{shared} pages shared",
                    required="no shared pages",
                ) from None
            raise HostError(f"cannot write {KSM_DIR}/{name}: {exc.strerror}") from None
    return read(root)
