"""Lifecycle latency: bare QEMU vs virtkit (vs virsh when libvirt is installed).

    python -m bench.lifecycle [--runs N] [--domains 1,100,1000]

Measures on this machine, in one run, with medians:
  - bare QEMU: spawn to QMP ready (the same argv virtkit builds, started by hand);
  - virtkit start to running, destroy to shut off (API call and CLI wall time);
  - `virtkit list --all` CLI wall time with 1, 100 and 1000 defined domains;
  - the same through virsh when `virsh` answers (qemu:///system).
Prints a Markdown table and writes bench/results/lifecycle.json. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench._daemon import BenchDaemon, cli_argv
from virtkit.client.client import Client
from virtkit.model.domain import Accel, Domain
from virtkit.qemu import caps as capsmod
from virtkit.qemu.argv import RunPaths, build_argv
from virtkit.qemu.qmp import Monitor

RESULTS = Path(__file__).with_name("results")


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bare_qemu_ready(kernel: str, initrd: str, runs: int) -> list[float]:
    """Spawn QEMU with virtkit's own argv and wait for QMP to be ready; then kill it."""
    caps = asyncio.run(capsmod.probe(capsmod.find_qemu(), None))
    base = Path(tempfile.mkdtemp(prefix="vkb", dir="/tmp"))
    dom = Domain(
        name="bare", uuid="00000000-0000-4000-8000-000000000001", memory_mib=256,
        boot={"kernel": kernel, "initrd": initrd, "cmdline": "console=ttyS0"},
    )  # type: ignore[arg-type]  # fmt: skip
    paths = RunPaths(str(base / "qmp.sock"), str(base / "serial.sock"), str(base / "pid"),
                     str(base / "console.log"))  # fmt: skip
    argv = build_argv(dom, caps, paths, Accel.TCG)
    out = []
    for _ in range(runs):
        for p in (paths.qmp, paths.serial):
            Path(p).unlink(missing_ok=True)

        async def once() -> float:
            t0 = time.perf_counter()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
            while not os.path.exists(paths.qmp):
                await asyncio.sleep(0.002)
            mon = Monitor("bare", paths.qmp)
            await mon.connect(10)
            await mon.cont()
            dt = time.perf_counter() - t0
            await mon.close()
            proc.kill()
            proc.wait()
            return dt

        out.append(asyncio.run(once()))
    shutil.rmtree(base, ignore_errors=True)
    return out


def virtkit_lifecycle(
    d: BenchDaemon, kernel: str, initrd: str, runs: int
) -> dict[str, list[float]]:
    c = Client(f"unix://{d.socket}")
    boot = {"kernel": kernel, "initrd": initrd, "cmdline": "console=ttyS0"}
    c.define_config({"name": "bench", "memory_mib": 256, "accel": "tcg", "boot": boot})
    res: dict[str, list[float]] = {"api_start": [], "api_destroy": [], "cli_start": [],
                                   "cli_destroy": []}  # fmt: skip
    for _ in range(runs):
        res["api_start"].append(timed(lambda: c.action("bench", "start")))
        res["api_destroy"].append(timed(lambda: c.action("bench", "destroy")))
        res["cli_start"].append(timed(lambda: d.cli("start", "bench")))
        res["cli_destroy"].append(timed(lambda: d.cli("destroy", "bench")))
    c.undefine("bench")
    return res


def list_scaling(d: BenchDaemon, counts: list[int], runs: int) -> dict[int, list[float]]:
    c = Client(f"unix://{d.socket}")
    out: dict[int, list[float]] = {}
    defined = 0
    for n in counts:
        while defined < n:
            c.define_config({"name": f"l{defined:05d}", "memory_mib": 64})
            defined += 1
        d.cli("list", "--all")  # warm the page cache
        out[n] = [timed(lambda: d.cli("list", "--all")) for _ in range(runs)]
    return out


def virsh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["virsh", "-c", "qemu:///system", *args], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip


def virsh_lifecycle(kernel: str, initrd: str, runs: int) -> dict[str, list[float]] | None:
    if not shutil.which("virsh") or virsh("version").returncode != 0:
        return None
    xml = f"""<domain type='qemu'><name>vkbench</name><memory unit='MiB'>256</memory>
<os><type arch='x86_64' machine='q35'>hvm</type><kernel>{kernel}</kernel>
<initrd>{initrd}</initrd><cmdline>console=ttyS0</cmdline></os>
<devices><serial type='pty'/></devices></domain>"""
    f = Path(tempfile.mkstemp(suffix=".xml")[1])
    f.write_text(xml)
    virsh("define", str(f))
    res: dict[str, list[float]] = {"cli_start": [], "cli_destroy": [], "list_1": []}
    for _ in range(runs):
        res["cli_start"].append(timed(lambda: virsh("start", "vkbench")))
        res["cli_destroy"].append(timed(lambda: virsh("destroy", "vkbench")))
        res["list_1"].append(timed(lambda: virsh("list", "--all")))
    virsh("undefine", "vkbench")
    f.unlink()
    return res


def interpreter_floor(runs: int) -> list[float]:
    """Python start-up alone on this host (the CLI's floor)."""
    return [timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True))
            for _ in range(runs)]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--domains", default="1,100,1000")
    args = ap.parse_args(argv)
    from virtkit.guests.tiny import ensure_tiny

    tiny = ensure_tiny()
    kernel, initrd = str(tiny.kernel), str(tiny.initrd)
    counts = [int(x) for x in args.domains.split(",")]
    rows: list[tuple[str, str, str]] = []
    data: dict[str, object] = {}

    bare = bare_qemu_ready(kernel, initrd, args.runs)
    data["bare_qemu_ready_s"] = bare
    rows.append(("bare QEMU: spawn to QMP ready + cont", f"{median_ms(bare)} ms", "-"))
    floor = interpreter_floor(args.runs)
    data["python_startup_s"] = floor
    with BenchDaemon() as d:
        lc = virtkit_lifecycle(d, kernel, initrd, args.runs)
        data["virtkit"] = lc
        ls = list_scaling(d, counts, args.runs)
        data["virtkit_list"] = {str(k): v for k, v in ls.items()}
    vs = virsh_lifecycle(kernel, initrd, args.runs)
    data["virsh"] = vs

    def v(key: str) -> str:
        return f"{median_ms(vs[key])} ms" if vs else "not installed"

    rows += [
        ("virtkit start -> running (API)", f"{median_ms(lc['api_start'])} ms", "-"),
        ("virtkit start (CLI wall)", f"{median_ms(lc['cli_start'])} ms", v("cli_start")),
        ("virtkit destroy -> shut off (API)", f"{median_ms(lc['api_destroy'])} ms", "-"),
        ("virtkit destroy (CLI wall)", f"{median_ms(lc['cli_destroy'])} ms", v("cli_destroy")),
    ]
    for n, samples in ls.items():
        rows.append((f"list --all, {n} domains (CLI wall)", f"{median_ms(samples)} ms",
                     v("list_1") if n == 1 else "-"))  # fmt: skip
    rows.append(("python -c pass (interpreter floor)", f"{median_ms(floor)} ms", "-"))
    start_overhead = median_ms(lc["api_start"]) - median_ms(bare)
    print(f"\nLifecycle latency (median of {args.runs}; TCG; {os.cpu_count()} CPUs)\n")
    print("| measurement | virtkit | virsh |\n|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")
    print(f"\nvirtkit start overhead over bare QEMU: {start_overhead:.1f} ms")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "lifecycle.json").write_text(json.dumps(data, indent=1))
    return 0


__all__ = ["cli_argv", "main"]

if __name__ == "__main__":
    sys.exit(main())
