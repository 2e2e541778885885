"""top: virt-top's live table of running domains, from successive GET /v1/stats samples.

CPU% is the QEMU process's CPU time over the interval, 100% = one host CPU
(like top(1)); MEM is the QEMU process RSS in MiB; the rates are per second.
Each refresh is one API call for all domains.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import IO, Any, NamedTuple

from virtkit.cli.main import a, args, client, command
from virtkit.errors import ConfigError

SORT_KEYS = ("cpu", "mem", "name", "id", "rdby", "wrby")
HEADERS = ("ID", "NAME", "CPU%", "MEM", "RDBY/s", "WRBY/s", "RDRQ/s", "WRRQ/s", "RXBY/s", "TXBY/s")
CSV_HEADER = ("time", "id", "name", "cpu_pct", "mem_mib", "rd_bytes_s", "wr_bytes_s",
              "rd_reqs_s", "wr_reqs_s", "rx_bytes_s", "tx_bytes_s")  # fmt: skip


class Row(NamedTuple):
    id: int
    name: str
    cpu_pct: float
    mem_mib: float
    rdby: float
    wrby: float
    rdrq: float
    wrrq: float
    rxby: float
    txby: float


def _sum(st: dict[str, Any], group: str, key: str) -> int:
    n = int(st.get(f"{group}.count", 0))
    return sum(int(st.get(f"{group}.{i}.{key}", 0)) for i in range(n))


def _counters(st: dict[str, Any]) -> tuple[int, ...]:
    return (int(st.get("cpu.time", 0)), _sum(st, "block", "rd.bytes"),
            _sum(st, "block", "wr.bytes"), _sum(st, "block", "rd.reqs"),
            _sum(st, "block", "wr.reqs"), _sum(st, "net", "rx.bytes"),
            _sum(st, "net", "tx.bytes"))  # fmt: skip


def compute_rows(prev: dict[str, Any] | None, cur: dict[str, Any]) -> list[Row]:
    """Rates between two /v1/stats answers (zero for a domain absent from ``prev``)."""
    before = {}
    if prev is not None:
        before = {(d["name"], d["id"]): _counters(d["stats"]) for d in prev["domains"]}
    dt = max(cur["timestamp"] - prev["timestamp"], 1e-3) if prev is not None else 0.0
    rows = []
    for d in cur["domains"]:
        if d["id"] is None:
            continue
        now = _counters(d["stats"])
        old = before.get((d["name"], d["id"]))
        if old is None or dt == 0.0:
            rates = [0.0] * len(now)
        else:
            rates = [max(n - o, 0) / dt for n, o in zip(now, old, strict=True)]
        rows.append(Row(int(d["id"]), d["name"], rates[0] / 1e9 * 100,
                        int(d["stats"].get("balloon.rss", 0)) / 1024, *rates[1:]))  # fmt: skip
    return rows


def sort_rows(rows: list[Row], key: str) -> list[Row]:
    if key == "name":
        return sorted(rows, key=lambda r: r.name)
    if key == "id":
        return sorted(rows, key=lambda r: r.id)
    attr = {"cpu": "cpu_pct", "mem": "mem_mib", "rdby": "rdby", "wrby": "wrby"}[key]
    return sorted(rows, key=lambda r: (-getattr(r, attr), r.name))


def _cells(r: Row) -> list[str]:
    return [str(r.id), r.name, f"{r.cpu_pct:.1f}", f"{r.mem_mib:.0f}",
            *(f"{v:.0f}" for v in (r.rdby, r.wrby, r.rdrq, r.wrrq, r.rxby, r.txby))]  # fmt: skip


def text_frame(rows: list[Row], stamp: float) -> str:
    """One batch-mode frame: a header line, column titles, one line per domain."""
    head = f"virtkit top - {time.strftime('%H:%M:%S', time.localtime(stamp))}"
    head += f"  {len(rows)} domain(s) running"
    fmt = "{:>5} {:<20} {:>6} {:>8} {:>10} {:>10} {:>8} {:>8} {:>10} {:>10}"
    lines = [head, fmt.format(*HEADERS)]
    lines.extend(fmt.format(*_cells(r)) for r in rows)
    return "\n".join(lines) + "\n\n"


def csv_rows(rows: list[Row], stamp: float) -> list[list[str]]:
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(stamp))
    out = []
    for r in rows:
        vals = tuple(r)
        out.append([ts, str(r.id), r.name, *(f"{v:.2f}" for v in vals[2:])])
    return out


def _table(rows: list[Row], stamp: float, sort: str) -> Any:
    from rich.table import Table

    t = Table(title=f"virtkit top - {time.strftime('%H:%M:%S', time.localtime(stamp))}  "
              f"{len(rows)} running  (sorted by {sort}; Ctrl+C quits)",
              expand=False, box=None, header_style="bold reverse")  # fmt: skip
    for i, h in enumerate(HEADERS):
        t.add_column(h, justify="left" if i == 1 else "right", no_wrap=True)
    for r in rows:
        t.add_row(*_cells(r))
    return t


@args(a("-d", "--delay", type=float, default=3.0, metavar="SECONDS",
        help="refresh interval (default 3)"),
      a("--sort", choices=SORT_KEYS, default="cpu", help="sort column (default cpu)"),
      a("-b", "--batch", action="store_true", help="plain text frames, no screen control"),
      a("-n", "--iterations", type=int, default=None, metavar="N", help="stop after N frames"),
      a("--csv", default=None, metavar="FILE", help="CSV to FILE ('-': stdout)"))  # fmt: skip
@command("top", "live per-domain CPU, memory, disk and network (virt-top)")
def cmd_top(ns: argparse.Namespace) -> int:
    if ns.delay <= 0:
        raise ConfigError("--delay must be a positive number of seconds")
    if ns.iterations is not None and ns.iterations < 1:
        raise ConfigError("--iterations must be at least 1")
    c = client(ns)
    out: IO[str] | None = None
    writer = None
    if ns.csv is not None:
        import csv

        out = sys.stdout if ns.csv == "-" else open(ns.csv, "w", newline="")  # noqa: SIM115
        writer = csv.writer(out)
        writer.writerow(CSV_HEADER)
    live = None
    if not ns.batch and ns.csv != "-":
        from rich.live import Live

        live = Live(auto_refresh=False, screen=True)
        live.start()
    prev = c.stats(active=True)
    if live is not None:  # something on screen at once; rates come with the next sample
        live.update(_table(sort_rows(compute_rows(None, prev), ns.sort), prev["timestamp"],
                           ns.sort), refresh=True)  # fmt: skip
    done = 0
    try:
        while ns.iterations is None or done < ns.iterations:
            time.sleep(ns.delay)
            cur = c.stats(active=True)
            rows = sort_rows(compute_rows(prev, cur), ns.sort)
            prev = cur
            done += 1
            if writer is not None and out is not None:
                writer.writerows(csv_rows(rows, cur["timestamp"]))
                out.flush()
            if live is not None:
                live.update(_table(rows, cur["timestamp"], ns.sort), refresh=True)
            elif ns.csv != "-":
                sys.stdout.write(text_frame(rows, cur["timestamp"]))
                sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        if live is not None:
            live.stop()
        if out is not None and out is not sys.stdout:
            out.close()
    return 0
