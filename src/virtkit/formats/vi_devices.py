"""One parser per virt-install device option: --disk, --network, --graphics, --console/--serial."""

from __future__ import annotations

from virtkit.errors import ConfigError
from virtkit.formats.vi_draft import DiskDraft, Draft, GraphicsDraft, NicDraft
from virtkit.formats.vi_guest import abs_path
from virtkit.formats.vi_optstr import SubOpts, check_choice, parse, to_float, to_int
from virtkit.model.domain import (
    MAC_RE,
    CacheMode,
    DiskBus,
    DiskDevice,
    DiskFormat,
    GraphicsType,
    NicModel,
    NicType,
)
from virtkit.model.install import MAX_DISK_BYTES, volume_placeholder

DISK_KEYS = (
    "path",
    "size",
    "format",
    "driver.type",
    "bus",
    "target.bus",
    "cache",
    "driver.cache",
    "readonly",
    "perms",
    "device",
    "sparse",
    "serial",
    "target",
    "target.dev",
)
GIB = 1024**3


def _volume(option: str, vol: str | None, pool: str | None,
            name: str | None) -> tuple[str, str] | None:  # fmt: skip
    """vol=POOL/NAME, or pool=POOL with source.volume=NAME (libvirt's spelling)."""
    if vol is None and pool is None and name is None:
        return None
    if vol is not None:
        pool, _, name = vol.partition("/")
    if not pool or not name or "/" in name:
        raise ConfigError(f"{option}: give vol=POOL/NAME (e.g. vol=default/web.qcow2)")
    return pool, name


def parse_disk(d: Draft, text: str) -> None:
    option = "--disk"
    o = parse(option, text, valid=DISK_KEYS, first=("path",))
    volume = _volume(option, o.get("vol"), o.get("pool", "source.pool"),
                     o.get("source.volume"))  # fmt: skip
    path = o.get("path")
    if volume is not None:
        if path is not None or o.has("size"):
            raise ConfigError(f"{option}: vol= names an existing pool volume; drop path=/size=")
        path = volume_placeholder(*volume)
    if path == "none":
        o.finish()
        if len(o.items) > 1:
            raise ConfigError(f"{option} none takes no other sub-options")
        d.no_disks = True
        return
    disk = DiskDraft(path=abs_path(option, "path", path) if path is not None else None)
    disk.volume = volume
    if (v := o.get("size")) is not None:
        gib = to_float(option, "size", v)
        if gib * GIB < 1024**2 or gib * GIB > MAX_DISK_BYTES:
            raise ConfigError(
                f"{option}: size={v} GiB is not a sensible disk size; "
                f"give at least 1 MiB (0.001) and at most {MAX_DISK_BYTES // GIB} GiB"
            )
        disk.size_gib = gib
    if (v := o.get("format", "driver.type")) is not None:
        disk.format = DiskFormat(check_choice(option, "format", v, ("qcow2", "raw")))
    if (v := o.get("bus", "target.bus")) is not None:
        bus = check_choice(option, "bus", v, ("virtio", "sata", "scsi", "ide"))
        if bus == "ide":
            d.warnings.append(f"{option} bus=ide: virtkit attaches IDE disks as SATA (AHCI)")
            bus = "sata"
        disk.bus = DiskBus(bus)
    if (v := o.get("cache", "driver.cache")) is not None:
        disk.cache = CacheMode(check_choice(option, "cache", v, [m.value for m in CacheMode]))
    if (v := o.get("device")) is not None:
        disk.device = DiskDevice(check_choice(option, "device", v, ("disk", "cdrom")))
    disk.readonly = bool(o.flag("readonly", "ro"))
    if (v := o.get("perms")) is not None:
        perms = check_choice(option, "perms", v, ("ro", "rw"))
        disk.readonly = perms == "ro"
    if (sparse := o.flag("sparse")) is not None:
        disk.sparse = sparse
    disk.serial = o.get("serial")
    disk.target = o.get("target", "target.dev")
    o.finish()
    if disk.device is DiskDevice.CDROM:
        if disk.size_gib is not None:
            raise ConfigError(f"{option}: a cdrom cannot have size=; give the ISO path only")
        if disk.bus is DiskBus.VIRTIO:
            raise ConfigError(f"{option}: a cdrom cannot use bus=virtio; use bus=sata or bus=scsi")
        if disk.path is None:
            raise ConfigError(f"{option}: a cdrom needs path=/absolute/file.iso")
    if disk.path is None and disk.size_gib is None:
        raise ConfigError(f"{option}: give path=/absolute/file, size=GiB for a new disk, or none")
    d.disks.append(disk)


NIC_KEYS = ("type", "source", "bridge", "network", "model", "model.type", "mac", "mac.address",
            "hostfwd")  # fmt: skip


def parse_network(d: Draft, text: str) -> None:
    option = "--network"
    o = parse(option, text, valid=NIC_KEYS, first=("type",))
    kind = o.get("type")
    source = o.get("source")
    bridge = o.get("bridge")
    net = o.get("network")
    model = o.get("model", "model.type")
    mac = o.get("mac", "mac.address")
    hostfwd = _hostfwds(o)
    o.finish()
    if kind is not None and ":" in kind:  # old syntax: bridge:br0, network:default
        kind, _, source = kind.partition(":")
    if kind == "none":
        if len(o.items) > 1:
            raise ConfigError(f"{option} none takes no other sub-options")
        d.no_nics = True
        return
    if bridge is not None:
        kind, source = "bridge", bridge
    if net is not None:
        kind, source = "network", net
    if kind is None:
        raise ConfigError(f"{option}: give bridge=NAME, network=NAME, user or none")
    kind = check_choice(option, "type", kind, ("bridge", "network", "user", "default"))
    if kind == "default":  # virt-install: the managed 'default' network (system mode)
        nic = (NicDraft(type=NicType.USER) if d.unprivileged
               else NicDraft(type=NicType.NETWORK, source="default"))  # fmt: skip
    elif kind == "user":
        if source:
            raise ConfigError(f"{option}: a user-mode interface takes no source")
        nic = NicDraft(type=NicType.USER)
    else:
        if not source:
            raise ConfigError(f"{option}: type={kind} needs the {kind} name ({kind}=NAME)")
        if len(source) > 15 or any(c in source for c in "/ ,:\x00\n"):
            raise ConfigError(
                f"{option}: {source!r} is not a valid {kind} name "
                "(at most 15 characters, no '/', ':' or spaces)"
            )
        nic = NicDraft(type=NicType(kind), source=source)
    if model is not None:
        nic.model = NicModel(check_choice(option, "model", model, [m.value for m in NicModel]))
    if mac is not None and mac.upper() != "RANDOM":
        low = mac.lower()
        if not MAC_RE.fullmatch(low):
            raise ConfigError(
                f"{option}: mac={mac!r} is not a MAC address; use six hex pairs "
                "like 52:54:00:12:34:56"
            )
        if int(low[:2], 16) & 1:
            raise ConfigError(f"{option}: mac={mac!r} is multicast; the first octet must be even")
        nic.mac = low
    if hostfwd:
        if nic.type is not NicType.USER:
            raise ConfigError(f"{option}: hostfwd= is for user-mode networking (--network user)")
        nic.hostfwd = hostfwd
    d.nics.append(nic)


def _hostfwds(o: SubOpts) -> list[str]:
    """Every ``hostfwd=tcp::HOSTPORT-:GUESTPORT`` item (the key may repeat)."""
    from virtkit.model.portfwd import parse_hostfwd

    out = []
    for i, (k, v) in enumerate(o.items):
        if k != "hostfwd":
            continue
        o.used.add(i)
        try:
            out.append(parse_hostfwd(v or ""))
        except ValueError as exc:
            raise ConfigError(f"--network: {exc}") from None
    return out


def _default_nic(d: Draft, said: str = "--network default") -> NicDraft:
    d.warnings.append(
        f"{said}: using user-mode networking (give --network network=default for the "
        "managed NAT network, or --network bridge=NAME to join a host bridge)"
    )
    return NicDraft(type=NicType.USER)


def default_nic(d: Draft) -> NicDraft:
    """The NIC a guest gets without --network (virt-install: network=default or user)."""
    if d.unprivileged:
        return NicDraft(type=NicType.USER)
    return _default_nic(d, "no --network given")


def parse_graphics(d: Draft, text: str) -> None:
    option = "--graphics"
    o = parse(option, text, valid=("type", "listen", "port", "password", "passwd"), first=("type",))
    kind = (o.get("type") or "vnc").lower()
    if kind == "spice":
        raise ConfigError(f"{option}: SPICE is not supported; use vnc or none")
    kind = check_choice(option, "type", kind, ("vnc", "none"))
    if d.graphics is not None:
        raise ConfigError(f"{option}: give one --graphics only (virtkit has one display)")
    g = GraphicsDraft(type=GraphicsType(kind))
    if kind == "none":
        o.finish()
        if len(o.items) > 1:
            raise ConfigError(f"{option} none takes no other sub-options")
        d.graphics = g
        return
    if (v := o.get("listen")) is not None:
        if v == "none":
            raise ConfigError(f"{option}: listen=none is not supported; give an address or socket")
        g.listen = v
    if (v := o.get("port")) is not None and v not in ("-1", "auto"):
        g.port = to_int(option, "port", v, low=5900, high=65535)
    if (v := o.get("password", "passwd")) is not None:
        if not 1 <= len(v) <= 8:
            raise ConfigError(f"{option}: a VNC password has 1 to 8 characters (VNC's limit)")
        g.password = v
    o.finish()
    d.graphics = g


def parse_console(d: Draft, text: str, option: str) -> None:
    """--console/--serial: only a pty on the guest's serial port exists; validate that."""
    keys = ("type", "target_type", "target.type", "target.port", "target_port")
    o = parse(option, text, valid=keys, first=("type",))
    if any(k.startswith("log") for k in o.names()):
        raise ConfigError(
            f"{option}: log.file= is not supported; virtkit always keeps the "
            "console log (virtkit console NAME, or the log file it shows)"
        )
    kind = o.get("type") or "pty"
    if kind != "pty":
        raise ConfigError(
            f"{option}: type {kind!r} is not supported; only pty is (it is "
            "reached with virtkit console NAME)"
        )
    target = o.get("target_type", "target.type") or "serial"
    if target == "virtio":
        raise ConfigError(
            f"{option}: a virtio console is not supported; use "
            "target_type=serial (the guest's ttyS0)"
        )
    check_choice(option, "target_type", target, ("serial", "isa-serial"))
    if (v := o.get("target.port", "target_port")) is not None:
        to_int(option, "target.port", v, low=0, high=0)
    o.finish()
