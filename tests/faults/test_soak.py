"""A bounded soak: 50 concurrent API clients doing mixed operations on 20 domains against
a real daemon (no QEMU needed). No domain lost or duplicated, p99 latency printed, the
daemon's open descriptors back to baseline and its memory bounded afterwards.
VIRTKIT_SOAK_S sets the duration (default 30 s; longer on request)."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

from tests.conftest import Daemon
from virtkit.client.client import Client
from virtkit.errors import BusyError, VirtkitError

CLIENTS = 50
DOMAINS = 20
DURATION_S = float(os.environ.get("VIRTKIT_SOAK_S", "30"))


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def uuid(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012x}"


def test_soak(daemon: Daemon) -> None:
    assert daemon.proc is not None
    pid = daemon.proc.pid
    uri = f"unix://{daemon.socket}"
    setup = Client(uri)
    for i in range(DOMAINS):
        setup.define_text(f"name: d{i}\nuuid: {uuid(i + 1)}\nmemory_mib: 64\n", f"d{i}.yaml")
    setup.close()
    time.sleep(0.5)
    base_fds, base_rss = fds(pid), rss_mib(pid)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + DURATION_S

    def worker(n: int) -> None:
        rnd = random.Random(n)
        c = Client(uri, autostart=False, timeout_s=60)
        mine: list[float] = []
        try:
            while time.monotonic() < stop:
                i = rnd.randrange(DOMAINS)
                op = rnd.choice(["list", "info", "config", "events", "autostart", "redefine",
                                 "temp", "missing"])  # fmt: skip
                t0 = time.perf_counter()
                try:
                    if op == "list":
                        names = [d["name"] for d in c.list_domains(True)]
                        if len(set(names)) != len(names):
                            raise AssertionError(f"duplicated domain in {names}")
                    elif op == "info":
                        c.info(f"d{i}")
                    elif op == "config":
                        assert c.config(f"d{i}")["name"] == f"d{i}"
                    elif op == "events":
                        c.events(after=0, domain=f"d{i}")
                    elif op == "autostart":
                        c.set_autostart(f"d{i}", rnd.random() < 0.5)
                    elif op == "redefine":
                        mem = rnd.choice([64, 128])
                        c.define_text(f"name: d{i}\nuuid: {uuid(i + 1)}\nmemory_mib: {mem}\n",
                                      "re.yaml")  # fmt: skip
                    elif op == "temp":
                        c.define_text(f"name: t{n}\nmemory_mib: 64\n", "t.yaml")
                        c.undefine(f"t{n}")
                    else:
                        try:
                            c.info("no-such-domain")
                        except VirtkitError as exc:
                            assert exc.code == "not-found"
                except BusyError:
                    pass  # another client holds the domain's lock: a correct answer
                except (VirtkitError, AssertionError) as exc:
                    with lock:
                        errors.append(f"{op}: {exc}")
                mine.append(time.perf_counter() - t0)
        finally:
            c.close()
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DURATION_S + 120)
    assert not errors, errors[:10]
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    print(f"\nsoak: {len(latencies)} requests in {DURATION_S:g} s from {CLIENTS} clients, "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {latencies[-1] * 1000:.1f} ms")  # fmt: skip
    final = Client(uri)
    names = sorted(d["name"] for d in final.list_domains(True))
    final.close()
    assert names == sorted(f"d{i}" for i in range(DOMAINS)), names
    deadline = time.monotonic() + 10
    while fds(pid) > base_fds + 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert fds(pid) <= base_fds + 2, (base_fds, fds(pid))
    grown = rss_mib(pid) - base_rss
    print(f"soak: daemon fds {base_fds} -> {fds(pid)}, RSS {base_rss:.0f} -> "
          f"{rss_mib(pid):.0f} MiB")  # fmt: skip
    assert grown < 100, f"daemon RSS grew by {grown:.0f} MiB"
