"""Stats gathering and rendering without QEMU: fake /proc, sysfs and monitors."""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from virtkit.cli.stats import format_domstats
from virtkit.cli.top import compute_rows, csv_rows, sort_rows, text_frame
from virtkit.daemon.domains import stats
from virtkit.errors import ConfigError, NotFoundError, QmpError
from virtkit.model.domain import Domain
from virtkit.model.state import Reason, State
from virtkit.qemu.argv import tap_name

BLOCKSTATS = [
    {"device": "", "node-name": "drive-vda", "qdev": "/machine/peripheral/vda/virtio-backend",
     "stats": {"rd_bytes": 4096, "rd_operations": 2, "wr_bytes": 512, "wr_operations": 1}},
    {"device": "", "node-name": "drive-sdb", "stats": {"rd_bytes": 1}},
    {"device": "", "stats": {}},  # no name: skipped
]  # fmt: skip


def test_parse_groups() -> None:
    assert stats.parse_groups(None) == set(stats.GROUPS)
    assert stats.parse_groups("cpu, block") == {"cpu", "block"}
    with pytest.raises(ConfigError, match="unknown stats group"):
        stats.parse_groups("cpu,disk")


def test_block_stats_names_and_counters() -> None:
    dom = Domain.model_validate({"name": "d", "disks": [{"path": "/i/a.qcow2", "target": "vda"}]})
    out = stats.block_stats(dom, BLOCKSTATS)
    assert out["block.count"] == 2
    assert out["block.0.name"] == "vda" and out["block.0.path"] == "/i/a.qcow2"
    assert (out["block.0.rd.bytes"], out["block.0.rd.reqs"]) == (4096, 2)
    assert (out["block.0.wr.bytes"], out["block.0.wr.reqs"]) == (512, 1)
    assert out["block.1.name"] == "sdb" and "block.1.path" not in out
    assert stats.block_stats(dom, None) == {"block.count": 0}


def test_net_stats_tap_from_sysfs_user_zero(tmp_path: Path) -> None:
    dom = Domain.model_validate(
        {
            "name": "n",
            "uuid": "12345678-1234-4234-8234-123456789abc",
            "nics": [{"type": "user"}, {"type": "bridge", "source": "br0"}],
        }
    )
    base = tmp_path / tap_name(dom, 1) / "statistics"
    base.mkdir(parents=True)
    for k, v in {"rx_bytes": 10, "tx_bytes": 20, "rx_packets": 1, "tx_packets": 2}.items():
        (base / k).write_text(f"{v}\n")
    out = stats.net_stats(dom, stats.Host(sys_net=tmp_path))
    assert out["net.count"] == 2
    assert out["net.0.name"] == "nic0" and out["net.0.rx.bytes"] == 0
    assert out["net.1.name"] == tap_name(dom, 1)
    # seen from the guest: what the tap transmits, the guest receives
    assert (out["net.1.rx.bytes"], out["net.1.tx.bytes"]) == (20, 10)
    assert (out["net.1.rx.pkts"], out["net.1.tx.pkts"], out["net.1.rx.drop"]) == (2, 1, 0)


def fake_proc(root: Path, pid: int, utime: int, stime: int, rss_kib: int, tid: int) -> None:
    fields = ["S"] + ["0"] * 10 + [str(utime), str(stime)] + ["0"] * 40
    for d in (root / str(pid), root / str(pid) / "task" / str(tid)):
        d.mkdir(parents=True, exist_ok=True)
        (d / "stat").write_text(f"{pid} (qemu-system-x86) " + " ".join(fields) + "\n")
    (root / str(pid) / "status").write_text(f"Name:\tqemu\nVmRSS:\t  {rss_kib} kB\n")


class FakeMonitor:
    connected = True

    def __init__(self, answers: dict[str, Any], stall: bool = False) -> None:
        self.answers = answers
        self.stall = stall

    async def execute(self, cmd: str) -> Any:
        if self.stall:
            await asyncio.sleep(60)
        if cmd not in self.answers:
            raise QmpError(f"QEMU refused {cmd!r}")
        return self.answers[cmd]


@dataclass
class FakeRecord:
    pid: int
    id: int


@dataclass
class FakeSup:
    record: FakeRecord
    monitor: FakeMonitor


@dataclass
class FakeEntry:
    domain: Domain
    sup: FakeSup | None = None
    state: State = State.SHUTOFF
    reason: Reason = Reason.UNKNOWN

    @property
    def active(self) -> bool:
        return self.sup is not None


@dataclass
class FakeSvc:
    entries: dict[str, FakeEntry] = field(default_factory=dict)


def make_svc(tmp_path: Path) -> FakeSvc:
    proc = tmp_path / "proc"
    fake_proc(proc, 100, utime=150, stime=50, rss_kib=2048, tid=101)
    fake_proc(proc, 200, utime=1, stime=1, rss_kib=1024, tid=201)
    disk = {"path": "/i/a.qcow2", "target": "vda"}
    answers = {"query-blockstats": BLOCKSTATS, "query-balloon": {"actual": 256 << 20},
               "query-cpus-fast": [{"cpu-index": 0, "thread-id": 101}]}  # fmt: skip
    svc = FakeSvc()
    for name, pid, stall in (("good", 100, False), ("stuck", 200, True)):
        dom = Domain.model_validate({"name": name, "memory_mib": 512, "disks": [disk]})
        sup = FakeSup(FakeRecord(pid, pid // 100), FakeMonitor(answers, stall))
        svc.entries[name] = FakeEntry(dom, sup, State.RUNNING, Reason.BOOTED)
    svc.entries["off"] = FakeEntry(Domain.model_validate({"name": "off"}))
    return svc


def test_collect_one_pass_survives_a_stuck_monitor(tmp_path: Path) -> None:
    svc = make_svc(tmp_path)
    host = stats.Host(proc=tmp_path / "proc", sys_net=tmp_path / "net")
    ts, samples = asyncio.run(stats.collect(svc, host=host, timeout_s=0.2))
    assert ts > 0
    by = {s.name: s for s in samples}
    assert [s.name for s in samples] == ["good", "off", "stuck"]
    g = by["good"].stats
    tick = stats.NS_PER_TICK
    assert (g["cpu.time"], g["cpu.user"], g["cpu.system"]) == (200 * tick, 150 * tick, 50 * tick)
    assert (g["state.state"], g["state.reason"]) == (1, 1)
    assert (g["balloon.current"], g["balloon.maximum"], g["balloon.rss"]) == (262144, 524288, 2048)
    assert (g["vcpu.current"], g["vcpu.0.time"]) == (1, 200 * tick)
    assert g["block.count"] == 2 and g["net.count"] == 0
    s = by["stuck"].stats  # no QMP answers: /proc keys and defaults only
    assert s["cpu.time"] == 2 * tick and s["block.count"] == 0
    assert s["balloon.current"] == 512 * 1024 and s["vcpu.current"] == 1
    assert by["off"].stats == {"state.state": 5, "state.reason": 0} and by["off"].id is None

    _, only = asyncio.run(stats.collect(svc, ["good"], {"cpu"}, host=host))
    assert set(only[0].stats) == {"cpu.time", "cpu.user", "cpu.system"}
    _, act = asyncio.run(stats.collect(svc, active_only=True, host=host, timeout_s=0.1))
    assert [x.name for x in act] == ["good", "stuck"]
    with pytest.raises(NotFoundError):
        asyncio.run(stats.collect(svc, ["nope"], host=host))


def answer(ts: float, cpu_ns: int, rd: int, rid: int | None = 1) -> dict[str, Any]:
    st = {
        "cpu.time": cpu_ns,
        "balloon.rss": 10240,
        "block.count": 1,
        "block.0.rd.bytes": rd,
        "block.0.rd.reqs": rd // 512,
        "net.count": 1,
        "net.0.rx.bytes": rd,
        "net.0.tx.bytes": 0,
    }
    return {"timestamp": ts,
            "domains": [{"name": "a", "id": rid, "state": "running", "stats": st},
                        {"name": "off", "id": None, "state": "shut off", "stats": {}}]}  # fmt: skip


def test_top_rows_rates_sorting_and_output() -> None:
    first = compute_rows(None, answer(10.0, 0, 0))
    assert len(first) == 1 and first[0].cpu_pct == 0.0
    rows = compute_rows(answer(10.0, 0, 0), answer(12.0, 1_000_000_000, 4096))
    r = rows[0]
    assert (r.id, r.name, r.mem_mib) == (1, "a", 10.0)
    assert r.cpu_pct == pytest.approx(50.0)
    assert (r.rdby, r.rdrq, r.rxby, r.wrby) == (2048.0, 4.0, 2048.0, 0.0)
    # a restarted domain (new id) starts from zero instead of a negative rate
    assert compute_rows(answer(10.0, 9, 9, rid=1), answer(12.0, 0, 0, rid=2))[0].cpu_pct == 0.0
    b = r._replace(id=2, name="b", cpu_pct=90.0, mem_mib=1.0)
    assert [x.name for x in sort_rows([r, b], "cpu")] == ["b", "a"]
    assert [x.name for x in sort_rows([b, r], "name")] == ["a", "b"]
    assert [x.name for x in sort_rows([b, r], "mem")] == ["a", "b"]
    assert [x.name for x in sort_rows([b, r], "id")] == ["a", "b"]
    frame = text_frame([r], 12.0)
    assert "CPU%" in frame.splitlines()[1] and frame.splitlines()[2].split()[:3] == [
        "1",
        "a",
        "50.0",
    ]
    text = io.StringIO()
    w = csv.writer(text)
    w.writerows(csv_rows([r], 12.0))
    row = next(csv.reader(io.StringIO(text.getvalue())))
    assert row[1:5] == ["1", "a", "50.00", "10.00"]


def test_format_domstats_like_virsh() -> None:
    out = format_domstats([{"name": "a", "stats": {"state.state": 1, "cpu.time": 5}},
                           {"name": "b", "stats": {"state.state": 5}}])  # fmt: skip
    assert out == ("Domain: 'a'\n  state.state=1\n  cpu.time=5\n\n"
                   "Domain: 'b'\n  state.state=5\n\n")  # fmt: skip
    assert format_domstats([]) == ""
