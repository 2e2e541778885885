"""save / restore / managedsave: a guest's RAM and device state in a file.

The guest is paused, then QEMU migrates its state into a file the daemon opened
and passed over QMP (``getfd`` + ``migrate fd:NAME``; QEMU's sandbox denies
``exec:`` URIs), and QEMU quits: the domain is shut off (saved). Restoring
starts QEMU with ``-incoming fd:N`` on the same file, waits until the state is
loaded, then lets the guest run.

The save file carries its domain definition (the one the guest was booted with)
in a header, like libvirt's: ``virtkit-save v1 <json length>\\n<json>``, zero
padding to the next 4 KiB, then QEMU's migration stream.

A managed save image lives in <state_dir>/save/<uuid>.save; ``start`` resumes
from it and removes it, ``start --force-boot`` discards it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from virtkit.daemon.locks import DomainKey
from virtkit.errors import ConfigError, NotFoundError, QemuError, QmpError, StateError
from virtkit.formats.domfile import domain_from_mapping
from virtkit.fsutil import fsync_dir
from virtkit.model.domain import Domain
from virtkit.model.state import Reason, State

if TYPE_CHECKING:
    from virtkit.daemon.service import Entry, Service
    from virtkit.runtime.supervisor import Supervisor

MAGIC = b"virtkit-save v1 "
ALIGN = 4096
MAX_HEADER_BYTES = 1 << 20
FDNAME = "virtkit-save"
MIGRATE_TIMEOUT_S = 3600.0
MAX_BANDWIDTH = 1 << 40  # bytes/s: no throttling (QEMU's default is 32 MiB/s)


@dataclass(frozen=True)
class SaveResult:
    file: str
    size_bytes: int
    seconds: float


def managed_save_path(svc: Service, dom: Domain) -> Path:
    return svc.paths.state_dir / "save" / f"{dom.uuid or dom.name}.save"


def encode_header(header: dict[str, Any]) -> bytes:
    body = json.dumps(header, separators=(",", ":")).encode()
    head = MAGIC + f"{len(body)}\n".encode() + body
    return head + b"\0" * (-len(head) % ALIGN)


def read_header(path: Path) -> tuple[dict[str, Any], int]:
    """The header of a save file and the offset of QEMU's stream in it."""
    try:
        with open(path, "rb") as f:
            line = f.readline(64)
            if not line.startswith(MAGIC) or not line.endswith(b"\n"):
                raise ConfigError(f"{path} is not a virtkit save file")
            try:
                length = int(line[len(MAGIC) :])
            except ValueError:
                raise ConfigError(f"{path}: corrupt save file header") from None
            if not 0 < length <= MAX_HEADER_BYTES:
                raise ConfigError(f"{path}: corrupt save file header")
            body = f.read(length)
    except FileNotFoundError:
        raise NotFoundError(f"save file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read save file {path}: {exc.strerror}") from None
    try:
        header = json.loads(body)
        assert isinstance(header, dict) and isinstance(header.get("domain"), dict)
    except (ValueError, AssertionError):
        raise ConfigError(f"{path}: corrupt save file header") from None
    used = len(line) + length
    return header, used + (-used % ALIGN)


def _running(svc: Service, name: str, op: str) -> Supervisor:
    e = svc.entry(name)
    if e.sup is None or not e.sup.alive:
        raise StateError(
            f"cannot {op} domain {name!r}: it is not running (state: {e.state})",
            current=str(e.state), required="running",
        )  # fmt: skip
    return e.sup


async def _migrate_to(sup: Supervisor, fd: int) -> None:
    mon = sup._require_monitor()
    await mon.execute("migrate-set-parameters", {"max-bandwidth": MAX_BANDWIDTH})
    await mon.send_fd(fd, FDNAME)
    await mon.execute("migrate", {"uri": f"fd:{FDNAME}"})
    deadline = time.monotonic() + MIGRATE_TIMEOUT_S
    while True:
        info = await mon.execute("query-migrate")
        status = str(info.get("status", ""))
        if status == "completed":
            return
        if status in ("failed", "cancelled"):
            why = info.get("error-desc", status)
            raise QmpError(f"QEMU could not write the guest's state: {why}")
        if time.monotonic() > deadline:
            with contextlib.suppress(QmpError):
                await mon.execute("migrate_cancel")
            raise QmpError(f"saving the guest's state took over {MIGRATE_TIMEOUT_S:g} s")
        await asyncio.sleep(0.02)


async def save(svc: Service, name: str, file: Path | None, *, paused: bool | None = None
               ) -> SaveResult:  # fmt: skip
    """Save ``name``'s state to ``file`` (None: the managed save image) and stop it.

    ``paused``: the state a restore leaves the guest in (default: as it was).
    """
    if file is not None and not file.is_absolute():
        raise ConfigError(f"save file {file} must be an absolute path")
    async with svc.locks.hold(DomainKey(name), "save"):
        e = svc.entry(name)
        sup = _running(svc, name, "save")
        if file is None and not e.persistent:
            raise ConfigError(f"domain {name!r} is transient: use `virtkit save` with a file")
        booted = domain_from_mapping(sup.record.domain, "runtime record")
        dest = file or managed_save_path(svc, e.domain)
        dest.parent.mkdir(parents=True, exist_ok=True)
        was_running = sup.state is not State.PAUSED
        header = {"name": name, "uuid": booted.uuid, "domain": sup.record.domain,
                  "running": was_running if paused is None else not paused,
                  "saved_at": time.time()}  # fmt: skip
        tmp = dest.with_name(f".{dest.name}.part")
        t0 = time.monotonic()
        if was_running:
            await sup.suspend()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if was_running:
                await sup.resume()
            raise ConfigError(f"cannot write save file {dest}: {exc.strerror}") from None
        try:
            head = encode_header(header)
            if os.write(fd, head) != len(head):
                raise ConfigError(f"cannot write save file {dest}: short write (disk full?)")
            await _migrate_to(sup, fd)
            await asyncio.get_running_loop().run_in_executor(None, os.fsync, fd)
            os.replace(tmp, dest)
            fsync_dir(dest.parent)
        except BaseException:
            tmp.unlink(missing_ok=True)
            if was_running and sup.alive:
                with contextlib.suppress(QmpError):
                    await sup.resume()
            raise
        finally:
            os.close(fd)
        await sup.quit(Reason.SAVED)
    size = dest.stat().st_size
    svc.bus.publish(name, "saved", str(dest))
    return SaveResult(str(dest), size, round(time.monotonic() - t0, 3))


async def _start_from(svc: Service, name: str, path: Path, offset: int, dom: Domain,
                      paused: bool) -> Entry:  # fmt: skip
    """Start ``name`` from the state in ``path`` (the caller holds the domain's lock)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.lseek(fd, offset, os.SEEK_SET)
        return await svc._start_locked(name, paused, dom, incoming_fd=fd)
    finally:
        os.close(fd)


def _domain_of(header: dict[str, Any], path: Path) -> Domain:
    return domain_from_mapping(header["domain"], f"save file {path}")


async def restore(svc: Service, file: Path, paused: bool | None = None) -> Entry:
    """virsh restore: the domain of the save file runs again (transient if undefined)."""
    if not file.is_absolute():
        raise ConfigError(f"save file {file} must be an absolute path")
    loop = asyncio.get_running_loop()
    header, offset = await loop.run_in_executor(None, read_header, file)
    dom = _domain_of(header, file)
    existing = svc.entries.get(dom.name)
    if existing is not None and existing.domain.uuid != dom.uuid:
        raise ConfigError(
            f"save file {file} holds domain {dom.name!r} with uuid {dom.uuid}, but the defined "
            f"domain of that name has uuid {existing.domain.uuid}; undefine it first"
        )
    created = existing is None
    if created:
        svc.add_transient(dom)
    try:
        async with svc.locks.hold(DomainKey(dom.name), "restore"):
            run_paused = not header.get("running", True) if paused is None else paused
            e = await _start_from(svc, dom.name, file, offset, dom, run_paused)
    except BaseException:
        if created:
            svc.forget_definition(dom.name)
        raise
    svc.bus.publish(dom.name, "restored", str(file))
    return e


async def start_managed(svc: Service, name: str, paused: bool, force_boot: bool
                        ) -> Entry | None:  # fmt: skip
    """``start`` with a managed save image: resume from it (None: there is none)."""
    e = svc.entry(name)
    path = managed_save_path(svc, e.domain)
    if e.active or not path.exists():
        return None
    if force_boot:
        path.unlink(missing_ok=True)
        svc.bus.publish(name, "managedsave-removed", "discarded by start --force-boot")
        return None
    header, offset = read_header(path)
    dom = _domain_of(header, path)
    if dom.uuid != e.domain.uuid:
        raise ConfigError(f"managed save image {path} belongs to another domain; remove it")
    try:
        started = await _start_from(svc, name, path, offset, dom, paused)
    except QemuError as exc:
        raise QemuError(
            f"{exc.message}\nthe managed save image {path} is kept: `virtkit start --force-boot "
            f"{name}` boots afresh, `virtkit managedsave-remove {name}` discards it"
        ) from None
    path.unlink(missing_ok=True)
    svc.bus.publish(name, "restored", "from the managed save image")
    return started


async def managed_save_remove(svc: Service, name: str) -> bool:
    """Delete the managed save image; False if there was none."""
    async with svc.locks.hold(DomainKey(name), "managedsave-remove"):
        path = managed_save_path(svc, svc.entry(name).domain)
        if not path.exists():
            return False
        path.unlink()
    svc.bus.publish(name, "managedsave-removed", str(path))
    return True
