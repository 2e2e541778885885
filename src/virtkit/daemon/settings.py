"""Daemon settings, from the environment (systemd units and tests set them)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from virtkit.errors import ConfigError


@dataclass(frozen=True)
class Settings:
    lock_wait_s: float = 30.0  # VIRTKIT_LOCK_WAIT_S: how long an operation waits for a busy domain
    launch_timeout_s: float = 30.0  # VIRTKIT_LAUNCH_TIMEOUT_S: QEMU start to QMP ready
    qmp_timeout_s: float = 10.0  # VIRTKIT_QMP_TIMEOUT_S: one QMP command
    restart_backoff_s: float = 1.0  # VIRTKIT_RESTART_BACKOFF_S: first on_crash restart delay
    # overcommit (daemon/domains/overcommit.py): vCPUs per online host CPU, memory per MiB MemTotal
    cpu_allocation_ratio: float = 16.0  # VIRTKIT_CPU_ALLOCATION_RATIO
    memory_allocation_ratio: float = 1.5  # VIRTKIT_MEMORY_ALLOCATION_RATIO
    # VIRTKIT_CONFINE: auto (= on for a system-mode daemon running as root) | on | off
    confine: str = "auto"
    # VIRTKIT_QEMU_UIDS: FIRST-LAST, one uid (and gid) per running QEMU from this range, or
    # 'shared': every confined QEMU runs as VIRTKIT_QEMU_USER (runtime/uids.py)
    qemu_uids: str = "2000000000-2000065535"
    qemu_user: str = "virtkit-qemu"  # VIRTKIT_QEMU_USER: the account of qemu_uids=shared
    listen_tls: str = ""  # VIRTKIT_LISTEN_TLS: ADDR:PORT of the TLS listener ('' = none)
    tls_dir: str = ""  # VIRTKIT_TLS_DIR: ca.pem, server.pem, server-key.pem ('' = STATE/pki)
    # VIRTKIT_UI_LISTEN: the browser listener (web UI, consoles) HOST:PORT, 'none' = off
    ui_listen: str = "127.0.0.1:8738"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = "VIRTKIT_" + f.name.upper()
            if key in env and f.type == "str":
                values[f.name] = env[key]
            elif key in env:
                try:
                    values[f.name] = float(env[key])
                except ValueError:
                    raise ConfigError(f"{key}={env[key]!r} is not a number") from None
                unit = " seconds" if f.name.endswith("_s") else ""
                if not 0 < values[f.name] <= 3600:
                    raise ConfigError(f"{key} must be between 0 and 3600{unit}")
        if values.get("confine", "auto") not in ("auto", "on", "off"):
            raise ConfigError(f"VIRTKIT_CONFINE={values['confine']!r}: use auto, on or off")
        from virtkit.runtime.uids import parse_range

        parse_range(values.get("qemu_uids", cls.qemu_uids))  # ConfigError naming the fix
        return cls(**values)
