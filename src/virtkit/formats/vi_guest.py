"""One parser per virt-install guest option: memory, CPUs, OS, install media, boot, metadata.

Each ``parse_*`` takes the Draft and one occurrence of the option's text and
records what the user said; defaults come later (vi_build).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from virtkit.errors import ConfigError
from virtkit.formats import osinfo
from virtkit.formats.vi_draft import Draft
from virtkit.formats.vi_host import take_cells
from virtkit.formats.vi_optstr import parse, to_float, to_int
from virtkit.model.domain import MAX_MEMORY_MIB, MAX_VCPUS, MIN_MEMORY_MIB, Accel
from virtkit.model.install import CloudInit

_URL = re.compile(r"^https?://[^\s/]+", re.IGNORECASE)


def abs_path(option: str, key: str, value: str) -> str:
    if "\x00" in value or "\n" in value:
        raise ConfigError(f"{option}: {key} contains a NUL or newline character")
    if not PurePosixPath(value).is_absolute():
        raise ConfigError(
            f"{option}: {key}={value!r} is a relative path; use an absolute path "
            f"(for example {str(PurePosixPath('/var/lib/virtkit/images') / value)!r})"
        )
    return value


def _mib(option: str, key: str, value: str) -> int:
    return to_int(option, key, value, low=MIN_MEMORY_MIB, high=MAX_MEMORY_MIB)


def parse_memory(d: Draft, text: str, option: str = "--memory") -> None:
    keys = (
        "memory",
        "currentMemory",
        "maxmemory",
        "maxMemory",
        "maxMemory.slots",
        "hotplugmemorymax",
        "hotplugmemoryslots",
    )
    o = parse(option, text, valid=keys, first=("memory",))
    if (v := o.get("memory", "currentMemory")) is not None:
        d.memory = _mib(option, "memory", v)
    if (v := o.get("maxmemory")) is not None:
        d.maxmemory = _mib(option, "maxmemory", v)
    if (v := o.get("maxMemory", "hotplugmemorymax")) is not None:
        d.hotplug_max = _mib(option, "maxMemory", v)
    if (v := o.get("maxMemory.slots", "hotplugmemoryslots")) is not None:
        d.slots = to_int(option, "maxMemory.slots", v, low=1, high=256)
    o.finish()


def parse_vcpus(d: Draft, text: str) -> None:
    option = "--vcpus"
    o = parse(
        option, text, valid=("vcpus", "maxvcpus", "sockets", "cores", "threads"), first=("vcpus",)
    )
    if (v := o.get("vcpus")) is not None:
        d.vcpus = to_int(option, "vcpus", v, low=1, high=MAX_VCPUS)
    if (v := o.get("maxvcpus")) is not None:
        d.maxvcpus = to_int(option, "maxvcpus", v, low=1, high=MAX_VCPUS)
    if (v := o.get("sockets")) is not None:
        d.sockets = to_int(option, "sockets", v, low=1, high=MAX_VCPUS)
    if (v := o.get("cores")) is not None:
        d.cores = to_int(option, "cores", v, low=1, high=MAX_VCPUS)
    if (v := o.get("threads")) is not None:
        d.threads = to_int(option, "threads", v, low=1, high=8)
    o.finish()


_HOST_CPU = ("host", "host-passthrough", "host-model", "host-copy", "maximum", "max")


def parse_cpu(d: Draft, text: str) -> None:
    option = "--cpu"
    o = parse(option, text, valid=("model", "mode", "cellN.memory", "cellN.cpus"),
              first=("model",))  # fmt: skip
    take_cells(o, d)  # vi_host.py
    for k in o.names():
        if k[:1] in "+-" or k in ("require", "disable", "force", "forbid", "optional"):
            raise ConfigError(
                f"{option}: CPU feature flags ({k}) are not supported yet; "
                "give only a model name or host-passthrough"
            )
    model = o.get("model")
    mode = o.get("mode")
    o.finish()
    if mode is not None:
        if mode not in ("host-passthrough", "host-model", "custom", "maximum"):
            raise ConfigError(
                f"{option}: mode={mode!r} is not supported; use host-passthrough, "
                "host-model, maximum or a model name"
            )
        if mode != "custom":
            model = mode
    if model is None and d.numa_cells:
        return
    if model is None:
        raise ConfigError(
            f"{option}: give a CPU model (host-passthrough or a name such as Skylake-Client)"
        )
    if model in ("maximum", "max"):
        d.cpu_model = "max"
    elif model in _HOST_CPU:
        d.cpu_model = "host-passthrough"
    elif model in ("default", "auto", "clear"):
        d.cpu_model = "auto"
    elif re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", model):
        d.cpu_model = model
    else:
        raise ConfigError(f"{option}: {model!r} is not a CPU model name")


def parse_os_variant(d: Draft, text: str, option: str = "--os-variant") -> None:
    o = parse(option, text, valid=("name", "short-id", "id", "detect", "require"), first=("name",))
    name = o.get("name", "short-id")
    osid = o.get("id")
    detect = o.flag("detect")
    o.flag("require")  # detection happens later; require=on|off changes nothing here
    o.finish()
    if name == "list":
        raise ConfigError(f"{option} list: known variants are: {', '.join(osinfo.names())}")
    if name == "auto":
        detect = True
        name = None
    if detect and (name or osid):
        raise ConfigError(f"{option}: give either detect=on or a name, not both")
    if detect:
        d.os_detect = True
        d.osinfo = None
        d.warnings.append(
            f"{option} detect=on: the OS is detected from the install media at install time; "
            "until then generic modern-Linux defaults (virtio devices) are used"
        )
        return
    wanted = name or osid
    if not wanted:
        raise ConfigError(f"{option}: give an OS name (for example rhel9.4) or detect=on")
    d.osinfo = osinfo.lookup(wanted, option)
    d.os_detect = False


def _method(d: Draft, option: str, value: str) -> None:
    d.methods.append((option, value))


def parse_location(d: Draft, text: str) -> None:
    option = "--location"
    o = parse(option, text, valid=("location", "kernel", "initrd", "checksum"),
              first=("location",))  # fmt: skip
    loc = o.get("location")
    kernel = o.get("kernel")
    initrd = o.get("initrd")
    checksum = o.get("checksum")  # virtkit extension: verify a downloaded/local ISO
    o.finish()
    if checksum is not None and not re.fullmatch(r"(sha256|sha512):[0-9a-fA-F]+", checksum):
        raise ConfigError(f"{option}: checksum= must be sha256:HEX or sha512:HEX")
    d.checksum = checksum
    if not loc:
        raise ConfigError(f"{option}: give an ISO, a directory or an http(s) URL")
    if "://" in loc:
        if not _URL.match(loc):
            raise ConfigError(
                f"{option}: {loc!r}: only http:// and https:// URLs are supported; "
                "for NFS or FTP trees, mount or copy them and give the path"
            )
    else:
        abs_path(option, "location", loc)
    for key, value in (("kernel", kernel), ("initrd", initrd)):
        if value is not None and ("\x00" in value or "\n" in value or not value.strip()):
            raise ConfigError(f"{option}: {key}= must be a path inside the install media")
    d.location, d.location_kernel, d.location_initrd = loc, kernel, initrd
    _method(d, option, loc)


def parse_cdrom(d: Draft, text: str) -> None:
    option = "--cdrom"
    if "://" in text:
        raise ConfigError(
            f"{option}: {text!r}: --cdrom takes a local ISO file; for a URL use "
            "--location URL (or download the ISO first)"
        )
    d.cdrom = abs_path(option, "path", text)
    _method(d, option, text)


def parse_boot(d: Draft, text: str) -> None:
    option = "--boot"
    devices = ("hd", "cdrom", "network")
    keys = (
        *devices,
        "uefi",
        "firmware",
        "kernel",
        "initrd",
        "kernel_args",
        "cmdline",
        "extra_args",
        "menu",
        "bootmenu.enable",
        "loader",
    )
    o = parse(option, text, valid=keys)
    if o.has("fd"):
        raise ConfigError(f"{option}: floppy boot (fd) is not supported; use hd, cdrom or network")
    if o.has("loader"):
        raise ConfigError(
            f"{option}: loader= is not supported; use --boot uefi (virtkit finds OVMF itself)"
        )
    d.boot_given = True
    for dev in o.take_bare(devices):
        if dev not in d.boot_order:
            d.boot_order.append(dev)
    if (uefi := o.flag("uefi")) is not None:
        d.uefi = uefi
    if (fw := o.get("firmware")) is not None:
        if fw not in ("efi", "bios"):
            raise ConfigError(f"{option}: firmware={fw!r} must be efi or bios")
        d.uefi = fw == "efi"
    if o.flag("menu", "bootmenu.enable") is not None:
        d.warnings.append(f"{option} menu=: the boot menu option is ignored")
    if (v := o.get("kernel")) is not None:
        d.kernel = abs_path(option, "kernel", v)
    if (v := o.get("initrd")) is not None:
        d.initrd = abs_path(option, "initrd", v)
    if (v := o.get("kernel_args", "cmdline", "extra_args")) is not None:
        d.kernel_args = v
    o.finish()
    if (d.initrd or d.kernel_args) and not d.kernel:
        raise ConfigError(f"{option}: initrd= and kernel_args= need kernel= (direct kernel boot)")


def parse_cloud_init(d: Draft, text: str | None) -> None:
    option = "--cloud-init"
    if not text:
        d.cloud_init = CloudInit(root_password_generate=True, disable=True)
        return
    keys = (
        "root-password-generate",
        "root-password-file",
        "ssh-key",
        "clouduser-ssh-key",
        "user-data",
        "meta-data",
        "disable",
    )
    o = parse(option, text, valid=keys)
    gen = o.flag("root-password-generate") or False
    pw = o.get("root-password-file")
    keys_given = [o.get(k) for k in ("ssh-key", "clouduser-ssh-key")]
    user_data = o.get("user-data")
    meta_data = o.get("meta-data")
    disable = o.flag("disable")
    o.finish()
    if gen and pw:
        raise ConfigError(f"{option}: give root-password-generate or root-password-file, not both")
    d.cloud_init = CloudInit(
        root_password_generate=gen,
        root_password_file=abs_path(option, "root-password-file", pw) if pw else None,
        ssh_keys=[abs_path(option, "ssh-key", k) for k in keys_given if k],
        user_data=abs_path(option, "user-data", user_data) if user_data else None,
        meta_data=abs_path(option, "meta-data", meta_data) if meta_data else None,
        disable=bool(disable) if disable is not None else gen or bool(pw),
    )


def parse_metadata(d: Draft, text: str) -> None:
    option = "--metadata"
    o = parse(option, text, valid=("name", "uuid", "title", "description"))
    if (v := o.get("name")) is not None:
        d.name = v
    if (v := o.get("uuid")) is not None:
        d.uuid = v
    if (v := o.get("title")) is not None:
        d.title = v
    if (v := o.get("description")) is not None:
        d.description = v
    o.finish()


def parse_virt_type(d: Draft, text: str) -> None:
    kinds = {"kvm": Accel.KVM, "qemu": Accel.TCG}
    if text not in kinds:
        raise ConfigError(f"--virt-type {text!r} is not supported; use kvm or qemu (TCG)")
    d.accel = kinds[text]


def parse_arch(d: Draft, text: str) -> None:
    if text.lower() not in ("x86_64", "amd64", "x64"):
        raise ConfigError(f"--arch {text!r} is not supported; virtkit runs x86_64 guests only")


def parse_machine(d: Draft, text: str) -> None:
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", text):
        raise ConfigError(f"--machine {text!r} is not a machine type name; use q35 or pc")
    d.machine = text


def parse_boot_profile(d: Draft, text: str) -> None:
    """virtkit's --boot-profile default|fast: fast is the microvm machine (model/profile.py)."""
    from virtkit.model.profile import PROFILES

    if text not in PROFILES:
        raise ConfigError(f"--boot-profile {text!r} is unknown; use one of: {', '.join(PROFILES)}")
    d.machine = PROFILES[text] or d.machine


def parse_wait(d: Draft, text: str | None) -> None:
    if not text:
        d.wait_minutes = -1
        return
    minutes = to_float("--wait", "minutes", text)
    d.wait_minutes = -1 if minutes < 0 else minutes


def parse_print_xml(d: Draft, text: str | None) -> None:
    if text and text not in ("1", "2", "all"):
        raise ConfigError(f"--print-xml {text!r}: give no value, 1, 2 or all")
    d.print_xml = True


def parse_autoconsole(d: Draft, text: str) -> None:
    if text not in ("text", "none", "graphical", "default"):
        raise ConfigError(f"--autoconsole {text!r}: use text or none")
    if text == "graphical":
        raise ConfigError("--autoconsole graphical is not supported; use text or none")
    d.autoconsole = text != "none"


def parse_memballoon(d: Draft, text: str) -> None:
    o = parse("--memballoon", text, valid=("model",), first=("model",))
    model = o.get("model")
    o.finish()
    if model == "none":
        d.warnings.append(
            "--memballoon none is ignored: virtkit guests always have a virtio "
            "balloon (it does nothing unless used)"
        )
    elif model != "virtio":
        raise ConfigError(f"--memballoon {model!r} is not supported; use virtio or none")
