"""Whole-image operations with ``qemu-img``: copy, overlay, resize, backing chain.

Formats are always explicit (``-f``/``-O``/``-F``), never probed.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from virtkit.errors import ConfigError, HostError
from virtkit.storage.disks import FORMATS, qemu_img

COPY_TIMEOUT_S = 6 * 3600.0  # a full copy of a big image runs at disk speed
TIMEOUT_S = 120.0


def _fmt(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ConfigError(f"disk format {fmt!r} is not supported; use one of {', '.join(FORMATS)}")
    return fmt


def _run(argv: list[str], what: str, timeout_s: float = TIMEOUT_S) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise HostError(f"{what}: qemu-img did not finish in {timeout_s:.0f} s") from exc
    if r.returncode != 0:
        raise HostError(f"{what}: qemu-img failed: {(r.stderr or r.stdout).strip()}", argv=argv)
    return r.stdout


def _new_file(path: Path) -> None:
    """Claim ``path`` (O_EXCL, never clobber): qemu-img then writes into it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path} already exists; pick another path") from None
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror}") from None
    os.close(fd)


def copy_image(src: Path, fmt: str, dest: Path) -> None:
    """Full (sparse) copy of ``src`` to the new file ``dest`` in the same format.

    A qcow2 with a backing file is flattened: the copy stands alone.
    """
    _new_file(dest)
    argv = [qemu_img(), "convert", "-q", "-f", _fmt(fmt), "-O", fmt, str(src), str(dest)]
    try:
        _run(argv, f"copying {src} to {dest}", COPY_TIMEOUT_S)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def create_overlay(backing: Path, backing_fmt: str, dest: Path) -> None:
    """A new qcow2 at ``dest`` whose backing file is ``backing``: O(1) in its size."""
    _new_file(dest)
    argv = [qemu_img(), "create", "-q", "-f", "qcow2", "-b", str(backing),
            "-F", _fmt(backing_fmt), str(dest)]  # fmt: skip
    try:
        _run(argv, f"creating overlay {dest}")
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def resize_image(path: Path, fmt: str, size_bytes: int, shrink: bool = False) -> None:
    argv = [qemu_img(), "resize", "-q", "-f", _fmt(fmt)]
    if shrink:
        argv.append("--shrink")
    _run([*argv, str(path), str(size_bytes)], f"resizing {path}")


def backing_chain(path: Path, fmt: str) -> list[Path]:
    """The files under ``path``: its backing file, that file's backing file, ... (not itself)."""
    if fmt != "qcow2":
        return []
    argv = [qemu_img(), "info", "--output=json", "--force-share", "--backing-chain",
            "-f", fmt, str(path)]  # fmt: skip
    try:
        chain = json.loads(_run(argv, f"reading {path}"))
        return [Path(str(i["filename"])) for i in chain[1:]]
    except (ValueError, KeyError, TypeError) as exc:
        raise HostError(f"qemu-img info {path}: unexpected output ({exc})") from exc
