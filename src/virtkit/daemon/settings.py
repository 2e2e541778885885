"""Daemon settings, from the environment (systemd units and tests set them)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from virtkit.errors import ConfigError


@dataclass(frozen=True)
class Settings:
    lock_wait_s: float = 30.0  # VIRTKIT_LOCK_WAIT_S: how long an operation waits for a busy domain
    launch_timeout_s: float = 30.0  # VIRTKIT_LAUNCH_TIMEOUT_S: QEMU start to QMP ready
    qmp_timeout_s: float = 10.0  # VIRTKIT_QMP_TIMEOUT_S: one QMP command

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        values: dict[str, float] = {}
        for f in fields(cls):
            key = "VIRTKIT_" + f.name.upper()
            if key in env:
                try:
                    values[f.name] = float(env[key])
                except ValueError:
                    raise ConfigError(f"{key}={env[key]!r} is not a number of seconds") from None
                if not 0 < values[f.name] <= 3600:
                    raise ConfigError(f"{key} must be between 0 and 3600 seconds")
        return cls(**values)
