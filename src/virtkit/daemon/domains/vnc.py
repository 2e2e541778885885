"""Where a running guest's VNC server listens (QMP query-vnc), and a pipe to it.

VNC itself listens on loopback (or a Unix socket) only; browsers reach it
through the daemon's websocket proxy (daemon/api/vnc.py), which needs a
per-viewer token.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from virtkit.daemon.service import Service
from virtkit.errors import StateError


@dataclass(frozen=True)
class VncAddress:
    family: str  # ipv4 | ipv6 | unix
    host: str  # address, or the socket path for unix
    port: int | None

    @property
    def display(self) -> str:
        """virsh vncdisplay's answer: ``127.0.0.1:0``, ``[::1]:1`` or the socket path."""
        if self.family == "unix" or self.port is None:
            return self.host
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port - 5900}"


async def vnc_address(svc: Service, name: str) -> VncAddress:
    sup = svc._running(name, "show the graphical console of")
    e = svc.entry(name)
    if e.domain.graphics.type.value != "vnc":
        raise StateError(f"domain {name!r} has no graphical console (graphics: none); "
                         "define it with graphics: {type: vnc} (virt-install --graphics vnc)",
                         current="graphics none", required="graphics vnc")  # fmt: skip
    info = await sup._require_monitor().execute("query-vnc")
    if not info.get("enabled"):
        raise StateError(f"the VNC server of domain {name!r} is not enabled",
                         current="vnc disabled", required="vnc enabled")  # fmt: skip
    family = str(info.get("family", "ipv4"))
    service = str(info.get("service", ""))
    if family == "unix":  # QEMU names the socket path as the "service"
        return VncAddress(family, service or str(info.get("host", "")), None)
    port = int(service) if service.isdigit() else None
    return VncAddress(family, str(info.get("host", "")), port)


async def open_vnc(addr: VncAddress) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if addr.family == "unix":
        return await asyncio.open_unix_connection(addr.host)
    return await asyncio.open_connection(addr.host, addr.port)
