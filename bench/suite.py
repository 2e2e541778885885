"""The measurements of ``python -m bench all``, each run on every manager, interleaved
(A B A B ...) so drift on the host hits both alike. Each returns raw samples in seconds
(or KiB); bench/all.py takes medians and percentiles and writes the table.
"""

from __future__ import annotations

import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from bench.managers import MARKER, Manager, pss_kib, wait_for

Samples = dict[str, list[float]]


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def wait_state(m: Manager, name: str, want: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while m.state(name) != want:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{m.label}: {name} not {want!r} after {timeout_s} s")
        time.sleep(0.02)


def lifecycle(managers: Sequence[Manager], runs: int) -> dict[str, Samples]:
    """define+start (CLI), destroy (CLI), shutdown (ACPI) to shut off, on a booted guest."""
    out: dict[str, Samples] = {m.label: {"define_start": [], "destroy": [], "shutdown_off": []}
                               for m in managers}  # fmt: skip
    for i in range(runs):
        for m in managers:
            name = f"lc{i}"
            s = out[m.label]
            s["define_start"].append(timed(lambda m=m, n=name: (m.define(n), m.cli("start", n))))
            s["destroy"].append(timed(lambda m=m, n=name: m.cli("destroy", n)))
            m.cli("start", name)
            wait_for(m.console(name), "tiny# " if m.label == "virtkit" else MARKER)
            time.sleep(1.0)  # the guest's acpid is up shortly after its prompt

            def shutdown(m: Manager = m, n: str = name) -> None:
                m.cli("shutdown", n)
                wait_state(m, n, "shut off")

            s["shutdown_off"].append(timed(shutdown))
            m.undefine_all()
    return out


def cli_scaling(
    managers: Sequence[Manager], counts: Sequence[int], runs: int
) -> dict[str, Samples]:
    """``list --all`` and ``dominfo`` CLI wall time with N defined domains."""
    out: dict[str, Samples] = {m.label: {} for m in managers}
    defined = {m.label: 0 for m in managers}
    for n in counts:
        for m in managers:
            bulk_define(m, defined[m.label], n)
            defined[m.label] = n
        for _ in range(runs):
            for m in managers:
                out[m.label].setdefault(f"list_{n}", []).append(
                    timed(lambda m=m: m.cli("list", "--all"))
                )
                out[m.label].setdefault(f"dominfo_{n}", []).append(
                    timed(lambda m=m: m.cli("dominfo", "s00000"))
                )  # fmt: skip
    for m in managers:
        m.undefine_all()
    return out


def bulk_define(m: Manager, have: int, want: int) -> None:
    """Define shut-off domains s<have>..s<want-1> (fast paths: API / one virsh session)."""
    if want <= have:
        return
    from bench import _libvirt as lv
    from bench.managers import Libvirt, Virtkit

    if isinstance(m, Virtkit):
        from virtkit.client.client import Client

        c = Client(f"unix://{m.d.socket}")
        for i in range(have, want):
            c.define_text(m.define_file(f"s{i:05d}").read_text(), "bench.yaml")
            m.names.add(f"s{i:05d}")
        c.close()
    elif isinstance(m, Libvirt):
        import tempfile

        files = []
        for i in range(have, want):
            with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
                f.write(m.xml(f"s{i:05d}"))
            files.append(f.name)
        lv.batch("".join(f"define {p}\n" for p in files))
        for p in files:
            subprocess.run(["rm", "-f", p], check=False)


def boot_times(managers: Sequence[Manager], runs: int) -> Samples:
    """Start to the guest init's boot marker on the serial console."""
    from bench.managers import Libvirt

    out: Samples = {}
    cases: list[tuple[str, Manager, str]] = []
    for m in managers:
        if isinstance(m, Libvirt):
            cases.append(("libvirt virt-install default", m, "virt-install"))
        else:
            cases += [
                ("virtkit default (q35)", m, "default"),
                ("virtkit fast (microvm)", m, "fast"),
            ]
    for i in range(runs):
        for label, m, profile in cases:
            name = f"bt{i}{profile[:4]}"
            m.define(name, profile)
            t0 = time.perf_counter()
            m.cli("start", name)
            wait_for(m.console(name), MARKER, poll_s=0.005)
            out.setdefault(label, []).append(time.perf_counter() - t0)
            m.cli("destroy", name)
            m.undefine_all()
    return out


def memory_overhead(managers: Sequence[Manager], counts: Sequence[int]) -> dict[str, Samples]:
    """Per idle guest: QEMU's PSS, and the manager's own memory growth divided by N."""
    out: dict[str, Samples] = {}
    for m in managers:
        base = sum(pss_kib(p) for p in m.own_pids())
        started = 0
        res: Samples = {}
        for n in counts:
            names = [f"mem{i:03d}" for i in range(started, n)]
            for name in names:
                m.define(name)
            with ThreadPoolExecutor(4) as ex:
                list(ex.map(lambda nm, m=m: m.cli("start", nm), names))
            for name in names:
                wait_for(m.console(name), MARKER, timeout_s=600, poll_s=0.2)
            started = n
            time.sleep(2)  # idle
            qemu = [pss_kib(p) for p in m.qemu_pids()]
            own = sum(pss_kib(p) for p in m.own_pids())
            res[f"qemu_pss_kib_{n}"] = [statistics.mean(qemu) if qemu else 0.0]
            res[f"manager_kib_per_guest_{n}"] = [(own - base) / n]
        m.undefine_all()
        out[m.label] = res
    return out


def concurrent_starts(managers: Sequence[Manager], count: int) -> dict[str, Samples]:
    """``count`` CLI starts at once: the total wall time and each start's own time."""
    out: dict[str, Samples] = {}
    for m in managers:
        names = [f"cc{i:02d}" for i in range(count)]
        for name in names:
            m.define(name)
        each: list[float] = []
        lock = threading.Lock()

        def start(name: str, m: Manager = m, each: list[float] = each,
                  lock: threading.Lock = lock) -> None:  # fmt: skip
            dt = timed(lambda: m.cli("start", name))
            with lock:
                each.append(dt)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=start, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = time.perf_counter() - t0
        out[m.label] = {"total": [total], "each": each}
        m.undefine_all()
    return out


def warm_up(managers: Sequence[Manager]) -> None:
    """One untimed define/start/destroy per manager: libvirt probes QEMU's capabilities
    on first use (a minute under TCG), virtkit probes them once per QEMU binary."""
    for m in managers:
        m.define("warm")
        m.cli("start", "warm")
        m.cli("destroy", "warm")
        m.undefine_all()
