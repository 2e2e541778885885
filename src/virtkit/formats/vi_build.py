"""The defaults pass and the build: Draft (what the user said) -> InstallSpec.

Like virtinst, defaults are applied only after every option was parsed, so the
user's values always win and the order of options on the line does not matter.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from virtkit.errors import ConfigError
from virtkit.formats.domfile import describe_validation
from virtkit.formats.osinfo import OsInfo, lookup
from virtkit.formats.vi_devices import GIB, default_nic
from virtkit.formats.vi_draft import DiskDraft, Draft
from virtkit.formats.vi_host import host_fields
from virtkit.model.domain import (
    Boot,
    Disk,
    DiskBus,
    DiskDevice,
    DiskFormat,
    DiskType,
    Domain,
    Graphics,
    GraphicsType,
    Nic,
    Topology,
    check_name,
)
from virtkit.model.install import (
    InstallMethod,
    InstallSpec,
    NewDisk,
    VolumeRef,
    volume_placeholder,
)

M = TypeVar("M", bound=BaseModel)
DEFAULT_POOL = "default"  # --disk size=N without path=: a new volume of the daemon's pool


def _method(d: Draft) -> InstallMethod:
    kinds = {opt for opt, _ in d.methods}
    if len(kinds) > 1:
        first, second = sorted(kinds)[:2]
        raise ConfigError(f"{first} and {second} are both install methods; give only one")
    if "--pxe" in kinds:
        raise ConfigError(
            "--pxe is not supported by virtkit yet; use --location, --cdrom, "
            "--import or --boot kernel="
        )
    if d.location:
        return InstallMethod.LOCATION
    if d.cdrom:
        return InstallMethod.CDROM
    if "--import" in kinds:
        return InstallMethod.IMPORT
    if d.kernel or d.boot_order:
        return InstallMethod.BOOT
    raise ConfigError(
        "an install method is required: --location ISO|DIR|URL, --cdrom ISO, "
        "--import (boot an existing disk) or --boot kernel=/path"
    )


def _memory(d: Draft, os: OsInfo | None) -> dict[str, Any]:
    boot = d.maxmemory or d.memory or (os.memory_mib if os else None)
    if boot is None:
        raise ConfigError(
            "--memory is required (MiB, e.g. --memory 2048), or give --os-variant "
            "so virtkit can use its recommended memory"
        )
    if d.maxmemory is not None and d.memory is not None and d.memory > d.maxmemory:
        raise ConfigError(
            f"--memory: memory={d.memory} is above maxmemory={d.maxmemory}; maxmemory is the "
            "RAM at boot and memory= the balloon target, so make maxmemory at least memory"
        )
    out: dict[str, Any] = {"memory_mib": boot}
    if d.memory is not None and d.maxmemory is not None and d.memory != d.maxmemory:
        out["current_memory_mib"] = d.memory
    if d.hotplug_max is not None:
        if d.hotplug_max < boot:
            raise ConfigError(
                f"--memory: maxMemory={d.hotplug_max} (the hotplug ceiling) is "
                f"below the boot memory {boot} MiB; raise it"
            )
        out["max_memory_mib"] = d.hotplug_max
    elif d.slots is not None:
        raise ConfigError("--memory: maxMemory.slots needs maxMemory= (the hotplug ceiling)")
    if d.slots is not None:
        out["memory_slots"] = d.slots
    return out


def _vcpus(d: Draft, os: OsInfo | None) -> dict[str, Any]:
    parts = {"sockets": d.sockets, "cores": d.cores, "threads": d.threads}
    given = {k: v for k, v in parts.items() if v is not None}
    total = d.maxvcpus or d.vcpus
    if given and total is None:
        if len(given) < 3:
            for k in parts:
                given.setdefault(k, 1)
        total = given["sockets"] * given["cores"] * given["threads"]
    if total is None:
        total = os.vcpus if os else 1
    vcpus = d.vcpus if d.vcpus is not None else total
    if d.maxvcpus is None and given and len(given) == 3:
        total = max(total, given["sockets"] * given["cores"] * given["threads"])
    if vcpus > total:
        raise ConfigError(f"--vcpus: vcpus={vcpus} is above maxvcpus={total}; raise maxvcpus")
    out: dict[str, Any] = {"vcpus": vcpus}
    if total != vcpus:
        out["max_vcpus"] = total
    if given:
        out["topology"] = Topology(**_fill_topology(given, total))
    return out


def _fill_topology(given: dict[str, int], total: int) -> dict[str, int]:
    missing = [k for k in ("sockets", "cores", "threads") if k not in given]
    if missing:
        # virt-install's rule: the first missing part absorbs the rest, the others are 1.
        for k in missing[1:]:
            given[k] = 1
        known = 1
        for v in given.values():
            known *= v
        if total % known:
            raise ConfigError(
                f"--vcpus: {total} vCPUs cannot be split into "
                + " x ".join(f"{k}={v}" for k, v in given.items())
                + f" x {missing[0]}; give sockets, cores and threads whose product is {total}"
            )
        given[missing[0]] = total // known
    product = given["sockets"] * given["cores"] * given["threads"]
    if product != total:
        raise ConfigError(
            f"--vcpus: sockets={given['sockets']} x cores={given['cores']} x "
            f"threads={given['threads']} = {product}, but maxvcpus is {total}; make them equal"
        )
    return given


def _disks(d: Draft, os: OsInfo | None, method: InstallMethod) -> tuple[list[Disk], list[NewDisk]]:
    drafts = list(d.disks)
    if d.no_disks and drafts:
        raise ConfigError("--disk none cannot be combined with other --disk options")
    if not drafts and not d.no_disks:
        if method is InstallMethod.IMPORT:
            raise ConfigError("--import needs a --disk path=/existing/image to boot from")
        if method in (InstallMethod.LOCATION, InstallMethod.CDROM):
            drafts = [DiskDraft(path=None, size_gib=float(os.disk_gib if os else 20))]
            d.warnings.append(f"no --disk given: creating a {drafts[0].size_gib:g} GiB disk")
    disks: list[Disk] = []
    new: list[NewDisk] = []
    counter = 0
    for dd in drafts:
        path = dd.path
        fmt = dd.format
        volume = None
        if path is None:  # a new volume of the daemon's default pool (it picks the file)
            fmt = fmt or DiskFormat.QCOW2
            suffix = f"-{counter}" if counter else ""
            counter += 1
            volume = f"{d.name}{suffix}{'.img' if fmt is DiskFormat.RAW else '.qcow2'}"
            path = volume_placeholder(DEFAULT_POOL, volume)
        if dd.size_gib is not None:
            fmt = fmt or DiskFormat.QCOW2
            size = round(dd.size_gib * GIB)
            new.append(NewDisk(path=path, size_bytes=size, format=fmt, sparse=dd.sparse,
                               pool=DEFAULT_POOL if volume else None, volume=volume))  # fmt: skip
        bus = dd.bus
        if bus is None and dd.device is DiskDevice.DISK and os is not None:
            bus = os.disk_bus
        fields: dict[str, Any] = {
            "path": path,
            "type": _disk_type(path),
            "device": dd.device,
            "format": fmt,
            "bus": bus,
            "readonly": dd.readonly,
            "serial": dd.serial,
            "target": dd.target,
        }
        if dd.cache is not None:
            fields["cache"] = dd.cache
        disks.append(_valid(Disk, "--disk", fields))
    if d.cdrom:
        disks.append(Disk(path=d.cdrom, type=_disk_type(d.cdrom), device=DiskDevice.CDROM,
                          bus=DiskBus.SATA, readonly=True))  # fmt: skip
    return disks, new


def _disk_type(path: str) -> DiskType:
    """virt-install gives a path under /dev as a block device (<disk type='block'>)."""
    return DiskType.BLOCK if path.startswith("/dev/") else DiskType.FILE


def _valid(cls: type[M], option: str, fields: dict[str, Any]) -> M:
    try:
        return cls(**fields)
    except ValidationError as err:
        raise ConfigError(describe_validation(err, option)) from None


def _boot(d: Draft, os: OsInfo | None, method: InstallMethod) -> Boot:
    order = list(d.boot_order)
    if not order:
        # the installed system boots from disk; the CD stays attached (virt-install does this)
        order = ["hd", "cdrom"] if method is InstallMethod.CDROM else ["hd"]
    uefi = d.uefi if d.uefi is not None else bool(os and os.uefi)
    return _valid(
        Boot,
        "--boot",
        {
            "uefi": uefi,
            "kernel": d.kernel,
            "initrd": d.initrd,
            "cmdline": d.kernel_args or "",
            "order": order,
        },
    )


def _graphics(d: Draft) -> Graphics:
    g = d.graphics
    if g is None or g.type is GraphicsType.NONE:
        return Graphics()
    fields: dict[str, Any] = {"type": g.type, "port": g.port, "password": g.password}
    if g.listen is not None:
        fields["listen"] = g.listen
    return _valid(Graphics, "--graphics", fields)


def build(d: Draft) -> InstallSpec:
    if d.name is None:
        raise ConfigError("--name is required (the guest's name, e.g. --name web1)")
    try:
        check_name(d.name)
    except ValueError as exc:
        raise ConfigError(f"--name: {exc}") from None
    method = _method(d)
    if d.extra_args is not None and method is not InstallMethod.LOCATION:
        raise ConfigError(
            "--extra-args only works with --location (the installer kernel "
            "is taken from the install media); use --boot kernel_args= for "
            "direct kernel boot"
        )
    if d.initrd_inject and method is not InstallMethod.LOCATION:
        raise ConfigError("--initrd-inject only works with --location")
    if d.transient and d.autostart:
        raise ConfigError(
            "--transient and --autostart conflict: a transient guest is "
            "forgotten when it stops, so it cannot start at boot"
        )
    os = d.osinfo
    if os is None and not d.os_detect:
        d.warnings.append(
            "no --os-variant given: assuming a modern Linux guest (virtio "
            "devices); give --os-variant NAME (or generic) to be explicit"
        )
    defaults = os or lookup("linux2022")
    disks, new_disks = _disks(d, defaults, method)
    nics = [] if d.no_nics else (d.nics or [default_nic(d)])
    if d.no_nics and d.nics:
        raise ConfigError("--network none cannot be combined with other --network options")
    fields: dict[str, Any] = {
        "name": d.name,
        "uuid": d.uuid,
        "title": d.title,
        "description": d.description,
        "os_variant": os.name if os else None,
        **_memory(d, os),
        **_vcpus(d, os),
        "machine": d.machine or (os.machine if os else "q35"),
        "boot": _boot(d, os, method),
        "disks": disks,
        "nics": [
            _valid(
                Nic,
                "--network",
                {
                    "type": n.type,
                    "source": n.source,
                    "mac": n.mac,
                    "model": n.model or defaults.nic_model,
                    "hostfwd": n.hostfwd,
                },
            )
            for n in nics
        ],
        "graphics": _graphics(d),
    }
    if d.accel is not None:
        fields["accel"] = d.accel
    if d.cpu_model is not None:
        fields["cpu_model"] = d.cpu_model
    fields.update(host_fields(d))  # --cpu cellN.*, --hostdev (vi_host.py)
    domain = _valid(Domain, "virt-install options", fields)
    return _valid(
        InstallSpec,
        "virt-install options",
        {
            "domain": domain,
            "method": method,
            "location": d.location,
            "location_kernel": d.location_kernel,
            "location_initrd": d.location_initrd,
            "checksum": d.checksum,
            "cdrom": d.cdrom,
            "extra_args": d.extra_args or "",
            "initrd_inject": d.initrd_inject,
            "new_disks": new_disks,
            "volumes": [
                VolumeRef(index=i, pool=dd.volume[0], name=dd.volume[1])
                for i, dd in enumerate(d.disks)
                if dd.volume is not None
            ],
            "cloud_init": d.cloud_init,
            "noreboot": d.noreboot,
            "transient": d.transient,
            "autostart": d.autostart,
            "autoconsole": d.autoconsole,
            "wait_minutes": d.wait_minutes,
        },
    )
