"""Hot plug on real tiny guests under TCG: a disk attached and detached, a vCPU plugged
(the guest onlines it), the balloon shrinking guest-visible memory, a DIMM plugged."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Daemon, tiny_yaml
from tests.integration import test_bridge
from tests.integration.test_survival import console_roundtrip

pytestmark = pytest.mark.qemu

hp_bridge = test_bridge.bridge  # the fixture: a bridge with a veth peer in a namespace


def boot(daemon: Daemon, tiny: object, tmp_path: Path, name: str, extra: str = "") -> None:
    f = tmp_path / f"{name}.yaml"
    # the default q35 machine: devices go into the empty pcie-root-ports virtkit adds
    f.write_text(tiny_yaml(tiny, name, extra=f"accel: tcg\n{extra}"))
    daemon.cli("define", str(f))
    daemon.cli("start", name)
    daemon.wait_console(name, "tiny# ")


def qcow2(tmp_path: Path, name: str) -> Path:
    img = tmp_path / f"{name}.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "32M"], check=True)
    return img


def assert_vdisks(daemon: Daemon, name: str, want: int) -> None:
    """The guest sees ``want`` virtio disks in /sys/block (it names them vda, vdb... in
    probe order, not by our target), waiting up to 20 s."""
    cmd = (
        f"for i in $(seq 20); do [ $(ls /sys/block | grep -c ^vd) = {want} ] && break; "
        "sleep 1; done; echo VD-COUNT-$(ls /sys/block | grep -c ^vd)"
    )
    console_roundtrip(daemon, name, cmd, f"VD-COUNT-{want}")


def test_attach_detach_disk_live(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    boot(daemon, tiny, tmp_path, "hpd")
    img = qcow2(tmp_path, "extra")
    r = daemon.cli("attach-disk", "hpd", str(img), "vdb", "--subdriver", "qcow2", "--live")
    assert "Disk attached successfully" in r.stdout
    assert_vdisks(daemon, "hpd", 1)
    # live only: the definition did not change, the runtime record did
    assert str(img) not in daemon.cli("dumpconfig", "hpd").stdout
    assert "vdb" in daemon.cli("domblklist", "hpd").stdout
    # one writer: the same image cannot go to the same target or to another running guest
    r = daemon.cli("attach-disk", "hpd", str(img), "vdb", "--live", check=False)
    assert r.returncode != 0 and "already used" in r.stderr
    boot(daemon, tiny, tmp_path, "hpd2")
    r = daemon.cli("attach-disk", "hpd2", str(img), "vdc", "--live", check=False)
    assert r.returncode != 0 and "in use (writable) by running domain 'hpd'" in r.stderr
    daemon.cli("destroy", "hpd2")
    # the runtime record knows the hot-plugged disk: a restarted daemon still does
    daemon.stop()
    daemon.start()
    assert "vdb" in daemon.cli("domblklist", "hpd").stdout
    r = daemon.cli("detach-disk", "hpd", "vdb", "--live")
    assert "Disk detached successfully" in r.stdout
    assert_vdisks(daemon, "hpd", 0)
    r = daemon.cli("detach-disk", "hpd", "vdb", "--live", check=False)
    assert r.returncode != 0 and "no disk with target vdb" in r.stderr
    daemon.cli("destroy", "hpd")


def test_attach_disk_refusals_and_config(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    f = tmp_path / "cfg.yaml"
    f.write_text(tiny_yaml(tiny, "cfg", extra="accel: tcg\n"))
    daemon.cli("define", str(f))
    img = qcow2(tmp_path, "cfg")
    r = daemon.cli("attach-disk", "cfg", str(img), "vdb", "--live", check=False)
    assert r.returncode != 0 and "not running" in r.stderr and "--config" in r.stderr
    r = daemon.cli("attach-disk", "cfg", str(tmp_path / "nope.qcow2"), "vdb", check=False)
    assert r.returncode != 0 and "does not exist" in r.stderr
    daemon.cli("attach-disk", "cfg", str(img), "vdb")  # shut off: --config by default
    assert str(img) in daemon.cli("dumpconfig", "cfg").stdout
    r = daemon.cli("attach-disk", "cfg", str(img), "vdb", "--config", check=False)
    assert r.returncode != 0 and "already used" in r.stderr
    daemon.cli("detach-disk", "cfg", "vdb", "--config")
    assert str(img) not in daemon.cli("dumpconfig", "cfg").stdout


def test_vcpu_hotplug(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    boot(daemon, tiny, tmp_path, "hpc", "vcpus: 1\nmax_vcpus: 2\n")
    start = daemon.console_size("hpc")
    daemon.cli("setvcpus", "hpc", "2", "--live")
    daemon.wait_console("hpc", "VIRTKIT-CPU-ONLINE cpu1", timeout=60, start=start)
    console_roundtrip(daemon, "hpc", "echo NPROC-$(nproc)-END", "NPROC-2-END")
    count = daemon.cli("vcpucount", "hpc").stdout.splitlines()
    assert count == [
        "maximum      config         2",
        "maximum      live           2",
        "current      config         1",
        "current      live           2",
    ]
    info = daemon.cli("vcpuinfo", "hpc").stdout
    assert info.count("VCPU:") == 2 and "State:          running" in info
    r = daemon.cli("setvcpus", "hpc", "3", "--live", check=False)
    assert r.returncode != 0 and "at most 2 vCPUs" in r.stderr
    daemon.cli("setvcpus", "hpc", "1", "--live")  # the hot-plugged one goes away again
    console_roundtrip(daemon, "hpc", "echo NPROC-$(nproc)-END", "NPROC-1-END")
    daemon.cli("destroy", "hpc")


def mem_total_kib(daemon: Daemon, name: str, below_kib: int | None = None) -> int:
    """The guest's MemTotal; with ``below_kib``, wait up to 30 s for it to drop below."""
    wait = ""
    if below_kib is not None:
        wait = (
            "for i in $(seq 30); do set -- $(grep MemTotal /proc/meminfo); "
            f"[ $2 -lt {below_kib} ] && break; sleep 1; done; "
        )
    cmd = wait + "set -- $(grep MemTotal /proc/meminfo); echo MT-$2-$((7*6))"
    out = console_roundtrip(daemon, name, cmd, "-42")
    return int(re.findall(r"MT-(\d+)-42", out)[-1])


def test_balloon_setmem(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    boot(daemon, tiny, tmp_path, "hpm")
    before = mem_total_kib(daemon, "hpm")
    daemon.cli("setmem", "hpm", "160M", "--live")
    after = mem_total_kib(daemon, "hpm", below_kib=before - 80 * 1024)
    assert 88 * 1024 <= before - after <= 100 * 1024, (before, after)
    stats = dict(line.split() for line in daemon.cli("dommemstat", "hpm").stdout.splitlines())
    assert stats["actual"] == str(160 * 1024) and int(stats["rss"]) > 0
    r = daemon.cli("setmem", "hpm", "300M", "--live", check=False)
    assert r.returncode != 0 and "cannot give it more" in r.stderr
    assert "current_memory_mib" not in daemon.cli("dumpconfig", "hpm").stdout
    daemon.cli("setmem", "hpm", "163840", "--config")  # bare number: KiB, like virsh
    assert "current_memory_mib: 160" in daemon.cli("dumpconfig", "hpm").stdout
    r = daemon.cli("setmaxmem", "hpm", "512M", check=False)
    assert r.returncode != 0 and "--config" in r.stderr
    daemon.cli("setmaxmem", "hpm", "128M", "--config")
    cfg = daemon.cli("dumpconfig", "hpm").stdout
    assert "memory_mib: 128" in cfg and "current_memory_mib" not in cfg
    daemon.cli("destroy", "hpm")


def test_dimm_hotplug(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    boot(daemon, tiny, tmp_path, "hpx", "max_memory_mib: 1024\nmemory_slots: 4\n")
    before = mem_total_kib(daemon, "hpx")
    dev = tmp_path / "dimm.yaml"
    dev.write_text("memory:\n  size_mib: 256\n")
    start = daemon.console_size("hpx")
    r = daemon.cli("attach-device", "hpx", str(dev))
    assert "Device attached successfully" in r.stdout
    daemon.wait_console("hpx", "VIRTKIT-MEM-ONLINE memory", timeout=60, start=start)
    after = mem_total_kib(daemon, "hpx", below_kib=None)
    assert after - before >= 200 * 1024, (before, after)
    xml = tmp_path / "dimm.xml"
    xml.write_text("<memory model='dimm'><target><size unit='MiB'>1024</size></target></memory>")
    r = daemon.cli("attach-device", "hpx", str(xml), check=False)
    assert r.returncode != 0 and "exceeds its maximum of 1024 MiB" in r.stderr
    # the tiny guest onlines DIMMs into ZONE_NORMAL, so it cannot give one back: say why
    r = daemon.cli("detach-device", "hpx", str(dev), check=False)
    assert r.returncode != 0 and "did not release device 'dimm0'" in r.stderr
    assert "online_movable" in r.stderr
    daemon.cli("destroy", "hpx")


def test_dimm_needs_slots(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    boot(daemon, tiny, tmp_path, "hpy")
    xml = tmp_path / "dimm.xml"
    xml.write_text("<memory model='dimm'><target><size unit='MiB'>128</size></target></memory>")
    r = daemon.cli("attach-device", "hpy", str(xml), check=False)
    assert r.returncode != 0 and "max_memory_mib" in r.stderr
    daemon.cli("destroy", "hpy")


def count_eth(daemon: Daemon, name: str, want: int) -> None:
    cmd = (
        f"for i in $(seq 20); do [ $(ls /sys/class/net | grep -c ^eth) = {want} ] && break; "
        "sleep 1; done; echo ETH-COUNT-$(ls /sys/class/net | grep -c ^eth)"
    )
    console_roundtrip(daemon, name, cmd, f"ETH-COUNT-{want}")


def test_interface_user_live(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    boot(daemon, tiny, tmp_path, "hpn")
    count_eth(daemon, "hpn", 0)
    mac = "52:54:00:aa:bb:01"
    r = daemon.cli("attach-interface", "hpn", "user", "--model", "e1000", "--mac", mac, "--live")
    assert "Interface attached successfully" in r.stdout
    count_eth(daemon, "hpn", 1)
    r = daemon.cli("attach-interface", "hpn", "user", "--mac", mac, "--live", check=False)
    assert r.returncode != 0 and "already used" in r.stderr
    daemon.cli("attach-interface", "hpn", "user", "--live")
    count_eth(daemon, "hpn", 2)
    r = daemon.cli("detach-interface", "hpn", "user", "--live", check=False)
    assert r.returncode != 0 and "--mac" in r.stderr
    daemon.cli("detach-interface", "hpn", "user", "--mac", mac, "--live")
    count_eth(daemon, "hpn", 1)
    assert "nics" not in daemon.cli("dumpconfig", "hpn").stdout
    daemon.cli("destroy", "hpn")


def test_interface_bridge_live(
    daemon: Daemon, tiny: object, tmp_path: Path, hp_bridge: tuple[str, str]
) -> None:
    br, _ns = hp_bridge
    boot(daemon, tiny, tmp_path, "hpb")
    ports = set(os.listdir(f"/sys/class/net/{br}/brif"))  # the fixture's veth
    daemon.cli("attach-interface", "hpb", "bridge", br, "--persistent")
    assert br in daemon.cli("dumpconfig", "hpb").stdout
    taps = set(os.listdir(f"/sys/class/net/{br}/brif")) - ports
    assert len(taps) == 1 and taps.pop().endswith("n0"), taps
    count_eth(daemon, "hpb", 1)
    daemon.cli("detach-interface", "hpb", "bridge", "--persistent")
    count_eth(daemon, "hpb", 0)
    assert set(os.listdir(f"/sys/class/net/{br}/brif")) == ports
    assert br not in daemon.cli("dumpconfig", "hpb").stdout
    r = daemon.cli("attach-interface", "hpb", "bridge", "nosuchbr0", "--live", check=False)
    assert r.returncode != 0 and "does not exist" in r.stderr
    daemon.cli("destroy", "hpb")


def test_q35_plugs_into_free_root_ports(tmp_path: Path) -> None:
    """q35's pcie.0 takes no hot plug: devices go into empty pcie-root-ports, then a clear
    error when none is left."""
    import asyncio

    from virtkit.daemon.hotplug.disks import device_add_pci
    from virtkit.errors import ConfigError
    from virtkit.model.domain import Domain
    from virtkit.qemu.qmp import Monitor

    sock = tmp_path / "qmp.sock"
    qemu = subprocess.Popen(
        ["qemu-system-x86_64", "-M", "q35,accel=tcg", "-nodefaults", "-display", "none",
         "-S", "-device", "pcie-root-port,id=rp1,chassis=1",
         "-device", "pcie-root-port,id=rp2,chassis=2",
         "-qmp", f"unix:{sock},server=on,wait=off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    async def run() -> list[str]:
        for _ in range(100):
            if sock.exists():
                break
            await asyncio.sleep(0.05)
        mon = Monitor("q35", str(sock))
        await mon.connect()
        dom = Domain(name="q35")
        buses = []
        try:
            for i in (1, 2):
                await device_add_pci(mon, dom, {"driver": "virtio-net-pci", "id": f"n{i}"})
                path = f"/machine/peripheral/n{i}"
                bus = await mon.execute("qom-get", {"path": path, "property": "parent_bus"})
                buses.append(str(bus).rsplit("/", 1)[-1])
            with pytest.raises(ConfigError, match="pcie-root-port"):
                await device_add_pci(mon, dom, {"driver": "virtio-net-pci", "id": "n3"})
        finally:
            await mon.close()
        return buses

    try:
        assert asyncio.run(run()) == ["rp1", "rp2"]
    finally:
        qemu.kill()
        qemu.wait()
