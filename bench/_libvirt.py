"""libvirt for side-by-side benchmarks: install it from the distribution when asked,
start libvirtd and virtlogd ourselves (no init system needed), and drive it with virsh.

Nothing here touches the host's networks: the guests have no NICs, and libvirt's own
``default`` network is never started (its autostart link is removed before libvirtd
starts, so no bridge appears on the host).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

PACKAGES = ("libvirt-daemon-system", "libvirt-clients", "virtinst", "python3-libvirt")
URI = "qemu:///system"
BOOT_DIR = Path("/var/lib/libvirt/boot")
LOG_DIR = Path("/var/log/libvirt/qemu")
PREFIX = "vkb-"  # every libvirt domain the benchmarks make starts with this


def install() -> None:
    """apt-get install libvirt's daemon, clients, virt-install and the Python binding."""
    missing = [p for p in PACKAGES if subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True, check=False
    ).stdout != "install ok installed"]  # fmt: skip
    if not missing:
        return
    print(f"bench: installing {' '.join(missing)} from apt", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                   check=True, env=env, stdout=subprocess.DEVNULL)  # fmt: skip


def virsh(
    *args: str, check: bool = False, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["virsh", "-q", "-c", URI, *args], capture_output=True, text=True,
                          timeout=timeout, check=check)  # fmt: skip


def available() -> bool:
    return shutil.which("virsh") is not None and virsh("version").returncode == 0


class Libvirtd:
    """libvirtd + virtlogd started by us (and stopped again) unless already running."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Libvirtd:
        if available():
            return self
        Path("/etc/libvirt/qemu/networks/autostart/default.xml").unlink(missing_ok=True)
        kvm_group_access()
        Path("/run/libvirt").mkdir(parents=True, exist_ok=True)
        for daemon in ("virtlogd", "libvirtd"):  # both stay in the foreground: ours to stop
            exe = shutil.which(daemon) or f"/usr/sbin/{daemon}"
            self.procs.append(subprocess.Popen(
                [exe], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True,
            ))  # fmt: skip
        deadline = time.monotonic() + 30
        while not available():
            if time.monotonic() > deadline:
                raise RuntimeError("libvirtd did not come up")
            time.sleep(0.2)
        return self

    def pids(self) -> list[int]:
        """libvirtd's and virtlogd's pids (the manager's own processes)."""
        out = subprocess.run(["pgrep", "-x", "libvirtd|virtlogd"], capture_output=True,
                             text=True, check=False).stdout  # fmt: skip
        return [int(p) for p in out.split()]

    def __exit__(self, *exc: object) -> None:
        cleanup()
        for p in reversed(self.procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def kvm_group_access() -> None:
    """/dev/kvm as Debian's udev rule leaves it (0660 root:kvm), where no udev ran.

    libvirt checks that its QEMU user (libvirt-qemu, group kvm) can open /dev/kvm; on a
    0600 node it finds "KVM not available now" and re-probes QEMU's capabilities on every
    call (~50 s under TCG), which would make every libvirt number meaningless.
    """
    import grp

    try:
        st, gid = os.stat("/dev/kvm"), grp.getgrnam("kvm").gr_gid
    except (OSError, KeyError):
        return
    if st.st_gid != gid or st.st_mode & 0o060 != 0o060:
        os.chown("/dev/kvm", -1, gid)
        os.chmod("/dev/kvm", (st.st_mode & 0o7777) | 0o060)


def cleanup() -> None:
    """Destroy and undefine every benchmark domain libvirt knows."""
    names = virsh("list", "--all", "--name").stdout.split()
    script = "".join(f"destroy {n}\nundefine {n} --nvram\n" for n in names
                     if n.startswith(PREFIX))  # fmt: skip
    if script:
        batch(script)


def batch(script: str) -> None:
    """Run many virsh commands (one per line) in one virsh process (one connection)."""
    commands = "; ".join(line for line in script.splitlines() if line.strip())
    subprocess.run(["virsh", "-q", "-c", URI, commands], capture_output=True, timeout=600,
                   check=False)  # fmt: skip


def boot_files(kernel: str, initrd: str) -> tuple[str, str]:
    """Copies of the guest's kernel and initrd where libvirt's QEMU user can read them."""
    BOOT_DIR.mkdir(parents=True, exist_ok=True)
    out = []
    for src in (kernel, initrd):
        dst = BOOT_DIR / f"vkbench-{Path(src).name}"
        if not dst.exists() or dst.stat().st_size != Path(src).stat().st_size:
            shutil.copyfile(src, dst)
        dst.chmod(0o644)
        out.append(str(dst))
    return out[0], out[1]


def serial_log(name: str) -> Path:
    return LOG_DIR / f"{name}.serial.log"


def minimal_xml(name: str, kernel: str, initrd: str, memory_mib: int = 256) -> str:
    """The same guest virtkit's default profile runs: q35, TCG, serial, balloon, rng."""
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{kernel}</kernel><initrd>{initrd}</initrd><cmdline>console=ttyS0</cmdline></os>
  <features><acpi/></features>
  <cpu mode='maximum'/>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <serial type='file'><source path='{serial_log(name)}'/><target port='0'/></serial>
    <memballoon model='virtio'/>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  </devices>
</domain>
"""


def virt_install_xml(name: str, kernel: str, initrd: str, memory_mib: int = 256) -> str:
    """What virt-install writes by default for this guest (its own device defaults)."""
    r = subprocess.run(
        ["virt-install", "--connect", URI, "--name", name, "--memory", str(memory_mib),
         "--vcpus", "1", "--virt-type", "qemu", "--osinfo", "detect=on,require=off",
         "--import", "--boot", f"kernel={kernel},initrd={initrd},kernel_args=console=ttyS0",
         "--disk", "none", "--network", "none", "--graphics", "none",
         "--serial", f"file,path={serial_log(name)}", "--print-xml"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    if r.returncode != 0:
        raise RuntimeError(f"virt-install --print-xml failed: {r.stderr.strip()}")
    return r.stdout


def define(xml: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
        f.write(xml)
    try:
        virsh("define", f.name, check=True)
    finally:
        os.unlink(f.name)


def qemu_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"guest={PREFIX}"], capture_output=True, text=True,
                         check=False).stdout  # fmt: skip
    return [int(p) for p in out.split()]
