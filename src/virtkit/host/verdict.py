"""The KVM verdict and its on-disk cache, keyed by host + QEMU identity.

The key changes when anything that could change the answer changes: the host
kernel release, the CPU (model name + flags), the QEMU binary (realpath, size,
mtime) and the state of /dev/kvm (present, accessible).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from virtkit.fsutil import atomic_write_text
from virtkit.host.facts import HOST, HostRoot, cpu_info, device_node, kernel_release
from virtkit.model.domain import Accel

CACHE_FORMAT = 1


@dataclass(frozen=True)
class KvmVerdict:
    usable: bool
    accel: Accel  # KVM when usable, else TCG (never AUTO)
    reason: str  # one human sentence
    elapsed_s: float  # how long the probe took (0 when nothing was booted)
    cached: bool  # True when read from the cache instead of measured now
    key: str  # host + QEMU identity the verdict is valid for
    checked_at: float  # wall-clock time (epoch seconds) of the measurement

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["accel"] = self.accel.value
        d["format"] = CACHE_FORMAT
        del d["cached"]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> KvmVerdict:
        return cls(
            usable=bool(d["usable"]),
            accel=Accel(d["accel"]),
            reason=str(d["reason"]),
            elapsed_s=float(d["elapsed_s"]),
            cached=True,
            key=str(d["key"]),
            checked_at=float(d["checked_at"]),
        )


def _binary_identity(qemu: str) -> dict[str, Any]:
    real = os.path.realpath(qemu)
    try:
        st = os.stat(real)
    except OSError:
        return {"path": real, "missing": True}
    return {"path": real, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def verdict_key(qemu: str, root: HostRoot = HOST) -> str:
    """A hex digest naming this host + QEMU binary combination."""
    cpu = cpu_info(root)
    cpu_hash = hashlib.sha256(
        (cpu.model_name + "\n" + " ".join(sorted(cpu.flags))).encode()
    ).hexdigest()
    kvm = device_node(root, "/dev/kvm")
    ident = {
        "format": CACHE_FORMAT,
        "kernel": kernel_release(root),
        "cpu": cpu_hash,
        "qemu": _binary_identity(qemu),
        "dev_kvm": {"exists": kvm.exists, "accessible": kvm.accessible},
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def cache_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"kvm-verdict-{key[:24]}.json"


def store_verdict(cache_dir: Path, verdict: KvmVerdict) -> Path:
    """Write ``verdict`` atomically (temp file, fsync, rename); returns the file."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_path(cache_dir, verdict.key)
    atomic_write_text(path, json.dumps(verdict.to_json(), indent=2, sort_keys=True) + "\n")
    return path


def read_verdict(cache_dir: Path, key: str) -> KvmVerdict | None:
    """The cached verdict for ``key`` (cached=True), or None if absent, stale or corrupt."""
    try:
        d = json.loads(cache_path(cache_dir, key).read_text())
        if d.get("format") != CACHE_FORMAT or d.get("key") != key:
            return None
        v = KvmVerdict.from_json(d)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return v if v.accel is not Accel.AUTO else None


def load_cached_verdict(qemu: str, *, cache_dir: Path, root: HostRoot = HOST) -> KvmVerdict | None:
    """The cached verdict for this host and ``qemu`` binary, or None. Never boots anything."""
    return read_verdict(cache_dir, verdict_key(qemu, root))
