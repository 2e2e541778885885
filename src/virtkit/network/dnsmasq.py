"""dnsmasq for a managed network: DHCP and DNS on its bridge, one instance per network.

Each network has a directory ``<state>/networks/<name>/`` with ``dnsmasq.conf``,
``dnsmasq.pid``, ``dnsmasq.leases`` and ``dnsmasq.hosts``. dnsmasq daemonizes and writes its
pidfile, so it outlives a daemon restart like QEMU does; the daemon adopts it again when the
pid is alive and its command line names this network's conf file (never a recycled pid).

``config`` is a pure function (unit-tested). Leases are read from the lease file dnsmasq
keeps (``<expiry> <mac> <ip> <hostname|*> <client-id|*>`` per line).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from virtkit.errors import HostError
from virtkit.fsutil import atomic_write_bytes
from virtkit.model.network import NetMode, Network

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Files:
    dir: Path

    @property
    def conf(self) -> Path:
        return self.dir / "dnsmasq.conf"

    @property
    def pidfile(self) -> Path:
        return self.dir / "dnsmasq.pid"

    @property
    def leases(self) -> Path:
        return self.dir / "dnsmasq.leases"

    @property
    def log(self) -> Path:
        return self.dir / "dnsmasq.log"


@dataclass(frozen=True)
class Lease:
    expiry: int
    mac: str
    ip: str
    hostname: str | None
    client_id: str | None


def config(net: Network, files: Files) -> str:
    """dnsmasq.conf for ``net`` (libvirt's choices: bind only the bridge, authoritative)."""
    assert net.bridge is not None
    lines = [
        f"# virtkit network {net.name}: generated, do not edit",
        "strict-order",
        f"pid-file={files.pidfile}",
        "except-interface=lo",
        "bind-dynamic",
        f"interface={net.bridge}",
        f"listen-address={net.gateway}",
        "no-hosts",
    ]
    if net.mode is NetMode.ISOLATED:
        lines += ["no-resolv"]  # answers for its own names only, nothing goes upstream
    if net.dns_domain:
        lines += [f"domain={net.dns_domain}", f"local=/{net.dns_domain}/", "expand-hosts"]
    if net.dhcp:
        mask = str(net.interface.netmask)
        size = int(net.subnet.broadcast_address) - int(net.subnet.network_address) - 1
        lines += [
            f"dhcp-range={net.dhcp_start},{net.dhcp_end},{mask}",
            "dhcp-no-override",
            "dhcp-authoritative",
            f"dhcp-lease-max={size}",
            f"dhcp-leasefile={files.leases}",
        ]
        if net.mode is NetMode.ISOLATED:
            lines += ["dhcp-option=3"]  # no router: guests keep their own default route
        for h in net.dhcp_hosts:
            lines.append(f"dhcp-host={h.mac},{h.ip}" + (f",{h.name}" if h.name else ""))
    return "\n".join(lines) + "\n"


def write_config(net: Network, files: Files) -> None:
    files.dir.mkdir(parents=True, exist_ok=True, mode=0o755)
    atomic_write_bytes(files.conf, config(net, files).encode(), 0o644)


def running_pid(files: Files) -> int | None:
    """The pid of this network's dnsmasq if it runs (pidfile + its command line)."""
    try:
        pid = int(files.pidfile.read_text().strip())
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    want = f"--conf-file={files.conf}".encode()
    if cmd and os.path.basename(cmd[0]) == b"dnsmasq" and want in cmd:
        return pid
    return None


def start(net: Network, files: Files) -> int:
    """Write the config and start dnsmasq (it daemonizes); its pid once it is serving."""
    write_config(net, files)
    files.leases.touch(mode=0o644, exist_ok=True)
    with contextlib.suppress(OSError):
        files.pidfile.unlink()
    binary = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    if not os.access(binary, os.X_OK):
        raise HostError("dnsmasq is not installed: apt-get install dnsmasq-base")
    try:
        r = subprocess.run(
            [binary, f"--conf-file={files.conf}", "--log-facility=" + str(files.log)],
            capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise HostError(f"dnsmasq of network {net.name!r} did not start in time") from None
    if r.returncode != 0:
        raise HostError(f"dnsmasq of network {net.name!r} failed: {r.stderr.strip()}")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        pid = running_pid(files)
        if pid is not None:
            return pid
        time.sleep(0.02)
    raise HostError(f"dnsmasq of network {net.name!r} wrote no pidfile {files.pidfile}")


def reload(files: Files) -> None:
    """SIGHUP: dnsmasq re-reads its hosts files (fixed leases need a restart)."""
    pid = running_pid(files)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGHUP)


def stop(files: Files) -> None:
    """SIGTERM this network's dnsmasq and wait for it to go; SIGKILL if it lingers."""
    pid = running_pid(files)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}") or _zombie(pid):
            break
        time.sleep(0.02)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        files.pidfile.unlink()


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def parse_leases(text: str) -> list[Lease]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4 or not parts[0].isdigit() or ":" in parts[2]:
            continue  # IPv6 lines and the "duid" line
        out.append(Lease(int(parts[0]), parts[1].lower(), parts[2],
                         None if parts[3] == "*" else parts[3],
                         None if len(parts) < 5 or parts[4] == "*" else parts[4]))  # fmt: skip
    return out


def read_leases(files: Files) -> list[Lease]:
    try:
        return parse_leases(files.leases.read_text(errors="replace"))
    except OSError:
        return []
