"""virt-install grammar -> InstallSpec: accepted command lines and every error's message."""

from __future__ import annotations

import shlex

import pytest

from virtkit.errors import ConfigError
from virtkit.formats.virtinstall import ParsedInstall, parse_install_args, supported_options
from virtkit.model.domain import (
    Accel,
    CacheMode,
    DiskBus,
    DiskDevice,
    DiskFormat,
    GraphicsType,
    NicModel,
    NicType,
    Topology,
)
from virtkit.model.install import InstallMethod

GUIDE = (
    "--name=kvm-server --memory=512,maxmemory=1024 --vcpus=1,maxvcpus=2 --os-type=linux "
    "--os-variant=rhel7 --location=/path/to/install.iso "
    "--disk path=/var/lib/virtkit/images/rhel-server.img,size=12 --network bridge=br0 "
    "--graphics=none --console=pty,target_type=serial "
    '--extra-args="console=tty0 console=ttyS0"'
)
BASE = "--name t --memory 1024 --os-variant debian12 --import --disk /img/t.qcow2 "


def parse(cmd: str, unprivileged: bool = False) -> ParsedInstall:
    return parse_install_args(shlex.split(cmd), unprivileged=unprivileged)


def error(cmd: str, unprivileged: bool = False) -> str:
    with pytest.raises(ConfigError) as exc:
        parse(cmd, unprivileged)
    return exc.value.message


# -- the guide's command ------------------------------------------------------------------


def test_guide_command_as_typed() -> None:
    p = parse(GUIDE)
    spec, dom = p.spec, p.spec.domain
    assert spec.method is InstallMethod.LOCATION
    assert spec.location == "/path/to/install.iso"
    assert spec.extra_args == "console=tty0 console=ttyS0"
    assert dom.name == "kvm-server"
    assert (dom.memory_mib, dom.current_memory_mib, dom.max_memory_mib) == (1024, 512, None)
    assert (dom.vcpus, dom.max_vcpus) == (1, 2)
    assert dom.os_variant == "rhel7.0"
    assert [(n.type, n.source, n.model) for n in dom.nics] == [
        (NicType.BRIDGE, "br0", NicModel.VIRTIO)
    ]
    assert dom.graphics.type is GraphicsType.NONE
    assert dom.serial
    [disk] = dom.disks
    assert (disk.path, disk.format, disk.bus) == (
        "/var/lib/virtkit/images/rhel-server.img",
        DiskFormat.QCOW2,
        DiskBus.VIRTIO,
    )
    [new] = spec.new_disks
    assert (new.path, new.size_bytes, new.format, new.sparse) == (
        disk.path,
        12 * 1024**3,
        DiskFormat.QCOW2,
        True,
    )
    assert dom.boot.order == ["hd"] and dom.boot.kernel is None
    assert dom.on_reboot.value == "restart"  # install-phase overrides are the daemon's job
    assert p.warnings == ["--os-type is deprecated and ignored (use --os-variant)"]
    assert not p.dry_run and not p.print_xml


def test_option_spellings_are_equivalent() -> None:
    a = parse("--name x --memory 512 -l /iso/a.iso -x 'a b' --os-variant generic --disk none")
    b = parse("-n x -m=512 --location=/iso/a.iso --extra-args='a b' --osinfo=generic --nodisks")
    assert a.spec == b.spec


def test_parse_is_pure_and_repeatable() -> None:
    argv = shlex.split(GUIDE)
    copy = list(argv)
    assert parse_install_args(argv) == parse_install_args(argv)
    assert argv == copy


# -- memory and CPUs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("memory", "expected"),
    [
        ("512", (512, None, None, 16)),
        ("memory=512", (512, None, None, 16)),
        ("512,maxmemory=512", (512, None, None, 16)),
        ("maxmemory=2048", (2048, None, None, 16)),
        ("1024,maxMemory=4096,maxMemory.slots=4", (1024, None, 4096, 4)),
        ("1024,hotplugmemorymax=2048,hotplugmemoryslots=2", (1024, None, 2048, 2)),
        ("currentMemory=256,maxmemory=1024", (1024, 256, None, 16)),
    ],
)
def test_memory(memory: str, expected: tuple[int, int | None, int | None, int]) -> None:
    dom = parse(BASE.replace("--memory 1024", f"--memory {memory}")).spec.domain
    got = (dom.memory_mib, dom.current_memory_mib, dom.max_memory_mib, dom.memory_slots)
    assert got == expected


def test_ram_is_deprecated_memory() -> None:
    p = parse(BASE.replace("--memory 1024", "--ram 768"))
    assert p.spec.domain.memory_mib == 768
    assert "--ram is deprecated; use --memory" in p.warnings


def test_memory_default_comes_from_osinfo() -> None:
    dom = parse("--name w --os-variant win11 --import --disk /img/w.qcow2").spec.domain
    assert dom.memory_mib == 4096 and dom.boot.uefi
    assert "--memory is required" in error("--name w --import --disk /img/w.qcow2")


@pytest.mark.parametrize(
    ("memory", "message"),
    [
        ("abc", "--memory: memory='abc' is not a whole number"),
        ("1.5", "--memory: memory='1.5' is not a whole number"),
        ("0", "--memory: memory=0 is out of range"),
        ("99999999999", "out of range"),
        ("2048,maxmemory=1024", "memory=2048 is above maxmemory=1024"),
        ("1024,maxMemory=512", "maxMemory=512 (the hotplug ceiling) is below"),
        ("1024,maxMemory.slots=4", "maxMemory.slots needs maxMemory="),
        ("1024,maxMemory.slots=999,maxMemory=2048", "maxMemory.slots=999 is out of range"),
        ("1024,balloon=1", "--memory: unknown sub-option 'balloon=1'"),
        ("1024,maxmemory", "--memory: maxmemory needs a value"),
    ],
)
def test_memory_errors(memory: str, message: str) -> None:
    assert message in error(BASE.replace("--memory 1024", f"--memory={memory}"))


@pytest.mark.parametrize(
    ("vcpus", "expected"),
    [
        ("2", (2, None, None)),
        ("1,maxvcpus=4", (1, 4, None)),
        ("4,sockets=2", (4, None, Topology(sockets=2, cores=2, threads=1))),
        ("8,cores=2,threads=2", (8, None, Topology(sockets=2, cores=2, threads=2))),
        ("2,maxvcpus=8,sockets=2,cores=2", (2, 8, Topology(sockets=2, cores=2, threads=2))),
        ("sockets=2,cores=2", (4, None, Topology(sockets=2, cores=2, threads=1))),
        ("vcpus=2,sockets=1,cores=2,threads=2", (2, 4, Topology(sockets=1, cores=2, threads=2))),
    ],
)
def test_vcpus(vcpus: str, expected: tuple[int, int | None, Topology | None]) -> None:
    dom = parse(BASE + f"--vcpus {vcpus}").spec.domain
    assert (dom.vcpus, dom.max_vcpus, dom.topology) == expected


@pytest.mark.parametrize(
    ("vcpus", "message"),
    [
        ("0", "--vcpus: vcpus=0 is out of range; use 1 to 1024"),
        ("two", "--vcpus: vcpus='two' is not a whole number"),
        ("4,maxvcpus=2", "vcpus=4 is above maxvcpus=2"),
        ("6,sockets=4", "6 vCPUs cannot be split into sockets=4"),
        ("4,sockets=2,cores=1,threads=1", "= 2, but maxvcpus is 4"),
        ("4,dies=2", "--vcpus: unknown sub-option 'dies=2'"),
        ("4,threads=16", "threads=16 is out of range"),
    ],
)
def test_vcpus_errors(vcpus: str, message: str) -> None:
    assert message in error(BASE + f"--vcpus={vcpus}")


@pytest.mark.parametrize(
    ("cpu", "model"),
    [
        ("host-passthrough", "host-passthrough"),
        ("host-model", "host-passthrough"),
        ("host", "host-passthrough"),
        ("mode=host-passthrough", "host-passthrough"),
        ("Skylake-Client", "Skylake-Client"),
        ("model=EPYC", "EPYC"),
        ("maximum", "max"),
    ],
)
def test_cpu(cpu: str, model: str) -> None:
    assert parse(BASE + f"--cpu {cpu}").spec.domain.cpu_model == model


@pytest.mark.parametrize(
    ("cpu", "message"),
    [
        ("host,cell0.cpus=0", "--cpu: cell0 needs both cell0.memory=KiB and cell0.cpus="),
        ("Skylake-Client,+vmx", "--cpu: CPU feature flags (+vmx) are not supported yet"),
        ("mode=weird", "--cpu: mode='weird' is not supported"),
        ("'bad model!'", "is not a CPU model name"),
    ],
)
def test_cpu_errors(cpu: str, message: str) -> None:
    assert message in error(BASE + f"--cpu {cpu}")


# -- OS variants --------------------------------------------------------------------------


def test_os_variant_forms() -> None:
    for form in ("rhel9.4", "name=rhel9.4", "short-id=rhel9.4", "id=http://redhat.com/rhel/9.4"):
        assert parse(BASE.replace("debian12", form)).spec.domain.os_variant == "rhel9.4"


def test_os_variant_unknown_lists_close_matches() -> None:
    msg = error(BASE.replace("debian12", "debain12"))
    assert "--os-variant: unknown OS variant 'debain12'" in msg
    assert "did you mean: debian12" in msg


def test_os_variant_detect() -> None:
    p = parse(BASE.replace("--os-variant debian12", "--os-variant detect=on,require=off"))
    assert p.spec.domain.os_variant is None
    assert any("detected from the install media" in w for w in p.warnings)
    assert "either detect=on or a name" in error(BASE.replace("debian12", "detect=on,name=x"))


def test_no_os_variant_warns_and_uses_virtio() -> None:
    p = parse("--name t --memory 512 --import --disk /img/t.qcow2")
    assert p.spec.domain.os_variant is None
    assert p.spec.domain.disks[0].bus is DiskBus.VIRTIO
    assert any(w.startswith("no --os-variant given") for w in p.warnings)


def test_windows_gets_sata_and_e1000e_unless_told() -> None:
    dom = parse(BASE.replace("debian12", "win10")).spec.domain
    assert dom.disks[0].bus is DiskBus.SATA and dom.nics[0].model is NicModel.E1000E
    cmd = BASE.replace("debian12", "win10").replace("t.qcow2", "t.qcow2,bus=virtio")
    dom = parse(cmd + " --network user,model=virtio").spec.domain
    assert dom.disks[0].bus is DiskBus.VIRTIO and dom.nics[0].model is NicModel.VIRTIO


# -- install methods and boot -------------------------------------------------------------


def test_cdrom_install_keeps_the_cd() -> None:
    spec = parse("--name c --memory 1024 --cdrom /iso/x.iso --disk /img/c.qcow2").spec
    assert spec.method is InstallMethod.CDROM and spec.cdrom == "/iso/x.iso"
    cd = spec.domain.disks[-1]
    assert (cd.path, cd.device, cd.bus, cd.readonly) == (
        "/iso/x.iso",
        DiskDevice.CDROM,
        DiskBus.SATA,
        True,
    )
    assert spec.domain.boot.order == ["hd", "cdrom"]  # the install boot itself uses cdrom first


def test_location_url_with_kernel_and_initrd() -> None:
    spec = parse(
        "--name l --memory 1024 --location 'https://m.example/os/,kernel=a/vmlinuz,initrd=a/i.img'"
        " --initrd-inject /root/ks.cfg --initrd-inject=/root/b.cfg --disk none"
    ).spec
    assert spec.location == "https://m.example/os/"
    assert (spec.location_kernel, spec.location_initrd) == ("a/vmlinuz", "a/i.img")
    assert spec.initrd_inject == ["/root/ks.cfg", "/root/b.cfg"]
    assert spec.domain.disks == []


def test_direct_kernel_boot() -> None:
    dom = parse(
        "--name k --memory 256 --boot 'kernel=/b/vmlinuz,initrd=/b/initrd,kernel_args=\"a=1 b\"'"
        " --disk none"
    ).spec.domain
    assert (dom.boot.kernel, dom.boot.initrd, dom.boot.cmdline) == (
        "/b/vmlinuz",
        "/b/initrd",
        "a=1 b",
    )


def test_boot_order_uefi_and_menu() -> None:
    p = parse(BASE + "--boot cdrom,hd,network,menu=on --boot firmware=efi")
    assert p.spec.domain.boot.order == ["cdrom", "hd", "network"]
    assert p.spec.domain.boot.uefi
    assert any("menu" in w for w in p.warnings)
    assert parse(BASE + "--boot uefi=off").spec.domain.boot.uefi is False


@pytest.mark.parametrize(
    ("cmd", "message"),
    [
        (
            "--name a --memory 512 --cdrom /a.iso --location /b.iso",
            "--cdrom and --location are both",
        ),
        ("--name a --memory 512 --import --location /b.iso --disk /d", "--import and --location"),
        ("--name a --memory 512 --pxe --disk /d", "--pxe is not supported by virtkit yet"),
        ("--name a --memory 512 --disk /d", "an install method is required"),
        (
            "--name a --memory 512 --import --disk /d -x 'a'",
            "--extra-args only works with --location",
        ),
        ("--name a --memory 512 --cdrom /a.iso --extra-args=x", "--extra-args only works with"),
        ("--name a --memory 512 --import --disk /d --initrd-inject /k", "--initrd-inject only"),
        ("--name a --memory 512 --import --disk /d --initrd-inject k.cfg", "relative path"),
        (
            "--name a --memory 512 --location iso/x.iso",
            "--location: location='iso/x.iso' is a relative",
        ),
        ("--name a --memory 512 --location ftp://h/x", "only http:// and https:// URLs"),
        ("--name a --memory 512 --cdrom https://h/x.iso", "--cdrom takes a local ISO file"),
        ("--name a --memory 512 --import", "--import needs a --disk"),
        ("--name a --memory 512 --boot fd --disk /d", "floppy boot (fd) is not supported"),
        ("--name a --memory 512 --boot initrd=/i --disk /d", "need kernel="),
        ("--name a --memory 512 --boot kernel=vmlinuz", "--boot: kernel='vmlinuz' is a relative"),
        ("--name a --memory 512 --boot loader=/x --disk /d", "loader= is not supported"),
        (
            "--name a --memory 512 --boot firmware=coreboot",
            "firmware='coreboot' must be efi or bios",
        ),
        (
            "--name a --memory 512 --boot hd,bogus=1 --disk /d",
            "--boot: unknown sub-option 'bogus=1'",
        ),
    ],
)
def test_method_and_boot_errors(cmd: str, message: str) -> None:
    assert message in error(cmd)


# -- disks --------------------------------------------------------------------------------


def test_disk_options() -> None:
    spec = parse(
        BASE + "--disk path=/img/d.raw,size=0.5,format=raw,bus=ide,cache=none,sparse=no"
        " --disk /img/ro.qcow2,readonly=on,serial=S1,target.bus=scsi --disk /iso/x.iso,device=cdrom"
    )
    d = spec.spec.domain.disks
    assert (d[1].format, d[1].bus, d[1].cache) == (DiskFormat.RAW, DiskBus.SATA, CacheMode.NONE)
    assert spec.spec.new_disks[0].size_bytes == 512 * 1024**2
    assert spec.spec.new_disks[0].sparse is False
    assert (d[2].readonly, d[2].serial, d[2].bus) == (True, "S1", DiskBus.SCSI)
    assert (d[3].device, d[3].bus) == (DiskDevice.CDROM, DiskBus.SATA)
    assert any("bus=ide" in w for w in spec.warnings)


def test_new_disk_format_is_explicit_even_for_img_suffix() -> None:
    spec = parse(BASE + "--disk /img/new.img,size=1").spec
    assert spec.domain.disks[1].format is DiskFormat.QCOW2
    assert spec.new_disks[0].format is DiskFormat.QCOW2


def test_default_disk_for_media_installs() -> None:
    # a new disk without path= is a volume of the daemon's default pool: the daemon picks
    # the file (under its own state directory), not the client (issue 12)
    p = parse("--name auto --memory 1024 --os-variant fedora40 --cdrom /iso/f.iso")
    nd = p.spec.new_disks[0]
    assert (nd.pool, nd.volume, nd.path) == ("default", "auto.qcow2",
                                              "/virtkit-volume/default/auto.qcow2")  # fmt: skip
    assert p.spec.domain.disks[0].path == nd.path
    assert nd.size_bytes == 20 * 1024**3
    p = parse(
        "--name two --memory 1024 --location /iso/f.iso --disk size=5 --disk size=6,format=raw"
    )
    assert [n.volume for n in p.spec.new_disks] == ["two.qcow2", "two-1.img"]
    # session daemons have a default pool too
    p = parse("--name s --memory 512 --cdrom /iso/f.iso --disk size=4", unprivileged=True)
    assert p.spec.new_disks[0].pool == "default"
    p = parse("--name s --memory 512 --cdrom /iso/f.iso --disk /d/s.qcow2,size=4")
    assert (p.spec.new_disks[0].path, p.spec.new_disks[0].pool) == ("/d/s.qcow2", None)


@pytest.mark.parametrize(
    ("disk", "message"),
    [
        ("vol=default", "give vol=POOL/NAME"),
        ("vol=default/x.qcow2,size=4", "vol= names an existing pool volume"),
        ("images/x.qcow2", "--disk: path='images/x.qcow2' is a relative path; use an absolute"),
        ("/x,size=0", "size=0 GiB is not a sensible disk size"),
        ("/x,size=-3", "is not a sensible disk size"),
        ("/x,size=1e-12", "give at least 1 MiB"),
        ("/x,size=1e30", "size=1e30 GiB is not a sensible disk size"),
        ("/x,size=70000", "at most 65536 GiB"),
        ("/x,size=nan", "is not a finite number"),
        ("/x,size=big", "size='big' is not a number"),
        ("/x,format=vmdk", "--disk: format='vmdk' is not supported; use one of: qcow2, raw"),
        ("/x,bus=usb", "bus='usb' is not supported"),
        ("/x,cache=fast", "cache='fast' is not supported"),
        ("/x,device=floppy", "device='floppy' is not supported"),
        ("/x.iso,device=cdrom,bus=virtio", "a cdrom cannot use bus=virtio"),
        ("/x.iso,device=cdrom,size=1", "a cdrom cannot have size="),
        ("/x,readonly=maybe", "readonly='maybe' must be on or off"),
        ("/x,foo=bar", "--disk: unknown sub-option 'foo=bar'; valid keys are: path, size"),
        ("/x,sise=3", "(did you mean size?)"),
        ("/x,target=xda", "--disk: invalid domain definition"),
        ("none,size=3", "--disk: unknown sub-option"),
        ("'path=\"/x'", "No closing quotation"),
    ],
)
def test_disk_errors(disk: str, message: str) -> None:
    assert message in error(BASE + f"--disk {disk}")


def test_disk_none_with_other_disks() -> None:
    assert "--disk none cannot be combined" in error(BASE + "--disk none")


# -- network, graphics, console -----------------------------------------------------------


@pytest.mark.parametrize(
    ("net", "nic"),
    [
        ("bridge=br0", (NicType.BRIDGE, "br0", NicModel.VIRTIO, None)),
        ("bridge:br1", (NicType.BRIDGE, "br1", NicModel.VIRTIO, None)),
        ("network=lan,model=e1000", (NicType.NETWORK, "lan", NicModel.E1000, None)),
        ("network:lan", (NicType.NETWORK, "lan", NicModel.VIRTIO, None)),
        ("type=bridge,source=br2", (NicType.BRIDGE, "br2", NicModel.VIRTIO, None)),
        ("user,model.type=rtl8139", (NicType.USER, None, NicModel.RTL8139, None)),
        ("user,mac=52:54:00:AA:BB:CC", (NicType.USER, None, NicModel.VIRTIO, "52:54:00:aa:bb:cc")),
        ("user,mac=RANDOM", (NicType.USER, None, NicModel.VIRTIO, None)),
        ("default", (NicType.NETWORK, "default", NicModel.VIRTIO, None)),
        ("network=default", (NicType.NETWORK, "default", NicModel.VIRTIO, None)),
    ],
)
def test_network(net: str, nic: tuple[NicType, str | None, NicModel, str | None]) -> None:
    [got] = parse(BASE + f"--network {net}").spec.domain.nics
    assert (got.type, got.source, got.model, got.mac) == nic


def test_network_defaults() -> None:
    p = parse(BASE)
    assert [n.type for n in p.spec.domain.nics] == [NicType.USER]
    assert any("--network network=default" in w for w in p.warnings)
    p = parse(BASE, unprivileged=True)
    assert [n.type for n in p.spec.domain.nics] == [NicType.USER] and p.warnings == []
    assert parse(BASE + "--network none").spec.domain.nics == []
    assert parse(BASE + "--nonetworks").spec.domain.nics == []
    assert len(parse(BASE + "-w user -w bridge=br0").spec.domain.nics) == 2
    [nic] = parse(BASE + "--network default", unprivileged=True).spec.domain.nics
    assert nic.type is NicType.USER


def test_network_hostfwd() -> None:
    [nic] = parse(BASE + "--network user,hostfwd=tcp::2222-:22,hostfwd=udp:127.0.0.1:53-:53"
                  ).spec.domain.nics  # fmt: skip
    assert nic.hostfwd == ["tcp::2222-:22", "udp:127.0.0.1:53-:53"]
    assert "user-mode networking" in error(BASE + "--network bridge=br0,hostfwd=tcp::1-:2")
    assert "invalid port forward" in error(BASE + "--network user,hostfwd=tcp:2222:22")
    assert "forwarded twice" in error(BASE + "--network user,hostfwd=tcp::1-:2,hostfwd=tcp::1-:3")


@pytest.mark.parametrize(
    ("net", "message"),
    [
        ("bridge=", "needs the bridge name"),
        ("type=bridge", "type=bridge needs the bridge name"),
        ("direct=eth0", "--network: unknown sub-option 'direct=eth0'"),
        ("''", "--network: empty value"),
        ("type=direct,source=eth0", "type='direct' is not supported"),
        ("bridge=averyveryverylongbridgename", "is not a valid bridge name"),
        ("user,mac=zz:zz", "mac='zz:zz' is not a MAC address"),
        ("user,mac=01:00:00:00:00:01", "is multicast"),
        ("user,model=ne2k_pci", "model='ne2k_pci' is not supported"),
        ("user,source=x", "a user-mode interface takes no source"),
        ("none,model=virtio", "--network none takes no other sub-options"),
    ],
)
def test_network_errors(net: str, message: str) -> None:
    assert message in error(BASE + f"--network {net}")


def test_network_none_with_others() -> None:
    assert "--network none cannot be combined" in error(BASE + "--network none -w user")


def test_duplicate_mac() -> None:
    msg = error(BASE + "-w user,mac=52:54:00:00:00:01 -w user,mac=52:54:00:00:00:01")
    assert "MAC addresses must be unique" in msg


def test_graphics() -> None:
    g = parse(BASE + "--graphics vnc,listen=0.0.0.0,port=5905,password=secret").spec.domain.graphics
    assert (g.type, g.listen, g.port, g.password) == (GraphicsType.VNC, "0.0.0.0", 5905, "secret")
    g = parse(BASE + "--graphics vnc,port=-1").spec.domain.graphics
    assert (g.listen, g.port) == ("127.0.0.1", None)
    g = parse(BASE + "--graphics vnc,listen=socket").spec.domain.graphics
    assert g.listen == "socket"  # a Unix socket: the daemon's proxy is the only way in
    assert parse(BASE + "--nographics").spec.domain.graphics.type is GraphicsType.NONE
    assert parse(BASE).spec.domain.graphics.type is GraphicsType.NONE  # headless by default


@pytest.mark.parametrize(
    ("graphics", "message"),
    [
        ("--graphics spice", "--graphics: SPICE is not supported; use vnc or none"),
        ("--graphics sdl", "type='sdl' is not supported"),
        ("--graphics vnc,port=80", "port=80 is out of range"),
        ("--graphics vnc,password=waytoolongpassword", "1 to 8 characters"),
        ("--graphics vnc,listen='bad host'", "--graphics: invalid domain definition"),
        ("--graphics vnc,keymap=de", "--graphics: unknown sub-option 'keymap=de'"),
        ("--graphics vnc --graphics vnc", "give one --graphics only"),
        ("--graphics vnc --nographics", "--nographics conflicts with --graphics"),
    ],
)
def test_graphics_errors(graphics: str, message: str) -> None:
    assert message in error(BASE + graphics)


def test_console_and_serial_accepted() -> None:
    for opt in (
        "--console pty,target_type=serial",
        "--console pty,target.type=serial",
        "--serial pty",
        "--console pty --serial pty",
    ):
        assert parse(BASE + opt).spec.domain.serial


@pytest.mark.parametrize(
    ("console", "message"),
    [
        (
            "--console pty,target_type=virtio",
            "a virtio console is not supported; use target_type=serial",
        ),
        ("--serial file,path=/tmp/x", "type 'file' is not supported; only pty"),
        ("--serial pty,log.file=/tmp/x", "log.file= is not supported"),
        ("--console pty --console pty", "at most once each"),
        ("--serial pty,target.port=1", "target.port=1 is out of range"),
    ],
)
def test_console_errors(console: str, message: str) -> None:
    assert message in error(BASE + console)


# -- everything else ----------------------------------------------------------------------


def test_flags() -> None:
    p = parse(
        BASE + "--noautoconsole --noreboot --autostart --dry-run --print-xml --wait 15 "
        "--virt-type qemu --arch x86_64 --machine pc --description 'a, b' --uuid "
        "6A8E6C4C-2B2F-4F5B-9F53-0123456789AB --memballoon virtio --metadata title=T"
    )
    s, dom = p.spec, p.spec.domain
    assert (s.autoconsole, s.noreboot, s.autostart, s.transient) == (False, True, True, False)
    assert (p.dry_run, p.print_xml, s.wait_minutes) == (True, True, 15)
    assert (dom.accel, dom.machine, dom.description, dom.title) == (Accel.TCG, "pc", "a, b", "T")
    assert dom.uuid == "6a8e6c4c-2b2f-4f5b-9f53-0123456789ab"
    assert parse(BASE + "--wait").spec.wait_minutes == -1
    assert parse(BASE + "--wait=-5").spec.wait_minutes == -1
    assert parse(BASE + "--print-xml 1").print_xml
    assert parse(BASE + "--autoconsole none").spec.autoconsole is False
    assert parse(BASE + "--virt-type kvm").spec.domain.accel is Accel.KVM
    assert parse(BASE).spec.domain.accel is Accel.AUTO


def test_cloud_init() -> None:
    ci = parse(BASE + "--cloud-init").spec.cloud_init
    assert ci is not None and ci.root_password_generate and ci.disable
    ci = parse(
        BASE + "--cloud-init ssh-key=/k.pub,user-data=/u.yaml,meta-data=/m.yaml"
    ).spec.cloud_init
    assert ci is not None
    assert (ci.ssh_keys, ci.user_data, ci.meta_data, ci.root_password_generate) == (
        ["/k.pub"],
        "/u.yaml",
        "/m.yaml",
        False,
    )
    assert "relative path" in error(BASE + "--cloud-init ssh-key=id.pub")
    assert "not both" in error(
        BASE + "--cloud-init root-password-generate=on,root-password-file=/p"
    )
    assert "unknown sub-option 'network-config" in error(BASE + "--cloud-init network-config=/n")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "--features kvm_hidden=on",
            "virt-install option --features is not supported by virtkit yet",
        ),
        ("--hostdev 0x1234:0x5678", "only PCI devices can be passed through"),
        ("--tpm default", "virt-install option --tpm is not supported"),
        ("--qemu-commandline=-foo", "option --qemu-commandline is not supported"),
        ("-f /x", "virt-install option --file is not supported"),
        ("--frobnicate", "unknown option --frobnicate"),
        ("--netwrk user", "unknown option --netwrk; did you mean --network?"),
        ("--memroy=5", "unknown option --memroy; did you mean --memory?"),
        ("-z", "unknown option -z"),
        ("--connect qemu:///system", "--connect belongs to virtkit itself"),
        ("--help", "virtkit install takes virt-install's options"),
        ("stray", "unexpected argument 'stray'"),
        ("--virt-type xen", "--virt-type 'xen' is not supported; use kvm or qemu"),
        ("--arch aarch64", "virtkit runs x86_64 guests only"),
        ("--machine 'Q 35'", "--machine 'Q 35' is not a machine type name"),
        ("--wait soon", "--wait: minutes='soon' is not a number"),
        ("--print-xml 3", "--print-xml '3': give no value, 1, 2 or all"),
        ("--autoconsole graphical", "--autoconsole graphical is not supported"),
        ("--memballoon xen", "--memballoon 'xen' is not supported"),
        ("--transient --autostart", "--transient and --autostart conflict"),
        ("--metadata genid=1", "--metadata: unknown sub-option 'genid=1'"),
        ("--uuid nope", "invalid uuid 'nope'"),
        ("--os-variant list", "known variants are: rhel6.0"),
        ("--extra-args", "--extra-args needs a value (write --extra-args=VALUE"),
    ],
)
def test_option_errors(extra: str, message: str) -> None:
    assert message in error(BASE + extra)


@pytest.mark.parametrize(
    ("cmd", "message"),
    [
        ("--memory 512 --import --disk /d", "--name is required"),
        ("--name 'bad name' --memory 512 --import --disk /d", "--name: invalid domain name"),
        ("--name -x --memory 512 --import --disk /d", "--name"),
    ],
)
def test_name_errors(cmd: str, message: str) -> None:
    assert message in error(cmd)


def test_deprecated_options_warn() -> None:
    p = parse(BASE + "--os-type windows --hvm --accelerate --force --debug --quiet")
    assert len([w for w in p.warnings if "deprecated and ignored" in w]) == 6


@pytest.mark.parametrize(
    "garbage",
    [
        "--memory=abc",
        "--vcpus=0",
        "--disk size=1e30",
        "--disk ,,,",
        "--disk '\"'",
        "--network ,",
        "--graphics ''",
        "--boot ''",
        "--cpu ''",
        "--os-variant ''",
        "--vcpus=-1",
        "--memory=,",
        "--location ''",
        "--disk /a\x00b",
        "--name " + "x" * 500,
        "--metadata uuid=zz",
        "--console ''",
    ],
)
def test_garbage_is_a_config_error_not_a_traceback(garbage: str) -> None:
    with pytest.raises(ConfigError):
        parse_install_args(shlex.split(BASE.replace("--memory 1024", "")) + shlex.split(garbage))


def test_supported_options_lists_the_guide_options() -> None:
    opts = supported_options()
    for name in (
        "--name",
        "--memory",
        "--vcpus",
        "--os-variant",
        "--location",
        "--disk",
        "--network",
        "--graphics",
        "--console",
        "--extra-args",
    ):
        assert name in opts


def test_parse_touches_no_os_or_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import time
    import uuid

    def forbidden(*_: object, **__: object) -> None:
        raise AssertionError("parse_install_args must be pure")

    expected = parse(GUIDE)
    for mod, names in (
        (os, ["stat", "listdir", "getenv", "access", "open", "scandir", "getuid"]),
        (time, ["time", "monotonic", "localtime"]),
        (uuid, ["uuid4", "uuid1"]),
    ):
        for name in names:
            monkeypatch.setattr(mod, name, forbidden)
    monkeypatch.setattr(os, "environ", {})
    assert parse(GUIDE) == expected


def test_disk_from_pool_volume() -> None:
    p = parse("--name v --memory 256 --import --disk vol=default/web.qcow2,bus=sata")
    (ref,) = p.spec.volumes
    assert (ref.index, ref.pool, ref.name) == (0, "default", "web.qcow2")
    assert p.spec.domain.disks[0].bus is DiskBus.SATA  # the daemon fills in path and format
    q = parse("--name v --memory 256 --import --disk pool=p2,source.volume=a.raw")
    assert (q.spec.volumes[0].pool, q.spec.volumes[0].name) == ("p2", "a.raw")


def test_disk_under_dev_is_a_block_device() -> None:
    """virt-install --disk path=/dev/sdX: a host block device (libvirt <disk type='block'>)."""
    from virtkit.formats.virtinstall import parse_install_args
    from virtkit.model.domain import DiskType

    spec = parse_install_args(["--name", "b", "--memory", "256", "--import",
                               "--disk", "path=/dev/vdb", "--disk", "path=/srv/a.qcow2",
                               "--graphics", "none"])  # fmt: skip
    types = {d.path: d.type for d in spec.spec.domain.disks}
    assert types == {"/dev/vdb": DiskType.BLOCK, "/srv/a.qcow2": DiskType.FILE}
