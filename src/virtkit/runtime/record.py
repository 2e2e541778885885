"""The runtime record: everything needed to find and drive a running QEMU again.

Saved by the daemon when a domain starts (argv + resolved domain + identity of
the process) and read back after a daemon restart to re-attach.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class RuntimeRecord:
    name: str
    uuid: str
    id: int
    pid: int
    start_time: int
    argv: list[str]
    qmp: str
    serial: str
    pidfile: str
    console_log: str
    run_dir: str
    accel: str
    accel_note: str
    started_at: float
    domain: dict[str, Any] = field(default_factory=dict)
    qemu_uid: int | None = None  # confined: the unprivileged user QEMU runs as
    cgroup: str = ""  # confined: the domain's (main) cgroup directory
    cgroup_dirs: list[str] = field(default_factory=list)  # all of them (v2 + v1 scopes)
    cgroup_limits: dict[str, str] = field(default_factory=dict)  # control file -> value
    confinement_note: str = ""  # what confinement could not do on this host
    # an outgoing or incoming live migration in flight (daemon/migrate*.py): role, phase,
    # peer URI; a restarted daemon uses it to leave the guest running on exactly one side
    migration: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> RuntimeRecord:
        return cls(**json.loads(text))
