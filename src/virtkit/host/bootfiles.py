"""Checks on the files a domain boots from (read-only I/O)."""

from __future__ import annotations

from virtkit.errors import ConfigError

ELF_MAGIC = b"\x7fELF"
BZIMAGE_MAGIC = b"HdrS"  # at offset 0x202 of a Linux bzImage


def check_pvh_kernel(path: str) -> None:
    """The fast profile (microvm) enters the kernel through PVH: it must be an ELF vmlinux.

    Raises ConfigError saying what the file is and what to use instead.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(0x206)
    except OSError as exc:
        raise ConfigError(f"cannot read kernel {path}: {exc.strerror}") from None
    if head[:4] == ELF_MAGIC:
        return
    what = "a compressed bzImage" if head[0x202:0x206] == BZIMAGE_MAGIC else "not an ELF file"
    raise ConfigError(
        f"kernel {path} is {what}: the fast boot profile (machine microvm) boots an "
        "uncompressed ELF vmlinux through its PVH entry point; pass the vmlinux (the "
        "kernel's scripts/extract-vmlinux makes one from a bzImage) or use machine q35"
    )
