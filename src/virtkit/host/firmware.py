"""UEFI firmware (OVMF) on this host: the code image and the variable-store template."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from virtkit.host.facts import HOST, HostRoot

# (code, vars template), most preferred first: Debian/Ubuntu, then Fedora/RHEL layouts.
CANDIDATES = [
    ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
    ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
    ("/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"),
    ("/usr/share/edk2/x64/OVMF_CODE.4m.fd", "/usr/share/edk2/x64/OVMF_VARS.4m.fd"),
]


@dataclass(frozen=True)
class Ovmf:
    code: Path
    vars_template: Path


def find_ovmf(root: HostRoot = HOST) -> Ovmf | None:
    for code, tmpl in CANDIDATES:
        c, t = root.path(code), root.path(tmpl)
        if c.is_file() and t.is_file():
            return Ovmf(c, t)
    return None
