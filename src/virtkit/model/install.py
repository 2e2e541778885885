"""An install request: what `virtkit install` (virt-install's grammar) asks the daemon to do.

formats/virtinstall.py turns a virt-install command line into an ``InstallSpec``
(pure, no I/O). The daemon carries it out as one job with a revert stack:
resolve the install media, create disks, write a cloud-init seed, define the
final domain, boot the installer, and restart from disk when it reboots.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import ConfigDict, Field

from virtkit.model.domain import AbsPath, DiskFormat, Domain
from virtkit.model.strict import StrictModel

MAX_DISK_BYTES = 64 * 1024**4  # 64 TiB: larger is a typo, not a disk


class InstallMethod(StrEnum):
    LOCATION = "location"  # kernel+initrd from an ISO, a tree or a URL; --extra-args allowed
    CDROM = "cdrom"  # boot an ISO as a CD
    IMPORT = "import"  # the disk is already installed: just boot it
    BOOT = "boot"  # kernel=/initrd= given directly with --boot (or nothing to install)


class NewDisk(StrictModel):
    """A disk image to create before the install (virt-install --disk path=...,size=N).

    Without path= (``--disk size=N``) the disk is a new volume of the daemon's storage
    pool ``pool`` (``default``, under the daemon's state directory): ``path`` is then
    :func:`volume_placeholder` and the daemon picks the file (``volume`` is the wished
    name; a free variant of it is taken if a file of that name exists)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    path: AbsPath
    size_bytes: int = Field(gt=0, le=MAX_DISK_BYTES)
    format: DiskFormat = DiskFormat.QCOW2
    sparse: bool = True
    pool: str | None = Field(default=None, min_length=1, max_length=64)
    volume: str | None = Field(default=None, min_length=1, max_length=255)


class CloudInit(StrictModel):
    """--cloud-init: a NoCloud seed ISO attached as a CD-ROM on first boot."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    root_password_generate: bool = False
    root_password_file: AbsPath | None = None
    ssh_keys: list[str] = Field(default_factory=list, max_length=32)
    user_data: AbsPath | None = None  # a file on the host
    meta_data: AbsPath | None = None
    # virt-install's disable=: cloud-init turns itself off after the first boot (default
    # when a root password is set: it must not be set again on later boots)
    disable: bool = False


class VolumeRef(StrictModel):
    """``--disk vol=POOL/NAME``: domain.disks[index] is this pool volume; the daemon
    fills in its path and format (the parser cannot know them)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    index: int = Field(ge=0, le=63)
    pool: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=255)


VOLUME_PREFIX = "/virtkit-volume/"


def volume_placeholder(pool: str, name: str) -> str:
    """The path a disk has until the daemon puts the pool volume's real path in place."""
    return f"{VOLUME_PREFIX}{pool}/{name}"


def is_placeholder(path: str) -> bool:
    return path.startswith(VOLUME_PREFIX)


class InstallSpec(StrictModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    domain: Domain  # the final, persistent definition (boots from disk after the install)
    method: InstallMethod = InstallMethod.BOOT
    location: str | None = Field(default=None, max_length=4096)  # path or http(s) URL
    location_kernel: str | None = Field(default=None, max_length=4096)  # ,kernel=... override
    location_initrd: str | None = Field(default=None, max_length=4096)
    cdrom: str | None = Field(default=None, max_length=4096)
    extra_args: str = Field(default="", max_length=4096)
    initrd_inject: list[AbsPath] = Field(default_factory=list, max_length=64)
    new_disks: list[NewDisk] = Field(default_factory=list, max_length=64)
    volumes: list[VolumeRef] = Field(default_factory=list, max_length=64)
    cloud_init: CloudInit | None = None
    checksum: str | None = Field(default=None, pattern=r"^(sha256|sha512):[0-9a-fA-F]+$")
    noreboot: bool = False
    transient: bool = False
    autostart: bool = False
    autoconsole: bool = True  # --noautoconsole sets False
    wait_minutes: float | None = Field(default=None, ge=-1)  # --wait; -1 = forever
