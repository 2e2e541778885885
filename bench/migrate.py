"""Live migration: total time and downtime, virtkit vs a raw QMP migration.

    python -m bench.migrate [--runs N]

The tiny guest (256 MiB, TCG) migrates back and forth between two virtkit daemons on
this host (unix:// API, stream on 127.0.0.1), idle and while it dirties memory
(a loop writing random data into a RAM-backed file). The same guest, with the argv
virtkit builds, is migrated between two bare QEMUs by hand over QMP: spawn the
destination with ``-incoming defer``, migrate-incoming, migrate, poll query-migrate,
cont on the destination, quit the source. virtkit's overhead is the difference of
the end-to-end times (call to guest running over there and the source gone), after
one uncounted round trip (a daemon's first QEMU start probes the binary, ~0.5 s once).
Downtime is QEMU's own number (query-migrate ``downtime``). libvirt cannot migrate
to its own host, so there is no virsh column. Prints a Markdown table and writes
bench/results/migrate.json. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._daemon import BenchDaemon
from virtkit.client.client import Client
from virtkit.errors import QmpError
from virtkit.model.domain import Accel, Domain
from virtkit.qemu import caps as capsmod
from virtkit.qemu.argv import RunPaths, build_argv
from virtkit.qemu.qmp import Monitor

RESULTS = Path(__file__).with_name("results")
UUID = "00000000-0000-4000-8000-00000000b00c"
DIRTY = "while true; do dd if=/dev/urandom of=/dirty bs=1M count=24 2>/dev/null; done &"
UNLIMITED = 1 << 40
WARMUP = 2  # a round trip first, not counted (page cache, capability probes)


def med(xs: list[float]) -> float:
    return round(statistics.median(xs), 1) if xs else float("nan")


def wait_file(path: Path, marker: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and marker in path.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{marker!r} not in {path} after {timeout_s} s")


def serial_send(sock: str, line: str) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    s.sendall(line.encode() + b"\n")
    time.sleep(0.5)
    s.close()


# -- virtkit: two daemons --------------------------------------------------------------------


def virtkit_runs(kernel: str, initrd: str, runs: int, dirty: bool) -> list[dict[str, float]]:
    out = []
    with BenchDaemon() as a, BenchDaemon() as b:
        daemons = [a, b]
        ca = Client(f"unix://{a.socket}")
        boot = {"kernel": kernel, "initrd": initrd, "cmdline": "console=ttyS0"}
        ca.define_config({"name": "mb", "uuid": UUID, "memory_mib": 256, "accel": "tcg",
                          "boot": boot})  # fmt: skip
        ca.action("mb", "start")
        wait_file(a.base / "state" / "log" / "mb.console.log", "tiny# ")
        if dirty:
            serial = a.base / "run" / "qemu" / UUID.replace("-", "")[:16] / "serial.sock"
            serial_send(str(serial), DIRTY)
            time.sleep(3)
        for i in range(runs + WARMUP):
            src, dst = daemons[i % 2], daemons[(i + 1) % 2]
            c = Client(f"unix://{src.socket}")
            t0 = time.perf_counter()
            c.migrate("mb", f"unix://{dst.socket}", live=True)
            while (state := c.job("mb"))["current"] is not None:
                time.sleep(0.005)
            wall_ms = (time.perf_counter() - t0) * 1000
            view = state["completed"]
            if view["type"] != "completed":
                raise RuntimeError(f"virtkit migration failed: {view['error']}")
            if i < WARMUP:  # each daemon's first QEMU start probes the binary's capabilities
                continue
            out.append({"end_to_end_ms": wall_ms, "job_ms": float(view["elapsed_ms"]),
                        "downtime_ms": float(view["downtime_ms"] or 0),
                        "memory_mib": view["memory_processed_bytes"] / (1 << 20)})  # fmt: skip
            c.close()
    return out


# -- raw QMP between two bare QEMUs ----------------------------------------------------------


async def _spawn(argv: list[str], qmp: str) -> tuple[subprocess.Popen[bytes], Monitor]:
    Path(qmp).unlink(missing_ok=True)
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    while not os.path.exists(qmp):
        await asyncio.sleep(0.002)
    mon = Monitor("raw", qmp)
    while True:
        try:
            await mon.connect(10)
            return proc, mon
        except Exception:
            mon = Monitor("raw", qmp)
            await asyncio.sleep(0.005)


async def _raw(kernel: str, initrd: str, runs: int, dirty: bool) -> list[dict[str, float]]:
    caps = await capsmod.probe(capsmod.find_qemu(), None)
    base = Path(tempfile.mkdtemp(prefix="vkr", dir="/tmp"))
    dom = Domain(
        name="raw", uuid=UUID, memory_mib=256,
        boot={"kernel": kernel, "initrd": initrd, "cmdline": "console=ttyS0"},
    )  # fmt: skip
    sides = []
    for n in ("a", "b"):
        d = base / n
        d.mkdir()
        sides.append(RunPaths(str(d / "qmp.sock"), str(d / "serial.sock"), str(d / "pid"),
                              str(d / "console.log")))  # fmt: skip
    src_proc, src = await _spawn(build_argv(dom, caps, sides[0], Accel.TCG), sides[0].qmp)
    await src.cont()
    out = []
    try:
        await asyncio.get_running_loop().run_in_executor(
            None, wait_file, Path(sides[0].console_log), "tiny# ")  # fmt: skip
        if dirty:
            serial_send(sides[0].serial, DIRTY)
            await asyncio.sleep(3)
        for i in range(runs + WARMUP):
            paths = sides[(i + 1) % 2]
            t0 = time.perf_counter()
            argv = build_argv(dom, caps, paths, Accel.TCG, incoming_defer=True)
            dst_proc, dst = await _spawn(argv, paths.qmp)
            await dst.execute("migrate-incoming", {"uri": "tcp:127.0.0.1:0"})
            port = (await dst.execute("query-migrate"))["socket-address"][0]["port"]
            await src.execute("migrate-set-parameters", {"max-bandwidth": UNLIMITED})
            await src.execute("migrate", {"uri": f"tcp:127.0.0.1:{port}"})
            while (info := await src.execute("query-migrate"))["status"] != "completed":
                if info["status"] in ("failed", "cancelled"):
                    raise RuntimeError(f"raw migration failed: {info}")
                await asyncio.sleep(0.005)
            while (await dst.query_status()).status == "inmigrate":
                await asyncio.sleep(0.002)
            await dst.cont()
            with contextlib.suppress(QmpError):
                await src.quit()
            await asyncio.get_running_loop().run_in_executor(None, src_proc.wait)
            wall_ms = (time.perf_counter() - t0) * 1000
            await src.close()
            ram = info.get("ram", {})
            src_proc, src = dst_proc, dst
            if i < WARMUP:
                continue
            out.append({"end_to_end_ms": wall_ms, "qemu_total_ms": float(info["total-time"]),
                        "downtime_ms": float(info.get("downtime", 0)),
                        "memory_mib": int(ram.get("transferred", 0)) / (1 << 20)})  # fmt: skip
    finally:
        await src.close()
        src_proc.kill()
        src_proc.wait()
        shutil.rmtree(base, ignore_errors=True)
    return out


def raw_runs(kernel: str, initrd: str, runs: int, dirty: bool) -> list[dict[str, float]]:
    return asyncio.run(_raw(kernel, initrd, runs, dirty))


def col(samples: list[dict[str, float]], key: str) -> float:
    return med([s[key] for s in samples if key in s])


def measure(runs: int) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    from virtkit.guests.tiny import ensure_tiny

    tiny = ensure_tiny()
    kernel, initrd = str(tiny.kernel), str(tiny.initrd)
    data: dict[str, Any] = {"runs": runs, "cpus": os.cpu_count()}
    rows = []
    for load in ("idle", "dirtying"):
        dirty = load == "dirtying"
        raw = raw_runs(kernel, initrd, runs, dirty)
        vk = virtkit_runs(kernel, initrd, runs, dirty)
        data[load] = {"raw_qmp": raw, "virtkit": vk}
        overhead = col(vk, "end_to_end_ms") - col(raw, "end_to_end_ms")
        data[load]["virtkit_overhead_ms"] = round(overhead, 1)
        rows.append((load, col(raw, "end_to_end_ms"), col(raw, "qemu_total_ms"),
                     col(raw, "downtime_ms"), col(vk, "end_to_end_ms"), col(vk, "job_ms"),
                     col(vk, "downtime_ms"), overhead, col(vk, "memory_mib")))  # fmt: skip
    return data, rows


def run(quick: bool = False) -> dict[str, float]:
    """Headline numbers for bench/all.py (flat, in ms)."""
    _, rows = measure(2 if quick else 4)
    out: dict[str, float] = {}
    for r in rows:
        out |= {f"{r[0]} total (virtkit, ms)": r[4], f"{r[0]} downtime (virtkit, ms)": r[6],
                f"{r[0]} total (raw QMP, ms)": r[1], f"{r[0]} downtime (raw QMP, ms)": r[3],
                f"{r[0]} virtkit overhead (ms)": round(r[7], 1)}  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    ap.add_argument("--runs", type=int, default=4)
    args = ap.parse_args(argv)
    data, rows = measure(args.runs)
    print(f"\nLive migration of the tiny guest, 256 MiB, TCG, loopback (median of {args.runs};"
          f" {os.cpu_count()} CPUs)\n")  # fmt: skip
    print(
        "| guest | raw QMP end-to-end | raw QEMU total | raw downtime | virtkit end-to-end "
        "| virtkit job | virtkit downtime | virtkit overhead | RAM sent |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} ms | {r[2]} ms | {r[3]} ms | {r[4]} ms | {r[5]} ms "
              f"| {r[6]} ms | {r[7]:.1f} ms | {r[8]:.1f} MiB |")  # fmt: skip
    print("\nvirsh: not measured (libvirt cannot migrate a guest to its own host)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "migrate.json").write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
