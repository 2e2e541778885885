"""libvirt domain XML <-> Domain: round trips, strictness, and safe parsing."""

from __future__ import annotations

from typing import Any

import pytest

from virtkit.errors import ConfigError
from virtkit.formats.libvirt_xml import domain_from_xml, domain_to_xml
from virtkit.model.domain import (
    Accel,
    CacheMode,
    DiskBus,
    DiskDevice,
    DiskFormat,
    Domain,
    GraphicsType,
    NicModel,
    NicType,
    Topology,
)

UUID = "6a8e6c4c-2b2f-4f5b-9f53-0123456789ab"


def dom(**kw: Any) -> Domain:
    base: dict[str, Any] = {"name": "rt", "uuid": UUID}
    return Domain.model_validate(base | kw)


ROUND_TRIP = {
    "minimal": dom(),
    "no-uuid-tcg": Domain(name="bare", accel=Accel.TCG),
    "kvm-host-cpu": dom(accel="kvm", cpu_model="host", vcpus=4),
    "passthrough-topology": dom(
        cpu_model="host-passthrough",
        vcpus=2,
        max_vcpus=8,
        topology=Topology(sockets=2, cores=2, threads=2),
    ),
    "named-cpu-pc": dom(cpu_model="Skylake-Client", machine="pc", accel="tcg"),
    "max-cpu": dom(cpu_model="max"),
    "memory": dom(memory_mib=2048, current_memory_mib=1024, max_memory_mib=8192, memory_slots=4),
    "slots-without-max": dom(memory_slots=8),
    "metadata": dom(title="Front end", description="web <tier> & 'one'", os_variant="debian12"),
    "unknown-os-variant": dom(os_variant="myos1.0"),
    "uefi-direct-kernel": dom(
        boot={
            "uefi": True,
            "kernel": "/boot/vmlinuz",
            "initrd": "/boot/initrd.img",
            "cmdline": "console=ttyS0 root=/dev/vda1 quiet",
            "order": ["network", "cdrom", "hd"],
        }
    ),
    "devices": dom(
        emulator="/usr/bin/qemu-system-x86_64",
        disks=[
            {"path": "/img/a.qcow2", "target": "vda", "cache": "none"},
            {
                "path": "/img/b.raw",
                "format": "raw",
                "bus": "sata",
                "target": "sda",
                "serial": "DATA-1",
                "readonly": True,
            },
            {
                "path": "/img/c,1.qcow2",
                "format": "qcow2",
                "bus": "scsi",
                "target": "sdb",
                "cache": "unsafe",
            },
            {"path": "/iso/d.iso", "device": "cdrom", "target": "sdc"},
        ],
        nics=[
            {"type": "user", "mac": "52:54:00:00:00:01"},
            {"type": "bridge", "source": "br0", "model": "e1000e", "mac": "52:54:00:00:00:02"},
            {"type": "network", "source": "lan", "model": "rtl8139", "mac": "52:54:00:00:00:03"},
        ],
        graphics={"type": "vnc", "listen": "0.0.0.0", "port": 5901},
        serial=False,
        on_poweroff="preserve",
        on_reboot="destroy",
        on_crash="restart",
    ),
    "vnc-autoport": dom(graphics={"type": "vnc"}),
    "vnc-socket": dom(graphics={"type": "vnc", "listen": "socket"}),
}


@pytest.mark.parametrize("name", sorted(ROUND_TRIP))
def test_round_trip(name: str) -> None:
    d = ROUND_TRIP[name]
    text = domain_to_xml(d)
    assert domain_from_xml(text) == d
    assert domain_to_xml(domain_from_xml(text)) == text


def test_password_is_never_written() -> None:
    d = dom(graphics={"type": "vnc", "password": "s3cret"})
    text = domain_to_xml(d)
    assert "s3cret" not in text and "passwd" not in text
    assert domain_from_xml(text).graphics.password is None


def test_password_is_read() -> None:
    text = domain_to_xml(dom(graphics={"type": "vnc"})).replace(
        'autoport="yes"', "autoport=\"yes\" passwd='abc'"
    )
    assert domain_from_xml(text).graphics.password == "abc"


def test_unset_targets_are_written_like_normalize() -> None:
    d = dom(
        disks=[
            {"path": "/a.qcow2"},
            {"path": "/b.qcow2", "bus": "sata"},
            {"path": "/c.qcow2", "target": "vda"},
            {"path": "/d.iso", "device": "cdrom"},
        ]
    )
    text = domain_to_xml(d)
    targets = [disk.target for disk in domain_from_xml(text).disks]
    assert targets == ["vdb", "sda", "vda", "sdb"]


def test_writes_libvirt_shapes() -> None:
    text = domain_to_xml(ROUND_TRIP["memory"])
    assert '<maxMemory slots="4" unit="KiB">8388608</maxMemory>' in text
    assert '<memory unit="KiB">2097152</memory>' in text
    assert '<currentMemory unit="KiB">1048576</currentMemory>' in text
    text = domain_to_xml(ROUND_TRIP["passthrough-topology"])
    assert '<vcpu placement="static" current="2">8</vcpu>' in text
    assert '<topology sockets="2" dies="1" cores="2" threads="2" />' in text
    text = domain_to_xml(ROUND_TRIP["metadata"])
    assert '<libosinfo:os id="http://debian.org/debian/12" />' in text
    assert text.startswith('<domain type="kvm">\n  <name>rt</name>\n')
    assert '<domain type="qemu">' in domain_to_xml(ROUND_TRIP["no-uuid-tcg"])
    assert '<os firmware="efi">' in domain_to_xml(ROUND_TRIP["uefi-direct-kernel"])


# A q35 guest as `virsh dumpxml` shows it while running (virt-install --os-variant debian12).
DUMPXML = """<domain type='kvm' id='3'>
  <name>deb12</name>
  <uuid>a1b2c3d4-0000-4000-8000-000000000001</uuid>
  <metadata>
    <libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">
      <libosinfo:os id="http://debian.org/debian/12"/>
    </libosinfo:libosinfo>
    <other:thing xmlns:other="http://example.com/other"><other:x/></other:thing>
  </metadata>
  <memory unit='KiB'>2097152</memory>
  <currentMemory unit='KiB'>2097152</currentMemory>
  <vcpu placement='static'>2</vcpu>
  <resource>
    <partition>/machine</partition>
  </resource>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features>
    <acpi/>
    <apic/>
    <vmport state='off'/>
  </features>
  <cpu mode='host-passthrough' check='none' migratable='on'/>
  <clock offset='utc'>
    <timer name='rtc' tickpolicy='catchup'/>
    <timer name='pit' tickpolicy='delay'/>
    <timer name='hpet' present='no'/>
  </clock>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <pm>
    <suspend-to-mem enabled='no'/>
    <suspend-to-disk enabled='no'/>
  </pm>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' discard='unmap'/>
      <source file='/var/lib/libvirt/images/deb12.qcow2' index='2'/>
      <backingStore/>
      <target dev='vda' bus='virtio'/>
      <alias name='virtio-disk0'/>
      <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='/srv/iso/debian-12.5.0-amd64-netinst.iso' index='1'/>
      <backingStore/>
      <target dev='sda' bus='sata'/>
      <readonly/>
      <alias name='sata0-0-0'/>
      <address type='drive' controller='0' bus='0' target='0' unit='0'/>
    </disk>
    <controller type='usb' index='0' model='qemu-xhci' ports='15'>
      <alias name='usb'/>
      <address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/>
    </controller>
    <controller type='pci' index='0' model='pcie-root'>
      <alias name='pcie.0'/>
    </controller>
    <controller type='pci' index='1' model='pcie-root-port'>
      <model name='pcie-root-port'/>
      <target chassis='1' port='0x10'/>
      <alias name='pci.1'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0' multifunction='on'/>
    </controller>
    <controller type='sata' index='0'>
      <alias name='ide'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x1f' function='0x2'/>
    </controller>
    <controller type='virtio-serial' index='0'>
      <alias name='virtio-serial0'/>
      <address type='pci' domain='0x0000' bus='0x03' slot='0x00' function='0x0'/>
    </controller>
    <interface type='network'>
      <mac address='52:54:00:6b:3c:58'/>
      <source network='default' portid='0c7d9f5e-7c5e-4c1b-a0a6-1f0f35d9b0a1' bridge='virbr0'/>
      <target dev='vnet2'/>
      <model type='virtio'/>
      <alias name='net0'/>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </interface>
    <serial type='pty'>
      <source path='/dev/pts/3'/>
      <target type='isa-serial' port='0'>
        <model name='isa-serial'/>
      </target>
      <alias name='serial0'/>
    </serial>
    <console type='pty' tty='/dev/pts/3'>
      <source path='/dev/pts/3'/>
      <target type='serial' port='0'/>
      <alias name='serial0'/>
    </console>
    <channel type='unix'>
      <source mode='bind' path='/run/libvirt/qemu/channel/3-deb12/org.qemu.guest_agent.0'/>
      <target type='virtio' name='org.qemu.guest_agent.0' state='connected'/>
      <alias name='channel0'/>
      <address type='virtio-serial' controller='0' bus='0' port='1'/>
    </channel>
    <input type='tablet' bus='usb'>
      <alias name='input0'/>
      <address type='usb' bus='0' port='1'/>
    </input>
    <input type='mouse' bus='ps2'>
      <alias name='input1'/>
    </input>
    <input type='keyboard' bus='ps2'>
      <alias name='input2'/>
    </input>
    <graphics type='vnc' port='5900' autoport='yes' listen='127.0.0.1'>
      <listen type='address' address='127.0.0.1'/>
    </graphics>
    <video>
      <model type='vga' vram='16384' heads='1' primary='yes'/>
      <alias name='video0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x0'/>
    </video>
    <memballoon model='virtio'>
      <alias name='balloon0'/>
      <address type='pci' domain='0x0000' bus='0x05' slot='0x00' function='0x0'/>
    </memballoon>
    <rng model='virtio'>
      <backend model='random'>/dev/urandom</backend>
      <alias name='rng0'/>
      <address type='pci' domain='0x0000' bus='0x06' slot='0x00' function='0x0'/>
    </rng>
  </devices>
  <seclabel type='none' model='none'/>
</domain>
"""


def test_realistic_dumpxml() -> None:
    d = domain_from_xml(DUMPXML)
    assert (d.name, d.uuid, d.os_variant) == (
        "deb12",
        "a1b2c3d4-0000-4000-8000-000000000001",
        "debian12",
    )
    assert (d.memory_mib, d.current_memory_mib, d.vcpus, d.max_vcpus) == (2048, None, 2, None)
    assert (d.accel, d.machine, d.cpu_model) == (Accel.KVM, "pc-q35-7.2", "host-passthrough")
    assert d.emulator == "/usr/bin/qemu-system-x86_64"
    hd, cd = d.disks
    assert (hd.path, hd.format, hd.bus, hd.target, hd.cache) == (
        "/var/lib/libvirt/images/deb12.qcow2",
        DiskFormat.QCOW2,
        DiskBus.VIRTIO,
        "vda",
        CacheMode.WRITEBACK,
    )
    assert (cd.device, cd.bus, cd.readonly, cd.format) == (
        DiskDevice.CDROM,
        DiskBus.SATA,
        True,
        DiskFormat.RAW,
    )
    [nic] = d.nics
    assert (nic.type, nic.source, nic.model, nic.mac) == (
        NicType.NETWORK,
        "default",
        NicModel.VIRTIO,
        "52:54:00:6b:3c:58",
    )
    assert d.serial
    assert (d.graphics.type, d.graphics.port, d.graphics.listen) == (
        GraphicsType.VNC,
        None,
        "127.0.0.1",
    )
    assert domain_from_xml(domain_to_xml(d)) == d


def test_virt_install_print_xml_shape() -> None:
    """As `virt-install --print-xml` writes it: double quotes, uefi firmware, no addresses."""
    text = """<domain type="kvm">
  <name>efi</name>
  <memory>4194304</memory>
  <currentMemory>2097152</currentMemory>
  <vcpu current="2">4</vcpu>
  <os firmware="efi">
    <type arch="x86_64" machine="q35">hvm</type>
    <firmware><feature enabled="no" name="secure-boot"/></firmware>
    <boot dev="cdrom"/>
    <boot dev="hd"/>
  </os>
  <features><acpi/><apic/></features>
  <cpu mode="custom" match="exact"><model fallback="allow">Skylake-Client</model></cpu>
  <devices>
    <disk type="file" device="disk">
      <driver name="qemu" type="qcow2"/>
      <source file="/var/lib/libvirt/images/efi.qcow2"/>
      <target dev="sda"/>
    </disk>
    <interface type="bridge"><source bridge="br0"/></interface>
  </devices>
</domain>"""
    d = domain_from_xml(text)
    assert (d.memory_mib, d.current_memory_mib, d.vcpus, d.max_vcpus) == (4096, 2048, 2, 4)
    assert d.boot.uefi and d.boot.order == ["cdrom", "hd"]
    assert d.cpu_model == "Skylake-Client"
    assert d.disks[0].bus is DiskBus.SCSI  # libvirt's rule for sd* without bus=
    assert d.nics[0].model is NicModel.RTL8139  # libvirt's default NIC model on x86
    assert not d.serial and d.graphics.type is GraphicsType.NONE


def test_ovmf_loader_means_uefi() -> None:
    text = DUMPXML.replace(
        "<boot dev='hd'/>",
        "<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>"
        "<nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>/var/lib/x_VARS.fd</nvram>"
        "<boot dev='hd'/>",
    )
    assert domain_from_xml(text).boot.uefi


def with_(old: str, new: str) -> str:
    assert old in DUMPXML
    return DUMPXML.replace(old, new, 1)


def test_block_disk_round_trip() -> None:
    """libvirt's <disk type='block'><source dev=.../>: a host block device, kept as such."""
    from virtkit.model.domain import DiskType

    text = with_("<disk type='file' device='disk'>", "<disk type='block' device='disk'>")
    src = text[text.index("<disk type='block'") :]
    src = src[src.index("<source ") :]
    src = src[: src.index("/>") + 2]
    dom = domain_from_xml(text.replace(src, "<source dev='/dev/vdb'/>", 1))
    [disk] = [d for d in dom.disks if d.path == "/dev/vdb"]
    assert disk.type is DiskType.BLOCK
    out = domain_to_xml(dom)
    assert '<disk type="block" device="disk">' in out or "type='block'" in out
    assert 'dev="/dev/vdb"' in out or "dev='/dev/vdb'" in out
    again = domain_from_xml(out)
    assert [d.type for d in again.disks if d.path == "/dev/vdb"] == [DiskType.BLOCK]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            with_("<devices>", "<devices><hostdev mode='subsystem' type='usb'/>"),
            "unsupported value /domain/devices/hostdev/@type='usb'",
        ),
        (with_("<devices>", "<devices><sound model='ich9'/>"), "/domain/devices/sound"),
        (with_("<devices>", "<devices><filesystem type='mount'/>"), "/domain/devices/filesystem"),
        (with_("<devices>", "<devices><tpm model='tpm-crb'/>"), "/domain/devices/tpm"),
        (
            with_("discard='unmap'", "io='native'"),
            "unsupported attribute /domain/devices/disk/driver/@io='native'",
        ),
        (
            with_("</pm>", "</pm><numatune><memory mode='restrictive' nodeset='0'/></numatune>"),
            "/domain/numatune/memory/@mode='restrictive'",
        ),
        (
            with_(
                "<cpu mode='host-passthrough' check='none' migratable='on'/>",
                "<cpu mode='custom'><model>EPYC</model><feature policy='require' name='x'/></cpu>",
            ),
            "/domain/cpu/feature",
        ),
        (
            with_(
                "<cpu mode='host-passthrough' check='none' migratable='on'/>",
                "<cpu><numa><cell id='0' cpus='0-1' memory='1024' discard='yes'/></numa></cpu>",
            ),
            "/domain/cpu/numa/cell/@discard",
        ),
        (
            with_("graphics type='vnc'", "graphics type='spice'"),
            "/domain/devices/graphics/@type='spice'",
        ),
        (
            with_("<interface type='network'>", "<interface type='direct'>"),
            "/domain/devices/interface/@type='direct'",
        ),
        (with_("offset='utc'", "offset='localtime'"), "/domain/clock/@offset='localtime'"),
        (with_("type='vga'", "type='qxl'"), "/domain/devices/video/model/@type='qxl'"),
        (
            with_("type='none' model='none'", "type='dynamic' model='selinux'"),
            "/domain/seclabel/@type='dynamic'",
        ),
        (with_("<vmport state='off'/>", "<hyperv mode='custom'/>"), "/domain/features/hyperv"),
        (
            with_("<vmport state='off'/>", "<vmport state='on'/>"),
            "/domain/features/vmport/@state='on'",
        ),
        (with_("arch='x86_64'", "arch='aarch64'"), "/domain/os/type/@arch='aarch64'"),
        (with_("<domain type='kvm' id='3'>", "<domain type='xen'>"), "/domain/@type='xen'"),
        (
            with_("<domain type='kvm' id='3'>", "<domain type='kvm' foo='1'>"),
            "unsupported attribute /domain/@foo='1'",
        ),
        (
            with_("<on_crash>destroy", "<on_crash>coredump-destroy"),
            "/domain/on_crash='coredump-destroy'",
        ),
        (
            with_("<disk type='file' device='disk'>", "<disk type='network' device='disk'>"),
            "/domain/devices/disk/@type='network'",
        ),
        (with_("<memory unit='KiB'>", "<memory unit='parsecs'>"), "/domain/memory/@unit='parsecs'"),
        (
            with_(
                "<backingStore/>", "<backingStore type='file'><format type='raw'/></backingStore>"
            ),
            "/domain/devices/disk/backingStore (a backing chain)",
        ),
        (with_("<boot dev='hd'/>", "<boot dev='fd'/>"), "/domain/os/boot/@dev='fd'"),
        (with_("<features>", "<features>junk"), "/domain/features (text 'junk')"),
        (
            with_("<target type='serial' port='0'/>", "<target type='virtio' port='0'/>"),
            "/domain/devices/console/target/@type='virtio'",
        ),
        (
            with_(
                "<alias name='serial0'/>\n    </serial>", "<log file='/var/log/x.log'/></serial>"
            ),
            "/domain/devices/serial/log",
        ),
        (
            with_("<vcpu placement='static'>", "<vcpu placement='static' cpuset='0-1'>"),
            "/domain/vcpu/@cpuset='0-1'",
        ),
        (with_("<devices>", "<devices><watchdog model='i6300esb'/>"), "/domain/devices/watchdog"),
        (
            with_("model='qemu-xhci'", "model='qemu-xhci'").replace(
                "<controller type='sata'", "<controller type='fdc'"
            ),
            "/domain/devices/controller/@type='fdc'",
        ),
    ],
)
def test_unsupported_is_named(text: str, named: str) -> None:
    with pytest.raises(ConfigError) as exc:
        domain_from_xml(text)
    assert named in exc.value.message
    assert "remove it" in exc.value.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            with_("<memory unit='KiB'>2097152", "<memory unit='KiB'>2097153"),
            "not a whole number of MiB",
        ),
        (with_("<memory unit='KiB'>2097152", "<memory unit='KiB'>lots"), "must be a whole number"),
        (with_("<name>deb12</name>", "<name>bad name</name>"), "invalid domain name 'bad name'"),
        (with_("<name>deb12</name>", ""), "<name> is required"),
        (with_("52:54:00:6b:3c:58", "zz"), "nics.0.mac: invalid MAC address"),
        (
            with_("<vcpu placement='static'>2", "<vcpu placement='static' current='3'>2"),
            "max_vcpus (2) is below vcpus (3)",
        ),
        ("<network><name>x</name></network>", "expected a <domain> document, got <network>"),
        ("<domain><name>x</name>", "not well-formed"),
        ("", "not well-formed"),
        (
            with_("<libosinfo:os", "<libosinfo:os id='x'/><libosinfo:os"),
            "/domain/metadata/libosinfo/os appears",
        ),
    ],
)
def test_invalid_content(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        domain_from_xml(text)
    assert message in exc.value.message


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<domain type="kvm"><name>&lol4;</name></domain>"""

EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE domain [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<domain type="kvm"><name>x</name><description>&secret;</description></domain>"""

EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE domain SYSTEM "http://attacker.invalid/evil.dtd">
<domain type="kvm"><name>x</name></domain>"""


@pytest.mark.parametrize("text", [BILLION_LAUGHS, EXTERNAL, EXTERNAL_DTD])
def test_entities_and_dtds_are_refused(text: str) -> None:
    with pytest.raises(ConfigError) as exc:
        domain_from_xml(text)
    assert "DTDs and entities are not allowed" in exc.value.message
    assert "lollol" not in exc.value.message and "root:" not in exc.value.message


def test_large_xml_is_refused() -> None:
    big = DUMPXML.replace("<description>", "").replace(
        "</name>", "</name><description>" + "x" * (1 << 20) + "</description>", 1
    )
    with pytest.raises(ConfigError, match="larger than 1 MiB"):
        domain_from_xml(big)
