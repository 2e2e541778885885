"""Stats on a real tiny guest under TCG: domstats, top --batch / --csv, /metrics,
and a bench-style pass over 200 shut-off domains + 1 running."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Daemon, qemu_pids, tiny_yaml

pytestmark = pytest.mark.qemu


def boot(daemon: Daemon, tiny: object, tmp_path: Path, name: str) -> None:
    img = tmp_path / f"{name}.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "16M"], check=True)
    f = tmp_path / f"{name}.yaml"
    f.write_text(tiny_yaml(tiny, name, extra=f"accel: tcg\ndisks:\n  - path: {img}\n"))
    daemon.cli("define", str(f))
    daemon.cli("start", name)
    daemon.wait_console(name, "tiny# ")


def metrics(daemon: Daemon) -> str:
    r = subprocess.run(["curl", "-sS", "--unix-socket", str(daemon.socket),
                        "http://localhost/metrics"], capture_output=True, text=True,
                       check=True, timeout=30)  # fmt: skip
    return r.stdout


def test_domstats_top_and_metrics(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    boot(daemon, tiny, tmp_path, "st1")

    out = daemon.cli("domstats", "st1").stdout
    lines = out.splitlines()
    assert lines[0] == "Domain: 'st1'" and lines[-1] == ""
    kv = dict(line.strip().split("=", 1) for line in lines[1:-1])
    keys = (
        "state.state state.reason cpu.time cpu.user cpu.system balloon.current "
        "balloon.maximum balloon.rss vcpu.current vcpu.maximum block.count block.0.name "
        "block.0.rd.reqs block.0.rd.bytes block.0.wr.reqs block.0.wr.bytes net.count"
    )
    for key in keys.split():
        assert key in kv, (key, out)
    assert kv["state.state"] == "1" and int(kv["cpu.time"]) > 0
    assert kv["block.0.name"] == "vda" and int(kv["block.0.rd.bytes"]) > 0
    assert int(kv["balloon.rss"]) > 0 and kv["vcpu.current"] == "1"

    only = daemon.cli("domstats", "--cpu-total", "--json", "st1").stdout
    doc = json.loads(only)
    assert doc["timestamp"] > 0
    assert set(doc["domains"][0]["stats"]) == {"cpu.time", "cpu.user", "cpu.system"}
    assert daemon.cli("domstats", "nope", check=False).returncode != 0

    # an idle guest can spend less than 0.005 % of a CPU in half a second: keep it busy
    daemon.cli("console", "st1", input="while :; do :; done &\n", check=False)
    r = daemon.cli("top", "--batch", "--iterations", "2", "--delay", "1")
    frames = [f for f in r.stdout.split("\n\n") if f.strip()]
    assert len(frames) == 2, r.stdout
    row = next(line for line in frames[-1].splitlines() if " st1 " in line)
    assert float(row.split()[2]) > 0, r.stdout

    r = daemon.cli("top", "--csv", "-", "-n", "2", "-d", "0.5", "--sort", "name")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 2 and {x["name"] for x in rows} == {"st1"}
    assert float(rows[-1]["cpu_pct"]) > 0 and float(rows[-1]["mem_mib"]) > 0

    text = metrics(daemon)
    assert 'virtkit_domain_state{domain="st1",state="running"} 1.0' in text
    for series in ("virtkit_domain_cpu_seconds_total", "virtkit_domain_memory_rss_bytes",
                   "virtkit_domain_balloon_bytes", "virtkit_domain_block_read_bytes_total",
                   "virtkit_domain_block_write_bytes_total", "virtkit_domain_net_rx_bytes_total",
                   "virtkit_domain_net_tx_bytes_total"):  # fmt: skip
        assert f'{series}{{domain="st1"}}' in text, series
    assert 'virtkit_api_request_seconds_count{method="GET",route="/v1/stats"}' in text

    # a frozen QEMU (monitor silent) must not stall the pass: its QMP keys just go missing
    (pid,) = qemu_pids(str(daemon.run_dir))
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        frozen = json.loads(daemon.cli("domstats", "--json", "--block", "--cpu-total").stdout)
        took = time.monotonic() - t0
    finally:
        os.kill(pid, signal.SIGCONT)
    st = frozen["domains"][0]["stats"]
    assert st["block.count"] == 0 and st["cpu.time"] > 0 and took < 10, (st, took)
    assert int(daemon.cli("domstats", "--block", "st1").stdout.split("block.count=")[1][0]) == 1
    daemon.cli("destroy", "st1")


def test_stats_pass_with_200_defined_domains(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    """Bench-style: one stats pass over 201 domains answers (timings printed, not asserted)."""
    boot(daemon, tiny, tmp_path, "run1")
    from virtkit.client.client import Client

    c = Client(f"unix://{daemon.socket}", autostart=False)
    try:
        for i in range(200):
            c.define_config({"name": f"off{i:03d}", "memory_mib": 64})
        t0 = time.perf_counter()
        res = c.stats()
        t_all = time.perf_counter() - t0
        t0 = time.perf_counter()
        active = c.stats(active=True)
        t_active = time.perf_counter() - t0
    finally:
        c.close()
    assert len(res["domains"]) == 201
    assert [d["name"] for d in active["domains"]] == ["run1"]
    print(f"\n/v1/stats: 201 domains {t_all * 1000:.1f} ms; active only {t_active * 1000:.1f} ms")
    assert "virtkit_domain_state" in metrics(daemon)
