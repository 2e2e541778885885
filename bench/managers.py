"""The two managers benchmarked side by side, behind one small interface: virtkit (its
CLI against a private daemon) and libvirt (virsh against libvirtd). Both run the same
tiny guest under TCG: q35, 1 vCPU, 256 MiB, serial console to a file, no disk or NIC.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Protocol

from bench import _libvirt as lv
from bench._daemon import BenchDaemon, cli_argv

MARKER = "VIRTKIT-TINY-BOOT-OK"  # printed by the tiny guest's init


class Manager(Protocol):
    label: str

    def define(self, name: str, profile: str = "default") -> None: ...
    def cli(self, *args: str) -> None: ...  # the user's command line, waited for
    def state(self, name: str) -> str: ...
    def console(self, name: str) -> Path: ...
    def qemu_pids(self) -> list[int]: ...
    def own_pids(self) -> list[int]: ...
    def undefine_all(self) -> None: ...


def wait_for(path: Path, marker: str, timeout_s: float = 120, poll_s: float = 0.01) -> float:
    """Seconds until ``marker`` is in the file (polled); raises TimeoutError."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        try:
            if marker.encode() in path.read_bytes():
                return time.perf_counter() - t0
        except OSError:
            pass
        time.sleep(poll_s)
    raise TimeoutError(f"{marker!r} not in {path} after {timeout_s} s")


class Virtkit:
    label = "virtkit"

    def __init__(self, d: BenchDaemon, kernel: str, initrd: str, pvh: str | None) -> None:
        self.d, self.kernel, self.initrd, self.pvh = d, kernel, initrd, pvh
        self.dir = d.base / "defs"
        self.dir.mkdir(exist_ok=True)
        self.names: set[str] = set()

    def define_file(self, name: str, profile: str = "default", memory_mib: int = 256) -> Path:
        kernel, machine = self.kernel, "q35"
        if profile == "fast":
            if self.pvh is None:
                raise RuntimeError("the tiny guest has no vmlinux for the fast profile")
            kernel, machine = self.pvh, "microvm"
        f = self.dir / f"{name}.yaml"
        f.write_text(
            f"name: {name}\nmemory_mib: {memory_mib}\naccel: tcg\nmachine: {machine}\n"
            f"boot:\n  kernel: {kernel}\n  initrd: {self.initrd}\n  cmdline: console=ttyS0\n"
        )
        return f

    def define(self, name: str, profile: str = "default") -> None:
        self.cli("define", str(self.define_file(name, profile)))
        self.names.add(name)

    def cli(self, *args: str) -> None:
        r = subprocess.run([*cli_argv(), *args], env=self.d.env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, check=False)  # fmt: skip
        if r.returncode:
            raise RuntimeError(f"virtkit {' '.join(args)}: exit {r.returncode}: {r.stderr}")

    def state(self, name: str) -> str:
        r = subprocess.run([*cli_argv(), "domstate", name], env=self.d.env,
                           capture_output=True, text=True, check=True)  # fmt: skip
        return r.stdout.strip()

    def console(self, name: str) -> Path:
        return self.d.base / "state" / "log" / f"{name}.console.log"

    def qemu_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-f", f"qemu-system.*{self.d.base}/run"],
                             capture_output=True, text=True, check=False).stdout  # fmt: skip
        return [int(p) for p in out.split()]

    def own_pids(self) -> list[int]:
        return [self.d.proc.pid] if self.d.proc else []

    def undefine_all(self) -> None:
        from virtkit.client.client import Client

        c = Client(f"unix://{self.d.socket}")
        for dom in c.list_domains(all_=True):
            if dom["state"] != "shut off":
                c.action(dom["name"], "destroy")
            c.undefine(dom["name"])
        c.close()
        for name in self.names:
            self.console(name).unlink(missing_ok=True)
        self.names.clear()


class Libvirt:
    label = "libvirt"

    def __init__(self, kernel: str, initrd: str) -> None:
        self.kernel, self.initrd = lv.boot_files(kernel, initrd)
        self.daemons = lv.Libvirtd()

    def xml(self, name: str, profile: str = "default") -> str:
        name = lv.PREFIX + name
        if profile == "virt-install":
            return lv.virt_install_xml(name, self.kernel, self.initrd)
        return lv.minimal_xml(name, self.kernel, self.initrd)

    def define(self, name: str, profile: str = "default") -> None:
        lv.define(self.xml(name, profile))
        self.console(name).unlink(missing_ok=True)

    def cli(self, *args: str) -> None:
        verb, rest = args[0], list(args[1:])
        if verb == "define":  # a virtkit-style call: define NAME (the XML is ours)
            self.define(rest[0])
            return
        if rest and not rest[0].startswith("-"):
            rest[0] = lv.PREFIX + rest[0]
        lv.virsh(verb, *rest, check=True)

    def state(self, name: str) -> str:
        return lv.virsh("domstate", lv.PREFIX + name, check=True).stdout.strip()

    def console(self, name: str) -> Path:
        return lv.serial_log(lv.PREFIX + name)

    def qemu_pids(self) -> list[int]:
        return lv.qemu_pids()

    def own_pids(self) -> list[int]:
        return self.daemons.pids()

    def undefine_all(self) -> None:
        lv.cleanup()


def rss_kib(pid: int) -> int:
    """Resident memory of a process (VmRSS), 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kib(pid: int) -> int:
    """Proportional set size (shared pages split between sharers), 0 if gone."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return rss_kib(pid)


__all__ = ["MARKER", "Libvirt", "Manager", "Virtkit", "pss_kib", "rss_kib", "wait_for"]
