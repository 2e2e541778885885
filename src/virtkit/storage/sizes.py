"""Sizes as virsh takes them: ``10G``, ``512MiB``, ``1.5T``, ``100GB`` (decimal), bare bytes."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from virtkit.errors import ConfigError

MAX_SIZE_BYTES = 64 * 1024**4  # 64 TiB: larger is a typo, not a disk

_UNITS: dict[str, int] = {"": 1, "b": 1, "byte": 1, "bytes": 1}
for _i, _p in enumerate("kmgtpe", start=1):
    _UNITS[_p] = _UNITS[f"{_p}ib"] = 1024**_i
    _UNITS[f"{_p}b"] = 1000**_i

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*$")


def parse_size(text: str | int, *, default_unit: str = "") -> int:
    """Bytes from a virsh-style size. Bare numbers use ``default_unit`` (bytes, like virsh).

    Binary units: K, M, G, T, P, E and KiB ... EiB (powers of 1024); decimal: KB ... EB
    (powers of 1000); case-insensitive. ConfigError on garbage, <= 0 or > 64 TiB.
    """
    if isinstance(text, bool):
        raise ConfigError(f"bad size {text!r}")
    raw = str(text)
    m = _SIZE_RE.match(raw)
    unit = (m.group(2) if m else "").lower() or default_unit.lower()
    if m is None or unit not in _UNITS:
        raise ConfigError(
            f"bad size {raw!r}: write a number with an optional unit, e.g. 10G, 512M, 20GiB, "
            "100GB (K/M/G/T = KiB/MiB/GiB/TiB; KB/MB/GB/TB = powers of 1000)"
        )
    try:
        value = Decimal(m.group(1)) * _UNITS[unit]
    except InvalidOperation as exc:  # pragma: no cover - the regex only admits numbers
        raise ConfigError(f"bad size {raw!r}") from exc
    size = int(value)
    if size <= 0:
        raise ConfigError(f"bad size {raw!r}: it must be more than 0 bytes")
    if size > MAX_SIZE_BYTES:
        raise ConfigError(
            f"size {raw!r} is {size} bytes, over the 64 TiB limit; check the unit "
            "(virsh takes bare numbers as bytes, virt-install --disk size= as GiB)"
        )
    return size
