"""Storage: linked clones and overlays stay O(1); full clones vs cp; upload/download.

    python -m bench.storage [--runs N] [--data-mib M]

Measures on this machine, in one run, with medians, through a private daemon:
  - linked clone (``vol-create-as ... --format qcow2 --backing-vol BASE``, API call)
    for a 1 GiB and a 20 GiB sparse base (raw and qcow2): must stay flat;
  - external-snapshot-like overlay (``qemu-img create -b``, as storage.volumes does
    it, no daemon) on the same bases;
  - full clone (``vol-clone``, qemu-img convert, flushed) of a 1 GiB raw image holding
    M MiB of data vs ``cp --sparse=always`` + fsync of the same file;
  - ``vol-upload`` / ``vol-download`` throughput of that image (chunked API).
Prints a Markdown table and writes bench/results/storage.json. Nothing is asserted
except the linked-clone flatness, which is reported as a ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from bench._daemon import BenchDaemon
from virtkit.cli.storage import _download
from virtkit.client.client import Client
from virtkit.storage import volumes as V

RESULTS = Path(__file__).with_name("results")
MiB, GiB = 1024**2, 1024**3


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def drop(path: Path) -> None:
    """Flush written data so the next measurement does not pay for this one's writeback."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def linked_clones(c: Client, runs: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for gib in (1, 20):
        for fmt in ("raw", "qcow2"):
            base = f"base{gib}.{fmt}"
            c.create_volume("default", {"name": base, "capacity": f"{gib}G", "format": fmt})
            samples = []
            for i in range(runs):
                name = f"lc{gib}{fmt}{i}.qcow2"
                spec = {"name": name, "capacity": f"{gib}G", "format": "qcow2",
                        "backing_vol": base, "backing_vol_format": fmt}  # fmt: skip
                samples.append(timed(partial(c.create_volume, "default", spec)))
            for i in range(runs):
                c.delete_volume("default", f"lc{gib}{fmt}{i}.qcow2")
            out[f"{gib}GiB-{fmt}"] = median_ms(samples)
    return out


def overlays(pool: Path, runs: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for gib in (1, 20):
        for fmt in ("raw", "qcow2"):
            base = pool / f"base{gib}.{fmt}"
            samples = []
            for i in range(runs):
                name = f"ov{gib}{fmt}{i}.qcow2"
                samples.append(timed(partial(V.create_volume, pool, name, gib * GiB, "qcow2",
                                             backing=(base, fmt))))  # fmt: skip
                (pool / name).unlink()
            out[f"{gib}GiB-{fmt}"] = median_ms(samples)
    return out


def data_image(path: Path, data_mib: int) -> None:
    """1 GiB raw: ``data_mib`` MiB of random data in 4 MiB runs spread over it, rest holes."""
    with open(path, "wb") as f:
        f.truncate(GiB)
        runs = max(1, data_mib // 4)
        step = GiB // runs
        for i in range(runs):
            f.seek(i * step)
            f.write(os.urandom(4 * MiB))
    drop(path)


def cp_sync(src: Path, dst: Path) -> None:
    """cp, then fsync: qemu-img convert flushes its output too, so compare like with like."""
    subprocess.run(["cp", "--sparse=always", str(src), str(dst)], check=True)
    drop(dst)


def full_clones(c: Client, pool: Path, work: Path, runs: int) -> dict[str, float]:
    src = pool / "data.img"
    clone_s, cp_s = [], []
    for i in range(runs):
        clone_s.append(timed(partial(c.clone_volume, "default", "data.img", f"fc{i}.img")))
        drop(pool / f"fc{i}.img")
        c.delete_volume("default", f"fc{i}.img")
        dst = work / f"cp{i}.img"
        cp_s.append(timed(partial(cp_sync, src, dst)))
        dst.unlink()
    return {"vol-clone_ms": median_ms(clone_s), "cp_sparse_ms": median_ms(cp_s)}


def transfers(c: Client, pool: Path, work: Path) -> dict[str, float]:
    src = pool / "data.img"
    size = src.stat().st_size
    with open(src, "rb") as f:
        up = timed(lambda: c.upload_volume("default", "target.img", f, size))
    sink = work / "down.img"

    def download() -> None:  # what `virtkit vol-download` does, without the bar
        with open(sink, "wb") as out:
            out.truncate(_download(c, "default", "target.img", out, size, None, None))

    down = timed(download)
    sink.unlink()
    return {"upload_s": round(up, 2), "download_s": round(down, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.storage")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--data-mib", type=int, default=256, help="data in the 1 GiB clone source")
    args = ap.parse_args(argv)
    with BenchDaemon() as d, tempfile.TemporaryDirectory(prefix="vkbs", dir="/tmp") as tmp:
        c = Client(f"unix://{d.socket}", autostart=False)
        pool = Path(c.pool_info("default")["target"])
        lc = linked_clones(c, args.runs)
        ov = overlays(pool, args.runs)
        data_image(pool / "data.img", args.data_mib)
        c.pool_action("default", "refresh")
        fc = full_clones(c, pool, Path(tmp), args.runs)
        c.create_volume("default", {"name": "target.img", "capacity": "1M"})
        tr = transfers(c, pool, Path(tmp))
        c.close()
    flat = {k: round(max(t[f"20GiB-{k}"], t[f"1GiB-{k}"]) / min(t[f"20GiB-{k}"],
            t[f"1GiB-{k}"]), 2) for t in (lc,) for k in ("raw", "qcow2")}  # fmt: skip
    mib = 1024.0
    rows = [
        *[(f"linked clone (vol-create-as --backing-vol), {k} base", f"{v} ms")
          for k, v in lc.items()],
        *[(f"overlay (qemu-img create -b), {k} base", f"{v} ms") for k, v in ov.items()],
        ("linked clone 20 GiB / 1 GiB ratio (raw, qcow2)", f"{flat['raw']}, {flat['qcow2']}"),
        (f"full clone vol-clone, 1 GiB raw with {args.data_mib} MiB data",
         f"{fc['vol-clone_ms']} ms ({mib / (fc['vol-clone_ms'] / 1000):.0f} MiB/s virtual)"),
        ("cp --sparse=always + fsync, same file",
         f"{fc['cp_sparse_ms']} ms ({mib / (fc['cp_sparse_ms'] / 1000):.0f} MiB/s virtual)"),
        ("vol-upload 1 GiB (chunked API, holes kept)", f"{tr['upload_s']} s"),
        ("vol-download 1 GiB", f"{tr['download_s']} s"),
    ]  # fmt: skip
    print(f"\nStorage (median of {args.runs}; {os.cpu_count()} CPUs)\n")
    print("| measurement | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    data = {"runs": args.runs, "data_mib": args.data_mib, "linked_clone_ms": lc,
            "overlay_ms": ov, "linked_clone_flatness": flat, "full_clone": fc,
            "transfer": tr}  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "storage.json").write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
