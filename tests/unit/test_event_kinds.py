"""QMP events become the bus's event types: reboot, device-removed, job, block-job, migration."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from virtkit.qemu.qmp import Event
from virtkit.runtime.supervisor import Hooks, Policy, Supervisor


def kinds(*events: tuple[str, dict[str, Any]]) -> list[tuple[str, str, str]]:
    seen: list[tuple[str, str, str]] = []

    async def main() -> None:
        hooks = Hooks(lambda s: None, lambda *a: seen.append(a), lambda s, r: None)
        record: Any = SimpleNamespace(name="d1")
        sup = Supervisor(record, hooks, Policy())
        for name, data in events:
            sup._on_event(Event(name, data, 0.0))

    asyncio.run(main())
    return seen


def test_qmp_events_map_to_bus_types() -> None:
    got = kinds(
        ("RESET", {"guest": True, "reason": "guest-reset"}),
        ("DEVICE_DELETED", {"device": "vdb", "path": "/machine/peripheral/vdb"}),
        ("JOB_STATUS_CHANGE", {"id": "commit0", "status": "concluded"}),
        ("BLOCK_JOB_COMPLETED", {"device": "commit0", "len": 10, "offset": 10}),
        ("MIGRATION", {"status": "completed"}),
    )
    assert [(k, d.split()[0] if d else "") for _, k, d in got] == [
        ("reboot", "guest-reset"),
        ("device-removed", "{'device':"),
        ("job", "commit0"),
        ("block-job", "completed"),
        ("migration", "completed"),
    ]
    assert got[2][2] == "commit0 concluded"
