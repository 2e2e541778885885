"""Host features without a host: the model (NUMA cells, numatune, pinning, hostdevs),
libvirt XML and virt-install grammar for them, and the sysfs readers/writers (NUMA,
KSM, PCI/IOMMU/SR-IOV) against a fake tree with a fake kernel."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from tests.fakesysfs import FakeSysfs
from virtkit.errors import ConfigError, HostError, NotFoundError, StateError
from virtkit.formats.domfile import domain_from_mapping
from virtkit.formats.libvirt_host_xml import capabilities_xml, nodedev_xml
from virtkit.formats.libvirt_xml import domain_from_xml, domain_to_xml
from virtkit.formats.virtinstall import parse_install_args
from virtkit.host import ksm, numa, pci
from virtkit.model.hostfeat import format_cpuset, nodedev_name, normalize_pci, parse_cpuset

UUID = "00000000-0000-4000-8000-0000000000c1"


def dom(**kw: Any) -> Any:
    return domain_from_mapping({"name": "h", "uuid": UUID, "memory_mib": 256} | kw)


def bad(**kw: Any) -> str:
    with pytest.raises(ConfigError) as exc:
        dom(**kw)
    return exc.value.message


# -- model ------------------------------------------------------------------------------------


def test_cpuset_syntax() -> None:
    assert parse_cpuset("0-3,8") == [0, 1, 2, 3, 8]
    assert parse_cpuset("0-7,^2,^5-6") == [0, 1, 3, 4, 7]
    assert format_cpuset([5, 0, 1, 2]) == "0-2,5"
    for text, msg in (("3-1", "goes backwards"), ("a", "use numbers"), ("^1", "selects nothing"),
                      ("99999", "above the limit")):  # fmt: skip
        with pytest.raises(ValueError, match=msg):
            parse_cpuset(text)


def test_pci_spellings() -> None:
    for text in ("0000:03:00.0", "03:00.0", "pci_0000_03_00_0", " 0000:03:00.0 "):
        assert normalize_pci(text) == "0000:03:00.0"
    assert nodedev_name("0000:00:1f.2") == "pci_0000_00_1f_2"
    with pytest.raises(ValueError, match=r"DDDD:BB:SS\.F"):
        normalize_pci("3:0.0.0")


def test_numa_cells_must_cover_vcpus_and_memory() -> None:
    cells = [{"cpus": "0", "memory_mib": 128}, {"cpus": "1", "memory_mib": 128}]
    d = dom(vcpus=2, numa={"cells": cells})
    assert d.numa.cells[1].cpus == "1"
    assert "vCPU 0 is in NUMA cells 0 and 1" in bad(
        vcpus=2, numa={"cells": [cells[0], {"cpus": "0-1", "memory_mib": 128}]}
    )
    assert "vCPUs 1 are in no NUMA cell" in bad(
        vcpus=2, numa={"cells": [{"cpus": "0", "memory_mib": 256}]}
    )
    assert "has vCPU 2, but the domain has 2 vCPUs" in bad(
        vcpus=2, numa={"cells": [{"cpus": "0-2", "memory_mib": 256}]}
    )
    assert "128 MiB in all, but memory_mib is 256" in bad(
        vcpus=1, numa={"cells": [{"cpus": "0", "memory_mib": 128}]}
    )


def test_numatune_pins_hostdevs_validation() -> None:
    assert dom(numatune={"nodeset": "1,0"}).numatune.nodeset == "0-1"
    assert "preferred takes one host node" in bad(numatune={"nodeset": "0-1", "mode": "preferred"})
    assert "numatune.mode" in bad(numatune={"nodeset": "0", "mode": "bind"})
    assert "pins vCPU 3, but the domain has 2" in bad(
        vcpus=2, cputune={"vcpupin": [{"vcpu": 3, "cpuset": "0"}]}
    )
    assert "names a vCPU twice" in bad(
        cputune={"vcpupin": [{"vcpu": 0, "cpuset": "0"}, {"vcpu": 0, "cpuset": "1"}]}
    )
    assert "given once" in bad(hostdevs=[{"address": "03:00.0"}, {"address": "0000:03:00.0"}])
    assert dom(hostdevs=[{"address": "pci_0000_03_00_1"}]).hostdevs[0].address == "0000:03:00.1"


# -- libvirt XML and virt-install ---------------------------------------------------------------


FULL: dict[str, Any] = {
    "vcpus": 2,
    "max_vcpus": 4,
    "numa": {"cells": [{"cpus": "0,2", "memory_mib": 128}, {"cpus": "1,3", "memory_mib": 128}]},
    "numatune": {"nodeset": "0-1", "mode": "interleave"},
    "cputune": {"vcpupin": [{"vcpu": 0, "cpuset": "1"}], "emulatorpin": "0-1"},
    "mem_merge": False,
    "hostdevs": [{"address": "0000:03:00.0"}],
}


def test_libvirt_xml_round_trip() -> None:
    d = dom(**FULL)
    xml = domain_to_xml(d)
    needles = (
        '<cell id="1" cpus="1,3" memory="131072" unit="KiB" />',
        '<vcpupin vcpu="0" cpuset="1" />',
        '<emulatorpin cpuset="0-1" />',
        '<memory mode="interleave" nodeset="0-1" />',
        "<nosharepages />",
        '<address domain="0x0000" bus="0x03" slot="0x00" function="0x0" />',
    )
    for needle in needles:
        assert needle in xml
    assert domain_from_xml(xml) == d


def test_libvirt_xml_as_virsh_writes_it() -> None:
    xml = f"""<domain type='kvm'><name>h</name><uuid>{UUID}</uuid>
      <memory unit='MiB'>256</memory><vcpu placement='static'>2</vcpu>
      <cputune><vcpupin vcpu='1' cpuset='0-1,^0'/></cputune>
      <numatune><memory mode='strict' nodeset='0'/></numatune>
      <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
      <cpu mode='host-passthrough'><numa>
        <cell id='0' cpus='0' memory='128' unit='MiB' memAccess='private'/>
        <cell id='1' cpus='1' memory='131072'/></numa></cpu>
      <devices><hostdev mode='subsystem' type='pci' managed='yes'>
        <driver name='vfio'/><source><address domain='0x0000' bus='0x05' slot='0x00'
        function='0x1'/></source><alias name='hostdev0'/></hostdev></devices></domain>"""
    d = domain_from_xml(xml)
    assert [c.memory_mib for c in d.numa.cells] == [128, 128]
    assert d.cputune.vcpupin[0].cpuset == "1"
    assert d.numatune.mode == "strict"
    assert d.hostdevs[0].address == "0000:05:00.1" and d.hostdevs[0].managed
    assert 'managed="yes"' in domain_to_xml(d)
    with pytest.raises(ConfigError, match="discard"):
        domain_from_xml(xml.replace("memAccess='private'", "discard='yes'"))
    with pytest.raises(ConfigError, match="placement='auto'"):
        domain_from_xml(xml.replace("mode='strict'", "mode='strict' placement='auto'"))


BASE = "--name t --memory 256 --vcpus 2 --os-variant debian12 --import --disk /img/t.qcow2 "


def vi(extra: str) -> Any:
    return parse_install_args(shlex.split(BASE + extra)).spec.domain


def test_virt_install_numa_cells_in_kib() -> None:
    d = vi("--cpu host-passthrough,cell0.memory=131072,cell0.cpus=0,"
           "numa.cell1.memory=131072,numa.cell1.cpus=1")  # fmt: skip
    assert d.cpu_model == "host-passthrough"
    assert [(c.cpus, c.memory_mib) for c in d.numa.cells] == [("0", 128), ("1", 128)]
    assert vi("--cpu cell0.memory=262144,cell0.cpus=0-1").cpu_model == "auto"
    for cpu, msg in (("cell1.memory=262144,cell1.cpus=0-1", "numbered 0, 1, 2"),
                     ("cell0.memory=1000000,cell0.cpus=0-1", "not a whole number of MiB"),
                     ("cell0.memory=131072,cell0.cpus=0-1", "add up to memory_mib")):  # fmt: skip
        with pytest.raises(ConfigError, match=msg):
            vi(f"--cpu {cpu}")


def test_virt_install_hostdev() -> None:
    d = vi("--hostdev 0000:03:00.0 --host-device pci_0000_04_00_1 "
           "--hostdev address.bus=0x05,address.slot=0x02")  # fmt: skip
    assert [h.address for h in d.hostdevs] == ["0000:03:00.0", "0000:04:00.1", "0000:05:02.0"]
    assert all(h.managed for h in d.hostdevs)  # virt-install's default, as with libvirt
    for text in ("001.003", "usb_1_2"):
        with pytest.raises(ConfigError, match="only PCI devices"):
            vi(f"--hostdev {text}")


def test_virt_install_numatune_cputune_memorybacking() -> None:
    d = vi("--numatune 0,2-3,mode=interleave --memorybacking nosharepages=on "
           "--cputune vcpupin0.vcpu=1,vcpupin0.cpuset=0-1,emulatorpin.cpuset=1")  # fmt: skip
    assert (d.numatune.nodeset, str(d.numatune.mode)) == ("0,2-3", "interleave")
    assert d.cputune.pin_of(1) == "0-1" and d.cputune.emulatorpin == "1"
    assert not d.mem_merge
    assert vi("--numatune memory.nodeset=1").numatune.mode == "strict"
    for opt, msg in (("--numatune mode=strict", "give the host NUMA nodes"),
                     ("--cputune vcpupin0.vcpu=0", "needs vcpupin0.vcpu= and .cpuset="),
                     ("--memorybacking hugepages=on", "unknown sub-option 'hugepages=on'"),
                     ("--numatune 0-1,mode=bind", "numatune.mode")):  # fmt: skip
        with pytest.raises(ConfigError, match=msg):
            vi(opt)


# -- host: NUMA, KSM ----------------------------------------------------------------------------


@pytest.fixture
def fs(tmp_path: Path) -> FakeSysfs:
    return FakeSysfs(tmp_path)


def test_numa_topology_from_sysfs(fs: FakeSysfs) -> None:
    fs.numa([("0-3", 4096), ("4-7", 2048)], threads=2)
    t = numa.topology(fs.root)
    assert t.node_ids == [0, 1]
    assert [len(c.cpus) for c in t.cells] == [4, 4]
    assert t.cells[1].memory_kib == 2048 * 1024
    assert t.cells[0].distances == {0: 10, 1: 20}
    assert t.cells[0].cpus[1].siblings == "0,1"
    assert (t.sockets, t.cores_per_socket, t.threads_per_core) == (2, 2, 2)
    assert t.cpu_mhz == 2400 and t.memory_kib == 6144 * 1024
    caps = capabilities_xml(
        {"arch": "x86_64", "vendor": "GenuineIntel", "sockets": 2, "cores_per_socket": 2,
         "threads_per_core": 2, "iommu": False,
         "cells": [{"id": c.id, "memory_kib": c.memory_kib, "hugepages": [],
                    "distances": [{"id": k, "value": v} for k, v in c.distances.items()],
                    "cpus": [vars(p) for p in c.cpus]} for c in t.cells]}
    )  # fmt: skip
    assert '<cells num="2">' in caps and '<sibling id="1" value="20" />' in caps
    assert '<cpu id="5" socket_id="1" die_id="0" core_id="2" siblings="4,5" />' in caps


def test_numa_without_sysfs_is_one_cell(fs: FakeSysfs) -> None:
    fs.put("/proc/meminfo", "MemTotal:  1048576 kB\n")
    fs.put("/sys/devices/system/cpu/online", "0-1\n")
    cells = numa.cells(fs.root)
    assert len(cells) == 1 and len(cells[0].cpus) == 2 and cells[0].memory_kib == 1048576


def test_ksm_read_and_write(fs: FakeSysfs) -> None:
    assert not ksm.read(fs.root).available
    with pytest.raises(HostError, match="CONFIG_KSM"):
        ksm.write(fs.root, {"run": 1})
    fs.ksm(pages_shared=12, pages_sharing=40)
    st = ksm.read(fs.root)
    assert st.values["pages_to_scan"] == 100 and st.values["pages_sharing"] == 40
    st = ksm.write(fs.root, {"pages_to_scan": 500, "sleep_millisecs": 10})
    assert st.values["pages_to_scan"] == 500 and st.values["sleep_millisecs"] == 10
    with pytest.raises(ConfigError, match="between 0 and 1"):
        ksm.write(fs.root, {"merge_across_nodes": 2})
    with pytest.raises(ConfigError, match="unknown KSM parameter"):
        ksm.write(fs.root, {"pages_shared": 0})


# -- host: PCI --------------------------------------------------------------------------------


def pci_host(fs: FakeSysfs) -> None:
    fs.driver("vfio-pci")
    fs.pci("0000:00:00.0", driver=None, group=0, cls=0x060000)  # host bridge
    fs.pci("0000:00:1c.0", driver="pcieport", group=3, cls=0x060400)  # root port
    fs.pci("0000:03:00.0", driver="igb", group=3, totalvfs=4)  # NIC (PF) behind the port
    fs.pci("0000:03:00.1", driver="igb", group=3)  # its second function
    fs.pci("0000:00:1f.2", driver="ahci", group=9, cls=0x010601)


def test_pci_listing_and_nodedev_xml(fs: FakeSysfs) -> None:
    pci_host(fs)
    devs = {d.name: d for d in pci.list_devices(fs.root)}
    assert sorted(devs) == ["pci_0000_00_00_0", "pci_0000_00_1c_0", "pci_0000_00_1f_2",
                            "pci_0000_03_00_0", "pci_0000_03_00_1"]  # fmt: skip
    nic = devs["pci_0000_03_00_0"]
    assert (nic.vendor, nic.device, nic.class_code, nic.driver) == (0x8086, 0x10C9, 0x20000, "igb")
    assert nic.iommu_group == 3 and nic.sriov_totalvfs == 4 and nic.sriov_numvfs == 0
    assert devs["pci_0000_00_1c_0"].is_bridge and not nic.is_bridge
    assert nic.path == "/sys/devices/pci0000:00/0000:03:00.0"
    d = dict(vars(nic), name=nic.name, parent="computer",
             iommu_group_devices=pci.group_members(fs.root, 3))  # fmt: skip
    xml = nodedev_xml(d)
    assert "<name>pci_0000_03_00_0</name>" in xml and "<class>0x020000</class>" in xml
    assert '<capability type="virt_functions" maxCount="4" />' in xml
    assert '<iommuGroup number="3">' in xml and 'slot="0x1c"' in xml
    with pytest.raises(NotFoundError, match="nodedev-list"):
        pci.read_device(fs.root, "0000:09:00.0")


def test_detach_group_check_and_reattach(fs: FakeSysfs) -> None:
    pci_host(fs)
    nic = "0000:03:00.0"
    assert "pci_0000_03_00_0 (0000:03:00.0, driver igb)" in pci.vfio_unready(fs.root, nic)[0]
    d = pci.detach(fs.root, nic, fs.write)
    assert d.driver == "vfio-pci" and d.driver_override == "vfio-pci"
    assert ("/sys/bus/pci/drivers/igb/unbind", nic) in fs.writes
    # the other function is in the same group and still on igb; the root port is exempt
    assert pci.vfio_unready(fs.root, nic) == ["pci_0000_03_00_1 (0000:03:00.1, driver igb)"]
    pci.detach(fs.root, "0000:03:00.1", fs.write)
    assert pci.vfio_unready(fs.root, nic) == []
    assert pci.detach(fs.root, nic, fs.write).driver == "vfio-pci"  # idempotent
    with pytest.raises(ConfigError, match="PCI bridge"):
        pci.detach(fs.root, "0000:00:1c.0", fs.write)
    back = pci.reattach(fs.root, nic, fs.write)
    assert back.driver == "igb" and back.driver_override is None


def test_detach_needs_vfio_and_iommu(fs: FakeSysfs) -> None:
    fs.pci("0000:03:00.0", driver="igb", group=3)
    fs.pci("0000:04:00.0", driver="igb")
    with pytest.raises(HostError, match="modprobe vfio-pci"):
        pci.detach(fs.root, "0000:03:00.0", fs.write)
    with pytest.raises(HostError, match="intel_iommu=on"):
        pci.detach(fs.root, "0000:04:00.0", fs.write)


def test_sriov_numvfs(fs: FakeSysfs) -> None:
    pci_host(fs)
    pf = pci.set_numvfs(fs.root, "0000:03:00.0", 2, fs.write)
    assert pf.sriov_numvfs == 2 and pf.virtfns == ["0000:03:10.0", "0000:03:10.1"]
    vf = pci.read_device(fs.root, "0000:03:10.1")
    assert vf.physfn == "0000:03:00.0" and vf.driver == "igbvf" and vf.iommu_group is not None
    # changing a non-zero count goes through 0 first, as the kernel requires
    pf = pci.set_numvfs(fs.root, "0000:03:00.0", 3, fs.write)
    assert len(pf.virtfns) == 3
    numvfs = [t for p, t in fs.writes if p.endswith("sriov_numvfs")]
    assert numvfs == ["2", "0", "3"]
    with pytest.raises(ConfigError, match="0 to 4 virtual functions"):
        pci.set_numvfs(fs.root, "0000:03:00.0", 5, fs.write)
    with pytest.raises(ConfigError, match="does not support SR-IOV"):
        pci.set_numvfs(fs.root, "0000:00:1f.2", 1, fs.write)
    pci.detach(fs.root, "0000:03:00.0", fs.write)
    pci.reattach(fs.root, "0000:03:00.0", fs.write)
    fs._unbind("0000:03:00.0")
    with pytest.raises(StateError, match="physical function's driver"):
        pci.set_numvfs(fs.root, "0000:03:00.0", 1, fs.write)


def test_sysfs_permission_errors_say_root(fs: FakeSysfs) -> None:
    pci_host(fs)

    def denied(path: Path, text: str) -> None:
        raise PermissionError(13, "Permission denied")

    with pytest.raises(HostError, match="needs the system daemon"):
        pci.detach(fs.root, "0000:03:00.0", denied)


def test_allocation_ratios_from_the_environment() -> None:
    from virtkit.daemon.settings import Settings

    s = Settings.from_env(
        {"VIRTKIT_CPU_ALLOCATION_RATIO": "4", "VIRTKIT_MEMORY_ALLOCATION_RATIO": "1"}
    )
    assert (s.cpu_allocation_ratio, s.memory_allocation_ratio) == (4.0, 1.0)
    assert (Settings().cpu_allocation_ratio, Settings().memory_allocation_ratio) == (16.0, 1.5)
    with pytest.raises(ConfigError, match="not a number"):
        Settings.from_env({"VIRTKIT_CPU_ALLOCATION_RATIO": "lots"})
    with pytest.raises(ConfigError, match=r"between 0 and 3600$"):
        Settings.from_env({"VIRTKIT_MEMORY_ALLOCATION_RATIO": "0"})


def test_memlock_for_vfio_is_raised_on_the_qemu_process() -> None:
    import resource
    import subprocess
    import sys

    from virtkit.daemon.domains.hoststart import allow_memlock, memlock_bytes

    assert memlock_bytes(dom(max_memory_mib=1024)) == 2048 << 20
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    lim = resource.RLIMIT_MEMLOCK
    try:
        _, hard = resource.prlimit(child.pid, lim)
        within = 64 << 20 if hard == resource.RLIM_INFINITY else hard
        resource.prlimit(child.pid, lim, (1 << 20, hard))
        allow_memlock(within, child.pid)  # within the hard limit: no privilege needed
        assert resource.prlimit(child.pid, lim) == (within, hard)
        allow_memlock(1 << 20, child.pid)  # already enough: nothing to do
        assert resource.prlimit(child.pid, lim) == (within, hard)
        if hard != resource.RLIM_INFINITY:
            try:  # beyond the hard limit: CAP_SYS_RESOURCE, or a message saying what to do
                allow_memlock(hard * 2, child.pid)
                assert resource.prlimit(child.pid, lim) == (hard * 2, hard * 2)
            except HostError as exc:
                assert "LimitMEMLOCK=infinity" in exc.message
    finally:
        child.kill()
        child.wait()
