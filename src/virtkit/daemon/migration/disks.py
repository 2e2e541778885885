"""--copy-storage-all: mirror the source's writable disks into the destination's NBD exports.

Per disk: an ``nbd`` block node pointing at the destination's export, and a
``blockdev-mirror`` (sync=full, auto-dismiss off so its outcome can be read) from the
disk's format node into it. The migration starts when every mirror is READY; QEMU then
pauses before the switchover (pause-before-switchover), the mirrors are completed
without pivoting (block-job-cancel of a READY mirror: the target is an exact copy),
and the migration continues.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from typing import TYPE_CHECKING, Any

from virtkit.daemon.migration.dest import copied_disks
from virtkit.errors import QmpError

if TYPE_CHECKING:
    from virtkit.daemon.migration.job import Job
    from virtkit.model.domain import Domain
    from virtkit.qemu.qmp import Monitor
    from virtkit.revert import RevertStack

POLL_S = 0.05
READY_TIMEOUT_S = 600.0
COMPLETE_TIMEOUT_S = 120.0


def copy_targets(dom: Domain) -> list[str]:
    return copied_disks(dom)


async def sizes_of(mon: Monitor, targets: list[str]) -> dict[str, int]:
    """Virtual size of each disk as QEMU has it open."""
    if not targets:
        return {}
    sizes: dict[str, int] = {}
    for node in await mon.execute("query-named-block-nodes", {"flat": True}):
        name = str(node.get("node-name", ""))
        if name.startswith("drive-") and name[6:] in targets:
            sizes[name[6:]] = int(node["image"]["virtual-size"])
    missing = [t for t in targets if t not in sizes]
    if missing:
        raise QmpError(f"QEMU has no block node for disk(s) {', '.join(missing)}")
    return sizes


def _node(target: str) -> str:
    return f"mig-{target}"


async def _jobs(mon: Monitor) -> dict[str, dict[str, Any]]:
    return {str(j["id"]): j for j in await mon.execute("query-jobs")}


async def _mirror_progress(mon: Monitor, job: Job) -> dict[str, dict[str, Any]]:
    found = {}
    for j in await mon.execute("query-block-jobs"):
        dev = str(j.get("device", ""))
        if dev.startswith("mig-"):
            job.disks[dev[4:]] = (int(j.get("offset", 0)), int(j.get("len", 0)))
            found[dev[4:]] = j
    return found


async def mirror(mon: Monitor, job: Job, targets: list[str], host: str, port: int,
                 revert: RevertStack) -> None:  # fmt: skip
    """Start a mirror per disk into the destination's export; return when all are READY."""
    for t in targets:
        node = _node(t)
        await mon.execute("blockdev-add", {
            "driver": "nbd", "node-name": node, "export": t,
            "server": {"type": "inet", "host": host, "port": str(port)},
        })  # fmt: skip
        revert.push(functools.partial(_quiet, mon, "blockdev-del", {"node-name": node}),
                    f"nbd node {node}")  # fmt: skip
        await mon.execute("blockdev-mirror", {
            "job-id": node, "device": f"drive-{t}", "target": node, "sync": "full",
            "auto-dismiss": False,
        })  # fmt: skip
        revert.push(functools.partial(cancel, mon, node), f"mirror {node}")
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        state = await _mirror_progress(mon, job)
        if all(state.get(t, {}).get("ready") for t in targets):
            return
        for t in targets:
            info = (await _jobs(mon)).get(_node(t), {})
            if info.get("status") in ("concluded", "aborting", "null"):
                raise QmpError(f"copying disk {t} to the destination failed: "
                               f"{info.get('error', 'the mirror job stopped')}")  # fmt: skip
        if job.abort_requested:
            return  # the caller raises Cancelled; the revert stack cancels the mirrors
        if time.monotonic() > deadline:
            raise QmpError(f"the disk copies were not in sync within {READY_TIMEOUT_S:g} s")
        await asyncio.sleep(POLL_S)


async def complete_mirrors(mon: Monitor, job: Job, targets: list[str]) -> None:
    """The guest is paused: finish every mirror without pivoting; the copies are exact."""
    await _mirror_progress(mon, job)
    for t in targets:
        await mon.execute("block-job-cancel", {"device": _node(t)})
    deadline = time.monotonic() + COMPLETE_TIMEOUT_S
    pending = set(targets)
    while pending:
        found = await _jobs(mon)
        for t in list(pending):
            info = found.get(_node(t))
            if info is None or info.get("status") == "concluded":
                if info is not None and info.get("error"):
                    raise QmpError(f"copying disk {t} to the destination failed: "
                                   f"{info['error']}")  # fmt: skip
                job.disks[t] = (job.disks.get(t, (0, 0))[1],) * 2
                pending.discard(t)
                if info is not None:
                    await _quiet(mon, "job-dismiss", {"id": _node(t)})
                await _quiet(mon, "blockdev-del", {"node-name": _node(t)})
        if time.monotonic() > deadline:
            raise QmpError(f"the disk copies did not complete within {COMPLETE_TIMEOUT_S:g} s")
        if pending:
            await asyncio.sleep(POLL_S)


async def cancel(mon: Monitor, node: str) -> None:
    """Revert: stop a mirror whatever its state, and forget it."""
    await _quiet(mon, "block-job-cancel", {"device": node, "force": True})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        info = (await _jobs(mon)).get(node)
        if info is None:
            return
        if info.get("status") == "concluded":
            await _quiet(mon, "job-dismiss", {"id": node})
            return
        await asyncio.sleep(POLL_S)


async def _quiet(mon: Monitor, cmd: str, args: dict[str, Any]) -> None:
    with contextlib.suppress(QmpError):
        await mon.execute(cmd, args)
