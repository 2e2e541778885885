"""virtkit side by side with libvirt (and bare QEMU), measured in one run on this host.

    python -m bench all [--with-libvirt] [--quick] [--out bench/results]

``--with-libvirt`` installs libvirt's daemon and clients from the distribution if they
are missing, starts libvirtd and virtlogd itself and measures the same tiny guest
through virsh, interleaved with virtkit (A B A B, medians). ``--quick`` takes fewer
samples (the whole run stays within ~15 minutes on 2 cores). Writes a Markdown table
(results/all.md) and the raw samples (results/all.json). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import _libvirt as lv
from bench import api_load, suite
from bench._daemon import BenchDaemon
from bench.managers import Libvirt, Manager, Virtkit

RESULTS = Path(__file__).with_name("results")
# idle guests for the memory rows: 50 TCG guests take ~8 min per manager to boot on 2 cores
MEMORY_COUNTS = {False: [1, 10, 50], True: [1, 10, 20]}


def ms(samples: list[float] | None) -> str:
    return f"{statistics.median(samples) * 1000:.0f} ms" if samples else "—"


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * q))]


def host_line() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                .splitlines() if ln.startswith("model name")), "?")  # fmt: skip
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                          text=True, check=False).stdout.splitlines()[0]  # fmt: skip
    return (f"{os.cpu_count()} CPUs ({cpu}), {mem} GiB, {platform.system()} "
            f"{platform.release()}, {qemu}, TCG")  # fmt: skip


@contextlib.contextmanager
def managers(with_libvirt: bool) -> Iterator[list[Manager]]:
    from virtkit.guests.tiny import ensure_tiny

    tiny = ensure_tiny()
    kernel, initrd = str(tiny.kernel), str(tiny.initrd)
    pvh = str(tiny.pvh_kernel) if tiny.pvh_kernel else None
    with BenchDaemon() as d, contextlib.ExitStack() as stack:
        ms_: list[Manager] = [Virtkit(d, kernel, initrd, pvh)]
        if with_libvirt:
            lv.install()
            lib = Libvirt(kernel, initrd)
            stack.enter_context(lib.daemons)
            lv.cleanup()
            ms_.append(lib)
        try:
            yield ms_
        finally:
            for m in ms_:
                with contextlib.suppress(Exception):
                    m.undefine_all()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench all", description=__doc__)
    ap.add_argument("--with-libvirt", action="store_true", help="measure libvirt too")
    ap.add_argument("--quick", action="store_true", help="fewer samples (~15 min)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    runs = 3 if args.quick else 7
    t_all = time.monotonic()
    data: dict[str, Any] = {"host": host_line(), "quick": args.quick, "runs": runs}
    with managers(args.with_libvirt) as ms_:
        labels = [m.label for m in ms_]

        def step(name: str, fn: Any, *a: Any) -> Any:
            t0 = time.monotonic()
            print(f"bench: {name} ...", flush=True, end="")
            res = fn(*a)
            print(f" {time.monotonic() - t0:.0f} s", flush=True)
            data[name] = res
            return res

        step("warm_up", suite.warm_up, ms_)
        lc = step("lifecycle", suite.lifecycle, ms_, runs)
        cli = step("cli", suite.cli_scaling, ms_, [1, 100, 1000], runs)
        boot = step("boot", suite.boot_times, ms_, runs)
        mem = step("memory", suite.memory_overhead, ms_, MEMORY_COUNTS[args.quick])
        conc = step("concurrent", suite.concurrent_starts, ms_, 20)
        vk = ms_[0]
        assert isinstance(vk, Virtkit)
        api: dict[str, dict[str, float]] = {}
        secs = 3.0 if args.quick else 10.0
        print("bench: api ...", flush=True)
        api["virtkit"] = api_load.summarize(api_load.virtkit_load(str(vk.d.socket), 50, secs))
        if "libvirt" in labels:
            api["libvirt"] = api_load.summarize(api_load.libvirt_load(50, secs))
        data["api"] = api
    mig = migration(args.quick)
    data["migration"] = mig
    data["total_s"] = round(time.monotonic() - t_all, 1)
    table = render(data, labels, lc, cli, boot, mem, conc, api, mig)
    print("\n" + table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "all.md").write_text(table)
    (args.out / "all.json").write_text(json.dumps(data, indent=1))
    return 0


def migration(quick: bool) -> dict[str, Any] | None:
    """Live migration between two virtkit daemons on this host (bench/migrate.py)."""
    try:
        from bench import migrate
    except ImportError:
        return None
    run = getattr(migrate, "run", None)
    if run is None:
        return None
    try:
        return dict(run(quick=quick))
    except Exception as exc:  # a failed row is reported, not fatal to the table
        return {"error": repr(exc)}


def render(data: dict[str, Any], labels: list[str], lc: Any, cli: Any, boot: Any, mem: Any,
           conc: Any, api: Any, mig: Any) -> str:  # fmt: skip
    def cols(fn: Any) -> str:
        return " | ".join(fn(lb) if lb in labels else "not measured" for lb in
                          ("virtkit", "libvirt"))  # fmt: skip

    rows = [
        ("define + start (CLI, to running)", cols(lambda lb: ms(lc[lb]["define_start"]))),
        ("destroy (CLI, to shut off)", cols(lambda lb: ms(lc[lb]["destroy"]))),
        ("shutdown (ACPI) to shut off", cols(lambda lb: ms(lc[lb]["shutdown_off"]))),
    ]
    for n in (1, 100, 1000):
        rows.append((f"`list --all`, {n} domains", cols(lambda lb, n=n: ms(cli[lb][f"list_{n}"]))))
        rows.append((f"`dominfo`, {n} domains",
                     cols(lambda lb, n=n: ms(cli[lb][f"dominfo_{n}"]))))  # fmt: skip
    for label, samples in boot.items():
        who = "libvirt" if label.startswith("libvirt") else "virtkit"
        cell = f"{statistics.median(samples):.2f} s"
        pair = (cell, "") if who == "virtkit" else ("", cell)
        rows.append((f"boot to init marker: {label}", " | ".join(pair)))
    for n in MEMORY_COUNTS[bool(data["quick"])]:
        rows.append((f"QEMU PSS per idle guest, {n} guests", cols(
            lambda lb, n=n: f"{mem[lb][f'qemu_pss_kib_{n}'][0] / 1024:.0f} MiB")))  # fmt: skip
        rows.append((f"manager memory per guest, {n} guests", cols(
            lambda lb, n=n: f"{mem[lb][f'manager_kib_per_guest_{n}'][0]:.0f} KiB")))  # fmt: skip
    # the manager rows are RSS growth over its idle size / N: within noise (can be < 0)
    rows.append(("20 concurrent starts: total", cols(lambda lb: ms(conc[lb]["total"]))))
    rows.append(("20 concurrent starts: p50 / p99 per start", cols(
        lambda lb: f"{pct(conc[lb]['each'], 0.5) * 1000:.0f} / "
                   f"{pct(conc[lb]['each'], 0.99) * 1000:.0f} ms")))  # fmt: skip
    rows.append(("API: list all domains, 50 clients (req/s, p99)", cols(
        lambda lb: f"{api[lb]['rps']:.0f} req/s, p99 {api[lb]['p99_ms']:.1f} ms")))  # fmt: skip
    if mig and "error" not in mig:
        for key, value in mig.items():
            if isinstance(value, int | float):
                rows.append((f"migration: {key}", f"{value} | n/a (same host)"))
    elif mig:
        rows.append(("live migration", f"failed: {mig['error']} | —"))
    else:
        rows.append(("live migration", "bench/migrate.py not available | —"))
    out = [f"Measured {time.strftime('%Y-%m-%d')} on {data['host']}; "
           f"medians of {data['runs']} interleaved runs; whole run {data.get('total_s', '?')} s.",
           "", "| measurement | virtkit | libvirt |", "|---|---|---|"]  # fmt: skip
    out += [f"| {name} | {cells} |" for name, cells in rows]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
