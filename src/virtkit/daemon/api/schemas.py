"""Request and response bodies of the API (they make the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from virtkit.model.install import InstallSpec


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    error: str = Field(description="stable error code: config, not-found, state, busy, ...")
    message: str = Field(description="what went wrong and what to do next")
    details: dict[str, Any] | None = None


class Version(BaseModel):
    version: str
    mode: str
    state_dir: str


class DefineRequest(_In):
    text: str | None = Field(None, max_length=1 << 20, description="YAML or JSON domain file")
    config: dict[str, Any] | None = Field(None, description="domain as a JSON object")
    source: str = Field("domain", max_length=4096, description="file name, for error messages")


class AutostartRequest(_In):
    enabled: bool


class DomainSummary(BaseModel):
    id: int | None
    name: str
    uuid: str
    state: str
    reason: str
    autostart: bool
    persistent: bool


class StartResult(DomainSummary):
    accel: str
    warning: str


class DomainInfo(DomainSummary):
    vcpus: int
    max_vcpus: int
    memory_mib: int
    max_memory_mib: int
    cpu_time_s: float
    rss_kib: int
    accel: str | None
    accel_note: str
    pid: int | None
    machine: str
    operation: str | None
    managed_save: bool = Field(False, description="a managed save image exists (start resumes)")
    confined: str = Field("", description="the unprivileged user its QEMU runs as ('' = not)")
    cgroup: str = Field("", description="the cgroup of its QEMU ('' = none)")
    cgroup_limits: dict[str, str] = Field(
        default_factory=dict,
        description="cgroup control file -> limit written ('memory:' prefix = v1)",
    )
    confinement_note: str = Field("", description="what confinement could not do on this host")
    tainted: list[str] = Field(default_factory=list, description="why support is void: "
                               "raw QEMU arguments, raw monitor commands")  # fmt: skip


class EventOut(BaseModel):
    seq: int
    ts: float
    domain: str
    type: str
    detail: str


class InstallRequest(_In):
    spec: InstallSpec
    dry_run: bool = False


class InstallResponse(BaseModel):
    domain: dict[str, Any]
    install_boot: bool
    warnings: list[str]
    created: list[str]
    root_password: str | None = Field(None, description="generated root password, shown once")


# -- storage pools and volumes (daemon/api/storage.py) ---------------------------------------

SIZE_DOC = "bytes, or a virsh size such as 10G, 512MiB, 100GB (max 64 TiB)"


class PoolDefineRequest(_In):
    name: str = Field(max_length=64)
    type: str = Field("dir", max_length=32, description="pool type; only 'dir' is supported")
    target: str = Field(max_length=4000, description="absolute directory path")


class PoolInfo(BaseModel):
    name: str
    uuid: str
    type: str
    target: str
    state: str = Field(description="running or inactive")
    autostart: bool
    persistent: bool
    capacity: int | None = Field(description="bytes of the filesystem (active pools)")
    allocation: int | None
    available: int | None
    volumes: int | None


class VolumeCreateRequest(_In):
    name: str = Field(max_length=255)
    capacity: str | int = Field(description=SIZE_DOC)
    format: str = Field("raw", description="raw or qcow2")
    allocation: str | int | None = Field(None, description=SIZE_DOC)
    backing_vol: str | None = Field(None, max_length=4096, description="volume name or path")
    backing_vol_format: str | None = None


class VolumeResizeRequest(_In):
    capacity: str | int = Field(description=SIZE_DOC)
    delta: bool = Field(False, description="capacity is added (or subtracted with shrink)")
    shrink: bool = Field(False, description="allow the volume to get smaller (loses data)")


class VolumeCloneRequest(_In):
    name: str = Field(max_length=255)


class VolumeInfo(BaseModel):
    pool: str
    name: str
    path: str
    key: str
    type: str
    format: str
    capacity: int | None
    allocation: int | None
    file_size: int | None
    backing: str | None
    backing_format: str | None
    used_by: list[str] = Field(description="defined domains whose disks use this volume")


class UploadRequest(_In):
    size: int = Field(ge=0, le=64 * 1024**4, description="total bytes that will be sent")


class UploadStatus(BaseModel):
    id: str
    size: int
    received: int


# -- clone, save/restore, block devices, undefine with storage (daemon/api/domextra.py) --------


class CloneRequest(_In):
    name: str = Field(max_length=64, description="name of the new domain")
    files: list[str] = Field(
        default_factory=list, max_length=64, description="new image paths, one per writable disk"
    )
    auto_clone: bool = Field(False, description="put the new images beside the originals")
    linked: bool = Field(False, description="qcow2 overlays on the (frozen) original images")


class CloneDisk(BaseModel):
    target: str
    source: str
    path: str
    mode: str = Field(description="copy, linked or shared")


class CloneResult(BaseModel):
    domain: DomainSummary
    disks: list[CloneDisk]
    original_overlays: list[str] = Field(
        description="linked clone: the overlays the original domain writes to from now on"
    )


class SaveRequest(_In):
    file: str = Field(min_length=1, max_length=4096, description="absolute path of the save file")
    paused: bool | None = Field(None, description="state after restore (default: as saved)")


class SaveResult(BaseModel):
    file: str
    size_bytes: int
    seconds: float


class RestoreRequest(_In):
    file: str = Field(min_length=1, max_length=4096, description="absolute path of the save file")
    paused: bool | None = Field(None, description="state after restore (default: as saved)")


class BlockDevice(BaseModel):
    type: str
    device: str
    target: str
    source: str
    format: str
    readonly: bool


class BlockInfo(BaseModel):
    target: str
    source: str
    capacity: int = Field(description="bytes the guest sees")
    allocation: int = Field(description="bytes allocated on the host")
    physical: int = Field(description="size of the image file in bytes")


class ResizeRequest(_In):
    size_bytes: int = Field(gt=0, le=64 * 1024**4, description="new size, rounded up to 512")
    shrink: bool = Field(False, description="allow making the disk smaller (loses data)")


class UndefineRequest(_In):
    remove_all_storage: bool = False
    storage: list[str] = Field(
        default_factory=list, max_length=64, description="disks (targets or paths) to remove"
    )
    managed_save: bool = Field(False, description="also remove the managed save image")
    nvram: bool = Field(False, description="also remove the UEFI variable store")


class StorageItem(BaseModel):
    target: str
    path: str
    reason: str = ""


class UndefineResult(BaseModel):
    removed: list[StorageItem]
    kept: list[StorageItem]
    managed_save_removed: bool
    nvram_removed: bool
