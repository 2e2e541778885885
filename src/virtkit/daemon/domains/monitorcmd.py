"""``qemu-monitor-command``: raw QMP (or HMP) for the administrator; taints the domain.

Raw monitor access bypasses everything virtkit tracks (devices, state, secrets), so it
is refused to every role but admin (daemon/auth/roles.py), and the domain is marked
tainted ("custom-monitor") in dominfo while that QEMU runs, like libvirt does.
"""

from __future__ import annotations

import json
from typing import Any

from virtkit.daemon.auth.roles import require_admin
from virtkit.daemon.locks import DomainKey
from virtkit.daemon.service import Service
from virtkit.errors import ConfigError

TAINT = "custom-monitor"


async def monitor_command(svc: Service, name: str, command: str, hmp: bool) -> Any:
    require_admin("qemu-monitor-command (raw QEMU monitor access)")
    args: dict[str, Any] | None
    if hmp:
        cmd, args = "human-monitor-command", {"command-line": command}
    else:
        try:
            msg = json.loads(command)
        except ValueError:
            raise ConfigError(
                'the command is not JSON: give QMP like \'{"execute": "query-status"}\', '
                "or use --hmp for a human monitor command"
            ) from None
        if not isinstance(msg, dict) or not isinstance(msg.get("execute"), str):
            raise ConfigError('a QMP command is an object with "execute" (and "arguments")')
        if set(msg) - {"execute", "arguments"}:
            raise ConfigError('a QMP command has only "execute" and "arguments"')
        cmd, raw = msg["execute"], msg.get("arguments")
        if raw is not None and not isinstance(raw, dict):
            raise ConfigError('"arguments" must be an object')
        args = raw
    async with svc.locks.hold(DomainKey(name), "qemu-monitor-command"):
        sup = svc._running(name, "send a monitor command to")
        e = svc.entry(name)
        tainted = e.extra.setdefault("tainted", [])
        if TAINT not in tainted:
            tainted.append(TAINT)
            svc.bus.publish(name, "tainted", "raw QEMU monitor command")
        mon = sup.monitor
        if mon is None or not mon.connected:
            raise ConfigError(f"the QEMU monitor of domain {name!r} is not connected; retry")
        return await mon.execute(cmd, args)
