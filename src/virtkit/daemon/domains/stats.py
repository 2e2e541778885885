"""Domain statistics, gathered in one batched pass (virsh domstats, virt-top, /metrics).

One pass over the requested domains: per running domain, the QEMU process's
CPU time and RSS come from /proc, the block counters and balloon size from QMP
(``query-blockstats``, ``query-balloon``, ``query-cpus-fast``), all QMP calls of
all domains issued concurrently, each bounded by ``qmp_timeout_s`` so one
stuck monitor cannot stall the pass (its domain simply lacks those keys).
Shut-off domains cost nothing but their ``state.*`` keys.

Keys follow virsh domstats (``state.state``, ``cpu.time`` in ns, ``balloon.*``
in KiB, ``block.N.rd.bytes``, ``net.N.rx.bytes`` ...). NIC counters: tap NICs
(bridge, network) are read from /sys/class/net/<tap>/statistics, seen from the
guest (the tap's tx is the guest's rx). QEMU has no cheap counter for
user-mode (slirp) NICs: they are listed with zero counters.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from virtkit.errors import NotFoundError, QmpError
from virtkit.model.domain import Domain, NicType
from virtkit.model.state import Reason, State
from virtkit.qemu.argv import tap_name

GROUPS = ("state", "cpu", "balloon", "vcpu", "interface", "block")
QMP_TIMEOUT_S = 1.0
NET_COUNTERS = [f"{d}_{w}" for d in ("rx", "tx") for w in ("bytes", "packets", "errors", "dropped")]
NS_PER_TICK = 1_000_000_000 // os.sysconf("SC_CLK_TCK")

# virDomainState and the most common virDomain*Reason values (libvirt's numbers).
VIR_STATE = {State.RUNNING: 1, State.PAUSED: 3, State.IN_SHUTDOWN: 4, State.SHUTOFF: 5,
             State.UNKNOWN: 0}  # fmt: skip
VIR_REASON: dict[tuple[State, Reason], int] = {
    (State.RUNNING, Reason.BOOTED): 1,
    (State.RUNNING, Reason.UNPAUSED): 5,
    (State.RUNNING, Reason.RESUMED): 5,
    (State.PAUSED, Reason.USER): 1,
    (State.PAUSED, Reason.IO_ERROR): 3,
    (State.SHUTOFF, Reason.SHUTDOWN): 1,
    (State.SHUTOFF, Reason.DESTROYED): 2,
    (State.SHUTOFF, Reason.CRASHED): 3,
    (State.SHUTOFF, Reason.FAILED): 6,
    (State.IN_SHUTDOWN, Reason.USER): 1,
}


@dataclass
class Sample:
    """What the pass learned about one domain."""

    name: str
    id: int | None
    state: str
    stats: dict[str, int | str] = field(default_factory=dict)


@dataclass
class Host:
    """Where /proc and /sys are (injectable for tests)."""

    proc: Path = Path("/proc")
    sys_net: Path = Path("/sys/class/net")


def parse_groups(text: str | None) -> set[str]:
    """``"cpu,block"`` -> {"cpu", "block"}; empty or None means all groups."""
    if not text:
        return set(GROUPS)
    want = {g.strip() for g in text.split(",") if g.strip()}
    bad = want - set(GROUPS)
    if bad:
        from virtkit.errors import ConfigError

        raise ConfigError(
            f"unknown stats group(s) {', '.join(sorted(bad))}; use {', '.join(GROUPS)}"
        )
    return want


def proc_cpu_ns(pid: int, proc: Path, tid: int | None = None) -> tuple[int, int]:
    """(user, system) CPU time in ns of a process (or one of its threads); (0, 0) if gone."""
    path = proc / str(pid) / "stat" if tid is None else proc / str(pid) / "task" / str(tid) / "stat"
    try:
        raw = path.read_bytes()
    except OSError:
        return 0, 0
    rest = raw[raw.rfind(b")") + 2 :].split()
    try:
        return int(rest[11]) * NS_PER_TICK, int(rest[12]) * NS_PER_TICK
    except (IndexError, ValueError):
        return 0, 0


def proc_rss_kib(pid: int, proc: Path) -> int:
    try:
        for line in (proc / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _sysfs_int(path: Path) -> int:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return 0


async def _qmp(mon: Any, cmd: str, timeout_s: float) -> Any:
    """One QMP call bounded by our own deadline (not the monitor's: a slow stats answer
    must not mark the domain's monitor as stalled). None on failure or timeout."""
    if mon is None or not getattr(mon, "connected", False):
        return None
    try:
        return await asyncio.wait_for(mon.execute(cmd), timeout_s)
    except (QmpError, TimeoutError):
        return None


def block_name(entry: dict[str, Any]) -> str:
    """The guest-visible name of a query-blockstats entry (vda, sda, hdc ...)."""
    qdev = str(entry.get("qdev") or "")
    if qdev.startswith("/machine/peripheral/"):
        return qdev.split("/")[3]
    node = str(entry.get("node-name") or "")
    if node:
        return node.removeprefix("drive-")
    return str(entry.get("device") or "")


def block_stats(dom: Domain, blockstats: list[dict[str, Any]] | None) -> dict[str, int | str]:
    paths = {d.target: d.path for d in dom.disks if d.target}
    out: dict[str, int | str] = {}
    rows = [b for b in blockstats or [] if block_name(b)]
    out["block.count"] = len(rows)
    for i, b in enumerate(rows):
        st = b.get("stats", {})
        name = block_name(b)
        out[f"block.{i}.name"] = name
        if paths.get(name):
            out[f"block.{i}.path"] = str(paths[name])
        out[f"block.{i}.rd.reqs"] = int(st.get("rd_operations", 0))
        out[f"block.{i}.rd.bytes"] = int(st.get("rd_bytes", 0))
        out[f"block.{i}.rd.times"] = int(st.get("rd_total_time_ns", 0))
        out[f"block.{i}.wr.reqs"] = int(st.get("wr_operations", 0))
        out[f"block.{i}.wr.bytes"] = int(st.get("wr_bytes", 0))
        out[f"block.{i}.wr.times"] = int(st.get("wr_total_time_ns", 0))
        out[f"block.{i}.fl.reqs"] = int(st.get("flush_operations", 0))
        out[f"block.{i}.fl.times"] = int(st.get("flush_total_time_ns", 0))
    return out


def net_stats(dom: Domain, host: Host) -> dict[str, int | str]:
    out: dict[str, int | str] = {"net.count": len(dom.nics)}
    for i, nic in enumerate(dom.nics):
        if nic.type is NicType.USER:
            out[f"net.{i}.name"] = f"nic{i}"  # no host device; no cheap counters (see above)
            counters = dict.fromkeys(NET_COUNTERS, 0)
        else:
            tap = tap_name(dom, i)
            out[f"net.{i}.name"] = tap
            base = host.sys_net / tap / "statistics"
            counters = {}
            for guest, tapside in (("rx", "tx"), ("tx", "rx")):
                for what in ("bytes", "packets", "errors", "dropped"):
                    counters[f"{guest}_{what}"] = _sysfs_int(base / f"{tapside}_{what}")
        for d in ("rx", "tx"):
            out[f"net.{i}.{d}.bytes"] = counters[f"{d}_bytes"]
            out[f"net.{i}.{d}.pkts"] = counters[f"{d}_packets"]
            out[f"net.{i}.{d}.errs"] = counters[f"{d}_errors"]
            out[f"net.{i}.{d}.drop"] = counters[f"{d}_dropped"]
    return out


async def _one(e: Any, groups: set[str], host: Host, timeout_s: float) -> Sample:
    dom: Domain = e.domain
    sup = e.sup if e.active else None
    rec = sup.record if sup is not None else None
    s = Sample(dom.name, rec.id if rec else None, str(e.state))
    st = s.stats
    if "state" in groups:
        st["state.state"] = VIR_STATE.get(e.state, 0)
        st["state.reason"] = VIR_REASON.get((e.state, e.reason), 0)
    if sup is None or rec is None:
        return s
    mon = sup.monitor
    calls = {"block": "query-blockstats", "balloon": "query-balloon", "vcpu": "query-cpus-fast"}
    wanted = [g for g in calls if g in groups]
    answers = await asyncio.gather(*(_qmp(mon, calls[g], timeout_s) for g in wanted))
    got = dict(zip(wanted, answers, strict=True))
    pid = rec.pid
    if "cpu" in groups:
        user, system = proc_cpu_ns(pid, host.proc)
        st["cpu.time"] = user + system
        st["cpu.user"] = user
        st["cpu.system"] = system
    if "balloon" in groups:
        max_kib = (dom.max_memory_mib or dom.memory_mib) * 1024
        bal = got.get("balloon")
        cur = int(bal["actual"]) // 1024 if isinstance(bal, dict) and "actual" in bal else None
        st["balloon.current"] = cur if cur is not None else dom.memory_mib * 1024
        st["balloon.maximum"] = max_kib
        st["balloon.rss"] = proc_rss_kib(pid, host.proc)
    if "vcpu" in groups:
        cpus = got.get("vcpu")
        st["vcpu.current"] = len(cpus) if isinstance(cpus, list) else dom.vcpus
        st["vcpu.maximum"] = dom.effective_max_vcpus
        if isinstance(cpus, list):
            for c in cpus:
                n = int(c.get("cpu-index", 0))
                st[f"vcpu.{n}.state"] = 1
                u, sy = proc_cpu_ns(pid, host.proc, int(c.get("thread-id", 0)))
                st[f"vcpu.{n}.time"] = u + sy
    if "block" in groups:
        bs = got.get("block")
        st.update(block_stats(dom, bs if isinstance(bs, list) else None))
    if "interface" in groups:
        st.update(net_stats(dom, host))
    return s


async def collect(
    svc: Any,
    names: Iterable[str] | None = None,
    groups: set[str] | None = None,
    *,
    active_only: bool = False,
    host: Host | None = None,
    timeout_s: float = QMP_TIMEOUT_S,
) -> tuple[float, list[Sample]]:
    """(wall-clock timestamp, one Sample per domain) in one concurrent pass.

    Raises NotFoundError for a named domain that does not exist.
    """
    groups = set(GROUPS) if groups is None else groups
    host = host or Host()
    if names:
        entries = []
        for n in names:
            if n not in svc.entries:
                raise NotFoundError(
                    f"domain {n!r} not found; `virtkit list --all` shows the defined domains"
                )
            entries.append(svc.entries[n])
    else:
        entries = sorted(svc.entries.values(), key=lambda e: e.domain.name)
    if active_only:
        entries = [e for e in entries if e.active]
    ts = time.time()
    samples = await asyncio.gather(*(_one(e, groups, host, timeout_s) for e in entries))
    return ts, list(samples)
