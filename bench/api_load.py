"""Management API throughput: ``clients`` concurrent clients each listing all domains in a
loop for ``seconds``; requests per second and p50/p99 latency.

virtkit: GET /v1/domains?all=true over the daemon's Unix socket (the Python client, one
connection per client). libvirt: virConnectListAllDomains through libvirt's Python
binding (Debian's python3-libvirt, run by the system python), one connection per client.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

LIBVIRT_SCRIPT = r"""
import json, sys, threading, time
import libvirt
clients, seconds = int(sys.argv[1]), float(sys.argv[2])
lat = []
lock = threading.Lock()
conns = [libvirt.open("qemu:///system") for _ in range(clients)]
barrier = threading.Barrier(clients)
def run(c):
    mine = []
    barrier.wait()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        c.listAllDomains(0)
        mine.append(time.perf_counter() - t0)
    with lock:
        lat.extend(mine)
ts = [threading.Thread(target=run, args=(c,)) for c in conns]
t0 = time.perf_counter()
[t.start() for t in ts]
[t.join() for t in ts]
print(json.dumps({"wall": time.perf_counter() - t0, "lat": lat}))
"""


def virtkit_load(socket: str, clients: int, seconds: float) -> dict[str, object]:
    from virtkit.client.client import Client

    lat: list[float] = []
    lock = threading.Lock()
    conns = [Client(f"unix://{socket}") for _ in range(clients)]
    barrier = threading.Barrier(clients)

    def run(c: Client) -> None:
        mine = []
        barrier.wait()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            c.list_domains(True)
            mine.append(time.perf_counter() - t0)
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=run, args=(c,)) for c in conns]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    for c in conns:
        c.close()
    return {"wall": wall, "lat": lat}


def libvirt_load(clients: int, seconds: float) -> dict[str, object]:
    argv = ["/usr/bin/python3", "-c", LIBVIRT_SCRIPT, str(clients), str(seconds)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120, check=True)
    return dict(json.loads(r.stdout))


def summarize(run: dict[str, object]) -> dict[str, float]:
    lat = sorted(run["lat"])  # type: ignore[call-overload]
    wall = float(run["wall"])  # type: ignore[arg-type]
    if not lat:
        return {"rps": 0.0, "p50_ms": 0.0, "p99_ms": 0.0}
    return {
        "rps": round(len(lat) / wall, 1),
        "p50_ms": round(lat[len(lat) // 2] * 1000, 2),
        "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 2),
    }
