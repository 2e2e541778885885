"""A fake /sys (and /proc, /dev/vfio) tree for host-feature tests, and a fake kernel that
reacts to the sysfs writes virtkit makes (bind, unbind, drivers_probe, sriov_numvfs).

    fs = FakeSysfs(tmp_path)
    fs.numa([("0-1", 4096), ("2-3", 4096)])
    fs.pci("0000:03:00.0", driver="igb", group=7, cls=0x020000, totalvfs=4)
    root = fs.root                     # a HostRoot for virtkit.host.*
    pci.detach(root, "0000:03:00.0", write=fs.write)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from virtkit.host.facts import HostRoot


class FakeSysfs:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = HostRoot(base)
        self.orig_driver: dict[str, str | None] = {}
        self.writes: list[tuple[str, str]] = []
        self.busy: set[str] = set()  # sysfs files whose write fails with EBUSY
        for d in ("sys/bus/pci/devices", "sys/bus/pci/drivers", "sys/kernel/iommu_groups",
                  "sys/devices/pci0000:00", "dev/vfio", "proc"):  # fmt: skip
            (base / d).mkdir(parents=True, exist_ok=True)
        (base / "sys/bus/pci/drivers_probe").write_text("")

    def p(self, absolute: str) -> Path:
        return self.base / absolute.lstrip("/")

    def put(self, absolute: str, text: str) -> None:
        path = self.p(absolute)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    # -- CPUs, NUMA, memory, KSM --------------------------------------------------------------

    def numa(self, cells: list[tuple[str, int]], threads: int = 1) -> None:
        """Cells as (cpulist, MiB); CPUs are given cores (``threads`` per core), one socket
        per cell; distance 10 to itself, 20 to others; /proc/meminfo holds the sum."""
        from virtkit.host.facts import parse_cpu_list

        allcpus: list[int] = []
        for nid, (cpulist, mib) in enumerate(cells):
            base = f"/sys/devices/system/node/node{nid}"
            self.put(f"{base}/cpulist", cpulist + "\n")
            self.put(
                f"{base}/meminfo",
                f"Node {nid} MemTotal:       {mib * 1024} kB\n"
                f"Node {nid} MemFree:        {mib * 512} kB\n",
            )
            dist = " ".join("10" if j == nid else "20" for j in range(len(cells)))
            self.put(f"{base}/distance", dist + "\n")
            self.put(f"{base}/hugepages/hugepages-2048kB/nr_hugepages", "0\n")
            for cpu in parse_cpu_list(cpulist):
                allcpus.append(cpu)
                topo = f"/sys/devices/system/cpu/cpu{cpu}/topology"
                core = cpu // threads
                sib = ",".join(str(core * threads + t) for t in range(threads))
                self.put(f"{topo}/physical_package_id", f"{nid}\n")
                self.put(f"{topo}/die_id", "0\n")
                self.put(f"{topo}/core_id", f"{core}\n")
                self.put(f"{topo}/thread_siblings_list", sib + "\n")
        last = max(allcpus)
        self.put("/sys/devices/system/cpu/online", f"0-{last}\n")
        total = sum(m for _, m in cells) * 1024
        self.put("/proc/meminfo", f"MemTotal:       {total} kB\nMemFree:        {total // 2} kB\n")
        self.put(
            "/proc/cpuinfo",
            "".join(
                f"processor\t: {c}\nvendor_id\t: GenuineIntel\nmodel name\t: Fake CPU\n"
                f"cpu MHz\t\t: 2400.000\nflags\t\t: fpu vmx\n\n"
                for c in sorted(allcpus)
            ),
        )

    def ksm(self, **values: int) -> None:
        defaults = {"pages_to_scan": 100, "sleep_millisecs": 20, "merge_across_nodes": 1,
                    "run": 0, "pages_shared": 0, "pages_sharing": 0, "pages_unshared": 0,
                    "pages_volatile": 0, "full_scans": 0}  # fmt: skip
        for k, v in (defaults | values).items():
            self.put(f"/sys/kernel/mm/ksm/{k}", f"{v}\n")

    # -- PCI ----------------------------------------------------------------------------------

    def driver(self, name: str) -> Path:
        d = self.p(f"/sys/bus/pci/drivers/{name}")
        d.mkdir(parents=True, exist_ok=True)
        for f in ("bind", "unbind", "new_id"):
            (d / f).touch()
        return d

    def pci(
        self,
        address: str,
        *,
        driver: str | None = None,
        group: int | None = None,
        cls: int = 0x020000,
        vendor: int = 0x8086,
        device: int = 0x10C9,
        totalvfs: int | None = None,
        physfn: str | None = None,
        vfio_dev: bool = False,
    ) -> Path:
        dev = self.p(f"/sys/devices/pci0000:00/{address}")
        dev.mkdir(parents=True, exist_ok=True)
        for name, value in (("vendor", vendor), ("device", device), ("subsystem_vendor", vendor),
                            ("subsystem_device", 0)):  # fmt: skip
            (dev / name).write_text(f"0x{value:04x}\n")
        (dev / "class").write_text(f"0x{cls:06x}\n")
        (dev / "numa_node").write_text("0\n")
        (dev / "driver_override").write_text("(null)\n")
        link = self.p(f"/sys/bus/pci/devices/{address}")
        if not link.is_symlink():
            link.symlink_to(dev)
        if group is not None:
            g = self.p(f"/sys/kernel/iommu_groups/{group}/devices")
            g.mkdir(parents=True, exist_ok=True)
            if not (g / address).is_symlink():
                (g / address).symlink_to(dev)
            if not (dev / "iommu_group").is_symlink():
                (dev / "iommu_group").symlink_to(g.parent)
            if vfio_dev:
                self.put(f"/dev/vfio/{group}", "")
        if totalvfs is not None:
            (dev / "sriov_totalvfs").write_text(f"{totalvfs}\n")
            (dev / "sriov_numvfs").write_text("0\n")
        if physfn is not None and not (dev / "physfn").is_symlink():
            (dev / "physfn").symlink_to(self.p(f"/sys/devices/pci0000:00/{physfn}"))
        self.orig_driver[address] = driver
        if driver is not None:
            self._bind(address, driver)
        return dev

    def _dev(self, address: str) -> Path:
        return self.p(f"/sys/devices/pci0000:00/{address}")

    def _bind(self, address: str, driver: str) -> None:
        d = self.driver(driver)
        (self._dev(address) / "driver").unlink(missing_ok=True)
        (self._dev(address) / "driver").symlink_to(d)
        if not (d / address).is_symlink():
            (d / address).symlink_to(self._dev(address))

    def _unbind(self, address: str) -> None:
        link = self._dev(address) / "driver"
        if link.is_symlink():
            (Path(os.readlink(link)) / address).unlink(missing_ok=True)
            link.unlink()

    def current_driver(self, address: str) -> str | None:
        link = self._dev(address) / "driver"
        return os.path.basename(os.readlink(link)) if link.is_symlink() else None

    # -- the kernel's side of sysfs writes ----------------------------------------------------

    def write(self, path: Path, text: str) -> None:
        rel = "/" + str(path.relative_to(self.base))
        self.writes.append((rel, text))
        if rel in self.busy:
            raise OSError(16, "Device or resource busy")
        value = text.strip()
        if m := re.fullmatch(r"/sys/bus/pci/drivers/([^/]+)/(bind|unbind)", rel):
            drv, op = m.groups()
            if op == "unbind":
                if self.current_driver(value) != drv:
                    raise OSError(19, "No such device")
                self._unbind(value)
            else:
                override = (self._dev(value) / "driver_override").read_text().strip()
                if override not in ("(null)", "", drv):
                    raise OSError(19, "No such device")
                self._bind(value, drv)
        elif rel == "/sys/bus/pci/drivers_probe":
            override = (self._dev(value) / "driver_override").read_text().strip()
            drv = override if override not in ("(null)", "") else self.orig_driver.get(value)
            if drv is not None and self.current_driver(value) is None:
                self._bind(value, drv)
        elif rel.endswith("/driver_override"):
            path.write_text((value or "(null)") + "\n")
        elif rel.endswith("/sriov_numvfs"):
            self._numvfs(rel.split("/")[-2], int(value))
        else:
            path.write_text(text)

    def _numvfs(self, pf: str, count: int) -> None:
        dev = self._dev(pf)
        have = int((dev / "sriov_numvfs").read_text())
        if have and count:
            raise OSError(16, "Device or resource busy")
        for link in list(dev.glob("virtfn*")):
            vf = os.path.basename(os.readlink(link))
            link.unlink()
            self.p(f"/sys/bus/pci/devices/{vf}").unlink(missing_ok=True)
        dom, bus, _ = pf.split(":")
        group = int(os.path.basename(os.readlink(dev / "iommu_group")))
        for i in range(count):
            vf = f"{dom}:{bus}:{0x10 + i // 8:02x}.{i % 8}"
            self.pci(vf, driver="igbvf", group=100 + group * 16 + i, cls=0x020000,
                     device=0x10CA, physfn=pf)  # fmt: skip
            (dev / f"virtfn{i}").symlink_to(self._dev(vf))
        (dev / "sriov_numvfs").write_text(f"{count}\n")
