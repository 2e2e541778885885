"""What a QEMU binary supports, asked through QMP once and cached on disk.

We never parse ``qemu -help``. A probe starts the binary with ``-machine none``,
connected over a socketpair, and asks ``query-version``, ``query-machines``,
``query-cpu-definitions``, ``qom-list-types`` and ``query-kvm``. The result is
cached per binary identity (realpath, size, mtime).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qemu.qmp import ExecuteError, QMPClient

from virtkit.errors import HostError, QmpError
from virtkit.fsutil import atomic_write_text

CACHE_FORMAT = 2


@dataclass(frozen=True)
class MachineInfo:
    name: str
    alias: str | None
    cpu_max: int
    is_default: bool = False


@dataclass(frozen=True)
class Caps:
    binary: str
    version: str
    machines: dict[str, MachineInfo]
    cpu_models: frozenset[str]
    devices: frozenset[str]
    kvm_present: bool
    key: str = ""
    aliases: dict[str, str] = field(default_factory=dict)
    sandbox: bool = True  # built with seccomp: -sandbox is accepted

    def resolve_machine(self, name: str) -> MachineInfo | None:
        real = self.aliases.get(name, name)
        return self.machines.get(real)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["cpu_models"] = sorted(self.cpu_models)
        d["devices"] = sorted(self.devices)
        d["format"] = CACHE_FORMAT
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Caps:
        machines = {k: MachineInfo(**v) for k, v in d["machines"].items()}
        return cls(
            binary=d["binary"],
            version=d["version"],
            machines=machines,
            cpu_models=frozenset(d["cpu_models"]),
            devices=frozenset(d["devices"]),
            kvm_present=bool(d["kvm_present"]),
            key=d.get("key", ""),
            aliases=dict(d.get("aliases", {})),
            sandbox=bool(d.get("sandbox", True)),
        )


def find_qemu(emulator: str | None = None) -> str:
    """The QEMU binary to use (absolute path), or HostError saying how to install it."""
    if emulator:
        if not os.access(emulator, os.X_OK):
            raise HostError(f"emulator {emulator} is not an executable file")
        return emulator
    found = shutil.which("qemu-system-x86_64")
    if not found:
        raise HostError(
            "qemu-system-x86_64 was not found: install it "
            "(Debian/Ubuntu: apt-get install qemu-system-x86 qemu-utils)"
        )
    return os.path.realpath(found)


def binary_key(binary: str) -> str:
    st = os.stat(binary)
    return f"{os.path.realpath(binary)}:{st.st_size}:{st.st_mtime_ns}"


async def _query(binary: str, timeout_s: float) -> Caps:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    argv = [
        binary, "-machine", "none", "-nodefaults", "-no-user-config", "-display", "none",
        "-S", "-chardev", f"socket,id=mon,fd={theirs.fileno()}", "-mon", "chardev=mon,mode=control",
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    theirs.close()
    qmp = QMPClient("caps")
    try:
        await asyncio.wait_for(qmp.connect(ours), timeout_s)
        version: Any = await qmp.execute("query-version")
        machines: Any = await qmp.execute("query-machines")
        cpus: Any = await qmp.execute("query-cpu-definitions")
        types: Any = await qmp.execute("qom-list-types", {"abstract": False})
        kvm: Any = await qmp.execute("query-kvm")
        try:
            await qmp.execute("query-command-line-options", {"option": "sandbox"})
            sandbox = True
        except ExecuteError:  # "invalid option name": QEMU was built without seccomp
            sandbox = False
        q = version["qemu"]
        minfo: dict[str, MachineInfo] = {}
        aliases: dict[str, str] = {}
        for m in machines:
            minfo[m["name"]] = MachineInfo(
                m["name"], m.get("alias"), int(m.get("cpu-max", 1)), bool(m.get("is-default"))
            )
            if m.get("alias"):
                aliases[m["alias"]] = m["name"]
        return Caps(
            binary=binary,
            version=f"{q['major']}.{q['minor']}.{q['micro']}",
            machines=minfo,
            cpu_models=frozenset(c["name"] for c in cpus),
            devices=frozenset(t["name"] for t in types),
            kvm_present=bool(kvm["present"]),
            key=binary_key(binary),
            aliases=aliases,
            sandbox=sandbox,
        )
    except Exception as exc:
        err = b""
        if proc.poll() is not None and proc.stderr:
            err = proc.stderr.read()
        raise HostError(
            f"could not ask {binary} for its capabilities: {exc!r} {err.decode(errors='replace')}"
        ) from None
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(qmp.disconnect(), 2)
        ours.close()
        proc.kill()
        proc.wait()
        if proc.stderr:
            proc.stderr.close()


async def probe(binary: str, cache_dir: Path | None, *, timeout_s: float = 20.0) -> Caps:
    """Capabilities of ``binary``, from the cache when its identity is unchanged."""
    key = binary_key(binary)
    cache_file = None
    if cache_dir is not None:
        safe = key.split(":", 1)[0].strip("/").replace("/", "_")
        cache_file = cache_dir / f"caps-{safe}.json"
        try:
            data = json.loads(cache_file.read_text())
            if data.get("key") == key and data.get("format") == CACHE_FORMAT:
                return Caps.from_json(data)
        except (OSError, ValueError, KeyError, TypeError):
            pass
    try:
        caps = await _query(binary, timeout_s)
    except QmpError as exc:
        raise HostError(str(exc)) from None
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache_file, json.dumps(caps.to_json(), indent=1))
    return caps
