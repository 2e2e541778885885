"""Domain snapshots, virsh's way.

Two kinds:
  full (default)  internal qcow2 snapshots. For a running guest they include its RAM
                  (QMP ``snapshot-save``, stored in the first writable qcow2 disk);
                  reverting a running snapshot restores RAM and disks
                  (``snapshot-load``). For a shut-off guest: disks only (qemu-img).
  --disk-only     external snapshots: each writable disk gets a qcow2 overlay whose
                  backing file is the old image; the definition switches to the overlays.
                  Running guests switch live (``blockdev-add`` + ``blockdev-snapshot``).
                  Deleting one merges its overlay back (``block-commit`` / qemu-img commit).
Snapshot metadata lives in the state store (table ``snapshots``), with parent links
(the tree) and the domain's current snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from virtkit.daemon import intents
from virtkit.daemon.locks import DomainKey
from virtkit.errors import ConfigError, NotFoundError, QmpError, StateError
from virtkit.model.domain import Disk, DiskDevice, DiskFormat, check_name
from virtkit.qemu.qmp import Monitor

if TYPE_CHECKING:
    from virtkit.daemon.service import Entry, Service

JOB_TIMEOUT_S = 600.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
  domain TEXT NOT NULL, name TEXT NOT NULL, parent TEXT, created REAL NOT NULL,
  description TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL, disks TEXT NOT NULL,
  current INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (domain, name));
"""


@dataclass(frozen=True)
class Snapshot:
    domain: str
    name: str
    parent: str | None
    created: float
    description: str
    kind: str  # "full" (internal) | "disk-only" (external)
    state: str  # the domain's state when taken: running | paused | shut off
    disks: list[dict[str, str]]  # external: target, overlay, base, base_format
    current: bool

    def view(self, children: list[str]) -> dict[str, Any]:
        return {
            "name": self.name, "domain": self.domain, "parent": self.parent,
            "created": self.created, "description": self.description, "kind": self.kind,
            "state": self.state, "current": self.current, "children": children,
            "location": "external" if self.kind == "disk-only" else "internal",
        }  # fmt: skip


# -- store ----------------------------------------------------------------------------------


def _rows(svc: Service, domain: str) -> list[Snapshot]:
    svc.store.db.executescript(SCHEMA)
    rows = svc.store.db.execute(
        "SELECT domain, name, parent, created, description, kind, state, disks, current "
        "FROM snapshots WHERE domain=? ORDER BY created",
        (domain,),
    ).fetchall()
    return [Snapshot(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), bool(r[8]))
            for r in rows]  # fmt: skip


def list_snapshots(svc: Service, domain: str) -> list[dict[str, Any]]:
    svc.entry(domain)
    snaps = _rows(svc, domain)
    return [s.view([c.name for c in snaps if c.parent == s.name]) for s in snaps]


def get(svc: Service, domain: str, name: str | None) -> Snapshot:
    snaps = _rows(svc, domain)
    for s in snaps:
        if (name is None and s.current) or s.name == name:
            return s
    if name is None:
        raise NotFoundError(f"domain {domain!r} has no current snapshot")
    raise NotFoundError(
        f"domain {domain!r} has no snapshot named {name!r}; "
        f"`virtkit snapshot-list {domain}` shows them"
    )


def _save(svc: Service, s: Snapshot) -> None:
    with svc.store.tx() as db:
        db.execute("UPDATE snapshots SET current=0 WHERE domain=?", (s.domain,))
        db.execute(
            "INSERT INTO snapshots VALUES (?,?,?,?,?,?,?,?,1)",
            (s.domain, s.name, s.parent, s.created, s.description, s.kind, s.state,
             json.dumps(s.disks)),
        )  # fmt: skip


def _set_current(svc: Service, domain: str, name: str | None) -> None:
    with svc.store.tx() as db:
        db.execute("UPDATE snapshots SET current=(name IS ?) WHERE domain=?", (name, domain))


def _remove(svc: Service, s: Snapshot) -> None:
    with svc.store.tx() as db:
        db.execute("UPDATE snapshots SET parent=? WHERE domain=? AND parent=?",
                   (s.parent, s.domain, s.name))  # fmt: skip
        db.execute("DELETE FROM snapshots WHERE domain=? AND name=?", (s.domain, s.name))
        if s.current:
            db.execute("UPDATE snapshots SET current=1 WHERE domain=? AND name IS ?",
                       (s.domain, s.parent))  # fmt: skip


# -- helpers --------------------------------------------------------------------------------


def _writable(e: Entry) -> list[Disk]:
    return [d for d in e.domain.disks if not d.readonly and d.device is DiskDevice.DISK]


def _qemu_img(*args: str) -> None:
    r = subprocess.run(["qemu-img", *args], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise StateError(f"qemu-img {args[0]} failed: {r.stderr.strip()}", current="", required="")


def _qcow2_opts(path: str) -> str:
    """qemu-img snapshot has no -f: name the format explicitly this way (never probe)."""
    return "driver=qcow2,file.driver=file,file.filename=" + path.replace(",", ",,")


async def _img(*args: str) -> None:
    await asyncio.get_running_loop().run_in_executor(None, lambda: _qemu_img(*args))


async def _job(mon: Monitor, job_id: str) -> None:
    """Wait for a QMP job to conclude; raise its error; dismiss it."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        jobs = await mon.execute("query-jobs")
        job = next((j for j in jobs if j["id"] == job_id), None)
        if job is None:
            return
        if job["status"] == "ready":  # an active commit waits for us to pivot
            await mon.execute("job-complete", {"id": job_id})
        elif job["status"] == "concluded":
            await mon.execute("job-dismiss", {"id": job_id})
            if job.get("error"):
                raise QmpError(f"QEMU job {job_id} failed: {job['error']}")
            return
        await asyncio.sleep(0.05)
    raise QmpError(f"QEMU job {job_id} did not finish within {JOB_TIMEOUT_S:g} s")


async def _inserted(mon: Monitor) -> dict[str, dict[str, Any]]:
    """Device id (= disk target) -> query-block's ``inserted``: the top of its image chain
    (``node-name``, and ``file``: what the guest writes to)."""
    out = {}
    for b in await mon.execute("query-block"):
        qdev = str(b.get("qdev", ""))
        if qdev.startswith("/machine/peripheral/") and b.get("inserted"):
            out[qdev.split("/")[3]] = b["inserted"]
    return out


async def _top_nodes(mon: Monitor) -> dict[str, str]:
    """Device id (= disk target) -> the node at the top of its image chain."""
    return {t: str(i["node-name"]) for t, i in (await _inserted(mon)).items()}


def _monitor(e: Entry) -> Monitor:
    if e.sup is None or e.sup.monitor is None or not e.sup.monitor.connected:
        raise StateError(f"the monitor of domain {e.domain.name!r} is not connected",
                         current="unknown", required="running")  # fmt: skip
    return e.sup.monitor


# -- create -----------------------------------------------------------------------------------


async def create(svc: Service, domain: str, name: str, *, disk_only: bool,
                 description: str) -> dict[str, Any]:  # fmt: skip
    try:
        check_name(name, "snapshot")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    async with svc.locks.hold(DomainKey(domain), "snapshot-create"):
        e = svc.entry(domain)
        snaps = _rows(svc, domain)
        if any(s.name == name for s in snaps):
            raise ConfigError(f"domain {domain!r} already has a snapshot named {name!r}")
        disks = _writable(e)
        if not disks:
            raise ConfigError(f"domain {domain!r} has no writable disk to snapshot")
        parent = next((s.name for s in snaps if s.current), None)
        state = str(e.state) if e.active else "shut off"
        snap = Snapshot(domain, name, parent, time.time(), description,
                        "disk-only" if disk_only else "full", state, [], True)  # fmt: skip
        if disk_only:
            plan = _plan_external(e, name)
            intent = {"snapshot": dataclasses.asdict(snap), "overlays": plan}
            with intents.recorded(svc, domain, "snapshot-create", intent):
                await _external(svc, e, plan)
                intents.crash_point("snapshot-create:switched")
                snap = dataclasses.replace(snap, disks=plan)
                _save(svc, snap)
        else:
            _check_internal(disks)
            job = f"snap-save-{int(time.time() * 1000)}"
            intent = {"snapshot": dataclasses.asdict(snap), "job": job if e.active else "",
                      "paths": [d.path for d in disks]}  # fmt: skip
            with intents.recorded(svc, domain, "snapshot-create", intent):
                await _internal(e, name, disks, job)
                intents.crash_point("snapshot-create:taken")
                _save(svc, snap)
        svc.bus.publish(domain, "snapshot", f"created {name}")
        return snap.view([])


def _check_internal(disks: list[Disk]) -> None:
    raw = [d.target or d.path for d in disks if d.format is not DiskFormat.QCOW2]
    if raw:
        raise ConfigError(
            f"internal snapshots need qcow2 disks ({', '.join(raw)} are raw); use --disk-only "
            "for an external snapshot, or convert the disks to qcow2"
        )


async def _internal(e: Entry, name: str, disks: list[Disk], job: str) -> None:
    if not e.active:
        for d in disks:
            await _img("snapshot", "-c", name, "--image-opts", _qcow2_opts(d.path))
            intents.crash_point("snapshot-create:disk")
        return
    mon = _monitor(e)
    nodes = await _top_nodes(mon)
    devices = [nodes[d.target or ""] for d in disks]
    await mon.execute("snapshot-save", {"job-id": job, "tag": name, "vmstate": devices[0],
                                        "devices": devices})  # fmt: skip
    intents.crash_point("snapshot-create:job")
    await _job(mon, job)


def _plan_external(e: Entry, name: str) -> list[dict[str, str]]:
    """target, overlay, base, base_format of each writable disk (overlays must be new)."""
    plan = []
    for d in _writable(e):
        base, fmt = d.path, (d.format or DiskFormat.RAW).value
        stem = base[: -len(".qcow2")] if base.endswith(".qcow2") else base
        overlay = f"{stem}.{name}.qcow2"
        if os.path.exists(overlay):
            raise ConfigError(f"{overlay} already exists; pick another snapshot name")
        plan.append({"target": d.target or "", "overlay": overlay, "base": base,
                     "base_format": fmt})  # fmt: skip
    return plan


async def _external(svc: Service, e: Entry, plan: list[dict[str, str]], *,
                    resume: bool = False) -> None:  # fmt: skip
    """Switch each planned disk to its overlay. ``resume`` (recovery after a crash): skip
    the disks QEMU already switched, reuse the overlays already made (still empty)."""
    mon = _monitor(e) if e.active else None
    tops = await _inserted(mon) if mon else {}
    for p in plan:
        if resume and tops.get(p["target"], {}).get("file") == p["overlay"]:
            continue
        if mon is not None and resume:  # an overlay node added before the crash holds the
            await _drop_unused_nodes(mon, p["target"])  # file's lock: it goes first
        if not (resume and os.path.exists(p["overlay"])):
            await _img("create", "-q", "-f", "qcow2", "-b", p["base"], "-F", p["base_format"],
                       p["overlay"])  # fmt: skip
        if mon is not None:
            await svc.confiner.expose(e, p["overlay"], write=True)
            node = f"snap-{p['target']}-{int(time.time() * 1000) % 10**9}"
            await mon.execute("blockdev-add", {
                "driver": "qcow2", "node-name": node, "backing": None,
                "file": {"driver": "file", "filename": p["overlay"]},
            })  # fmt: skip
            intents.crash_point("snapshot-create:overlay")
            await mon.execute("blockdev-snapshot", {"node": tops[p["target"]]["node-name"],
                                                    "overlay": node})  # fmt: skip
    by_target = {p["target"]: p["overlay"] for p in plan}
    new_disks = [
        d.model_copy(update={"path": by_target[d.target], "format": DiskFormat.QCOW2})
        if d.target in by_target else d
        for d in e.domain.disks
    ]  # fmt: skip
    svc.replace_disks(e.domain.name, new_disks)


async def _drop_unused_nodes(mon: Monitor, target: str) -> None:
    """Delete this disk's overlay nodes that nothing uses (QEMU refuses the others)."""
    for n in await mon.execute("query-named-block-nodes", {"flat": True}):
        name = str(n.get("node-name", ""))
        if name.startswith(f"snap-{target}-"):
            with contextlib.suppress(QmpError):
                await mon.execute("blockdev-del", {"node-name": name})


async def recover_create(svc: Service, e: Entry, intent: dict[str, Any]) -> str:
    """A daemon crash cut a snapshot-create short (intents.py): finish it when the
    snapshot exists in the images (or, external, can still be completed), else undo."""
    snap = Snapshot(**intent["snapshot"])
    if any(s.name == snap.name for s in _rows(svc, snap.domain)):
        return f"completed: snapshot {snap.name} was already recorded"
    if snap.kind == "disk-only":
        plan = intent["overlays"]
        # Always completable: a disk QEMU switched holds its new writes in the overlay; an
        # overlay not switched to yet is still empty (the same content as its base).
        await _external(svc, e, plan, resume=True)
        _save(svc, dataclasses.replace(snap, disks=plan))
        return f"completed: snapshot {snap.name} (disk-only) taken"
    paths: list[str] = intent["paths"]
    failed = ""
    if intent.get("job") and e.active:
        try:
            await _job(_monitor(e), intent["job"])
        except (QmpError, StateError) as exc:
            failed = str(exc)
    have = [p for p in paths if snap.name in await _tags(p)]
    if len(have) == len(paths) and not failed:
        _save(svc, snap)
        return f"completed: snapshot {snap.name} taken"
    if have and e.active:  # a partial snapshot: its tags go
        mon = _monitor(e)
        job = f"snap-undo-{int(time.time() * 1000)}"
        nodes = await _top_nodes(mon)
        devices = [nodes[d.target or ""] for d in _writable(e) if d.path in have]
        await mon.execute("snapshot-delete", {"job-id": job, "tag": snap.name,
                                              "devices": devices})  # fmt: skip
        await _job(mon, job)
    elif have:
        for p in have:
            await _img("snapshot", "-d", snap.name, "--image-opts", _qcow2_opts(p))
    return f"rolled back: snapshot {snap.name} not taken" + (f" ({failed})" if failed else "")


async def _tags(path: str) -> set[str]:
    """Internal snapshot tags of a qcow2 image (-U: its QEMU may hold the lock)."""

    def run() -> set[str]:
        argv = ["qemu-img", "snapshot", "-l", "-U", "--image-opts", _qcow2_opts(path)]
        r = subprocess.run(argv, capture_output=True, text=True, check=False)
        tags = set()
        for line in r.stdout.splitlines()[2:]:
            parts = line.split()
            if len(parts) > 1:
                tags.add(parts[1])
        return tags

    return await asyncio.get_running_loop().run_in_executor(None, run)


# -- revert -----------------------------------------------------------------------------------


async def revert(svc: Service, domain: str, name: str | None) -> dict[str, Any]:
    async with svc.locks.hold(DomainKey(domain), "snapshot-revert"):
        e = svc.entry(domain)
        snap = get(svc, domain, name)
        children = [s.name for s in _rows(svc, domain) if s.parent == snap.name]
        if snap.kind == "disk-only":
            if children or not snap.current:
                raise StateError(
                    f"snapshot {snap.name!r} is external and not the latest; virtkit reverts "
                    "only to the latest external snapshot (delete the later ones first)",
                    current="has later snapshots",
                    required="latest",
                )
            if e.active:
                await svc.destroy_locked(domain)
            for d in snap.disks:  # throw away what was written since: a fresh overlay
                await _img("create", "-q", "-f", "qcow2", "-b", d["base"], "-F",
                           d["base_format"], d["overlay"])  # fmt: skip
        elif snap.state in ("running", "paused"):
            if not e.active:
                await svc.start_locked(domain, paused=True)
            mon = _monitor(e)
            job = f"snap-load-{int(time.time() * 1000)}"
            nodes = await _top_nodes(mon)
            devices = [nodes[d.target or ""] for d in _writable(e)]
            args = {"job-id": job, "tag": snap.name, "vmstate": devices[0], "devices": devices}
            await mon.execute("snapshot-load", args)
            await _job(mon, job)
            if snap.state == "running":
                await mon.cont()
        else:
            if e.active:
                await svc.destroy_locked(domain)
            for disk in _writable(e):
                await _img("snapshot", "-a", snap.name, "--image-opts", _qcow2_opts(disk.path))
        _set_current(svc, domain, snap.name)
        svc.bus.publish(domain, "snapshot", f"reverted to {snap.name}")
        return get(svc, domain, snap.name).view(children)


# -- delete -----------------------------------------------------------------------------------


async def delete(svc: Service, domain: str, name: str | None) -> None:
    async with svc.locks.hold(DomainKey(domain), "snapshot-delete"):
        e = svc.entry(domain)
        snap = get(svc, domain, name)
        children = [s.name for s in _rows(svc, domain) if s.parent == snap.name]
        if snap.kind == "disk-only":
            if children:
                raise StateError(
                    f"external snapshot {snap.name!r} has later snapshots ({', '.join(children)});"
                    " delete those first", current="has children", required="no children",
                )  # fmt: skip
            await _merge_back(svc, e, snap)
        elif e.active:
            mon = _monitor(e)
            nodes = await _top_nodes(mon)
            devices = [nodes[d.target or ""] for d in _writable(e)]
            job = f"snap-del-{int(time.time() * 1000)}"
            await mon.execute("snapshot-delete", {"job-id": job, "tag": snap.name,
                                                  "devices": devices})  # fmt: skip
            await _job(mon, job)
        else:
            for d in _writable(e):
                await _img("snapshot", "-d", snap.name, "--image-opts", _qcow2_opts(d.path))
        _remove(svc, snap)
        svc.bus.publish(domain, "snapshot", f"deleted {snap.name}")


async def _merge_back(svc: Service, e: Entry, snap: Snapshot) -> None:
    """Commit each overlay into its base and point the disk back at the base."""
    by_target = {d["target"]: d for d in snap.disks}
    if e.active:
        mon = _monitor(e)
        nodes = await _top_nodes(mon)
        for target in by_target:
            await svc.confiner.expose(e, by_target[target]["base"], write=True)  # reopened rw
            job = f"commit-{target}-{int(time.time() * 1000)}"
            await mon.execute("block-commit", {"job-id": job, "device": nodes[target]})
            await _job(mon, job)
    else:
        for d in by_target.values():
            await _img("commit", "-q", "-f", "qcow2", d["overlay"])
    new_disks = []
    for disk in e.domain.disks:
        taken = by_target.get(disk.target or "")
        if taken is not None and disk.path == taken["overlay"]:
            disk = disk.model_copy(update={"path": taken["base"],
                                           "format": DiskFormat(taken["base_format"])})  # fmt: skip
        new_disks.append(disk)
    svc.replace_disks(e.domain.name, new_disks)
    for d in by_target.values():
        with contextlib.suppress(FileNotFoundError):
            os.unlink(d["overlay"])
