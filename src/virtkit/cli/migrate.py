"""Migration verbs: migrate, migrate-setmaxdowntime, migrate-getmaxdowntime, migrate-setspeed,
migrate-getspeed, domjobinfo, domjobabort (virsh's words, flags and output shapes).

Imports at module level: stdlib and virtkit.cli.main only (the CLI must start fast).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from virtkit.cli.main import DOMAIN, a, args, client, command, say, warn
from virtkit.errors import from_dict

POLL_S = 0.2
VANISHED = (
    "the daemon no longer knows this migration (was it restarted?); "
    "`virtkit domstate` on both sides shows where the guest runs"
)


@args(
    DOMAIN,
    a(
        "desturi",
        help="the destination daemon: virtkit+tls://HOST:PORT/system[?pki=DIR], "
        "virtkit+tcp://HOST[:PORT]/system, or "
        "unix:///path/to/virtkitd.sock for another daemon on this host",
    ),
    a("--live", action="store_true", help="migrate while the guest runs (else it is paused)"),
    a("--persistent", action="store_true", help="define the domain on the destination"),
    a("--undefinesource", action="store_true", help="undefine the domain here afterwards"),
    a(
        "--copy-storage-all",
        action="store_true",
        help="copy the disks too (no shared storage): NBD + block mirror",
    ),
    a("--auto-converge", action="store_true", help="throttle the guest's CPUs to converge"),
    a(
        "--postcopy",
        action="store_true",
        help="switch to post-copy after the first full pass over RAM (or at --timeout)",
    ),
    a("--bandwidth", type=int, metavar="MiB/s", help="limit the migration's bandwidth"),
    a(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="pause the guest (postcopy: switch) if the migration takes longer",
    ),
    a("--verbose", action="store_true", help="show the progress"),
)
@command("migrate", "migrate a running domain to another virtkit daemon")
def cmd_migrate(ns: argparse.Namespace) -> int:
    c = client(ns)
    c.migrate(
        ns.domain, ns.desturi, live=ns.live, persistent=ns.persistent,
        undefine_source=ns.undefinesource, copy_storage_all=ns.copy_storage_all,
        auto_converge=ns.auto_converge, postcopy=ns.postcopy,
        bandwidth_mib_s=ns.bandwidth, timeout_s=ns.timeout,
    )  # fmt: skip
    view = _follow(c, ns.domain, ns.verbose)
    if view.get("type") != "completed":
        err = view.get("error") or {"error": "error", "message": "the migration failed"}
        raise from_dict(err)
    say(f"Domain '{ns.domain}' migrated to {ns.desturi}")
    return 0


def _follow(c: Any, name: str, verbose: bool) -> dict[str, Any]:
    """Poll the job until it ends; a rich bar on a terminal, virsh's lines with --verbose."""
    bar = task = None
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeElapsedColumn

        bar = Progress("Migration", BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                       console=Console(stderr=True), transient=not verbose)  # fmt: skip
        bar.start()
        task = bar.add_task("migration", total=100)
    last = -1
    try:
        while True:
            try:
                state = c.job(name)
            except KeyboardInterrupt:
                _abort(c, name)
                continue
            view = state["current"] or state["completed"]
            if view is None:
                return {"type": "failed", "error": {"error": "error", "message": VANISHED}}
            pct = progress_percent(view)
            if bar is not None:
                bar.update(task, completed=pct)  # type: ignore[arg-type]
            elif verbose and pct != last:
                sys.stderr.write(f"Migration: [{pct:3d} %]\n")
            last = pct
            if state["current"] is None:
                return dict(view)
            try:
                time.sleep(POLL_S)
            except KeyboardInterrupt:
                _abort(c, name)
    finally:
        if bar is not None:
            bar.stop()


def _abort(c: Any, name: str) -> None:
    """Ctrl+C: cancel the job (virsh does the same); the loop then reports how it ended."""
    warn("aborting the migration (Ctrl+C) ...")
    c.close()  # the interrupted request may have left half an answer on the connection
    c.job_abort(name)


def progress_percent(view: dict[str, Any]) -> int:
    """virsh's number: how much of the data is no longer remaining."""
    if view.get("type") == "completed":
        return 100
    total = int(view.get("data_total_bytes") or 0)
    if total <= 0:
        return 0
    left = int(view.get("data_remaining_bytes") or 0)
    return max(0, min(99, 100 - left * 100 // total))


def _size(n: int) -> str:
    """virsh's vshPrettyCapacity."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.3f} {unit}"
    return f"{n:.3f} B"


def render_job(view: dict[str, Any] | None) -> str:
    if view is None:
        return "Job type:         None\n"
    kind = {"unbounded": "Unbounded", "completed": "Completed", "failed": "Failed",
            "cancelled": "Cancelled"}.get(view["type"], view["type"])  # fmt: skip
    rows: list[tuple[str, str]] = [
        ("Job type:", kind), ("Operation:", "Outgoing migration"),
        ("Time elapsed:", f"{view['elapsed_ms']:<12} ms"),
    ]  # fmt: skip
    if view["data_total_bytes"]:
        rows += [("Data processed:", _size(view["data_processed_bytes"])),
                 ("Data remaining:", _size(view["data_remaining_bytes"])),
                 ("Data total:", _size(view["data_total_bytes"])),
                 ("Memory processed:", _size(view["memory_processed_bytes"])),
                 ("Memory remaining:", _size(view["memory_remaining_bytes"])),
                 ("Memory total:", _size(view["memory_total_bytes"])),
                 ("Memory bandwidth:", _size(view["memory_bandwidth_bytes_s"]) + "/s"),
                 ("Dirty rate:", f"{view['dirty_rate_pages_s']:<12} pages/s"),
                 ("Page size:", f"{view['page_size_bytes']:<12} bytes"),
                 ("Iteration:", str(view["iteration"])),
                 ("Constant pages:", str(view["constant_pages"])),
                 ("Normal pages:", str(view["normal_pages"])),
                 ("Normal data:", _size(view["normal_bytes"]))]  # fmt: skip
    if view["disk_total_bytes"]:
        rows += [("File processed:", _size(view["disk_processed_bytes"])),
                 ("File remaining:", _size(view["disk_remaining_bytes"])),
                 ("File total:", _size(view["disk_total_bytes"]))]  # fmt: skip
    if view.get("downtime_ms") is not None:
        rows.append(("Total downtime:", f"{view['downtime_ms']:<12} ms"))
    elif view.get("expected_downtime_ms") is not None:
        rows.append(("Expected downtime:", f"{view['expected_downtime_ms']:<12} ms"))
    if view.get("setup_time_ms") is not None:
        rows.append(("Setup time:", f"{view['setup_time_ms']:<12} ms"))
    if view.get("postcopy"):
        rows.append(("Postcopy:", "yes"))
    if view.get("error"):
        rows.append(("Error:", view["error"]["message"]))
    return "".join(f"{k:<17} {v}".rstrip() + "\n" for k, v in rows)


@args(
    DOMAIN,
    a("--completed", action="store_true", help="the last finished job"),
    a("--keep-completed", action="store_true", help="accepted; finished jobs are kept"),
)
@command("domjobinfo", "show the domain's migration job (progress, downtime)")
def cmd_domjobinfo(ns: argparse.Namespace) -> int:
    state = client(ns).job(ns.domain)
    sys.stdout.write(render_job(state["completed"] if ns.completed else state["current"]))
    return 0


@args(DOMAIN)
@command("domjobabort", "abort the domain's migration job (the guest stays here)")
def cmd_domjobabort(ns: argparse.Namespace) -> int:
    client(ns).job_abort(ns.domain)
    return 0


@args(DOMAIN, a("downtime", nargs="?", type=int, metavar="MS"),
      a("--downtime", dest="downtime_opt", type=int, metavar="MS"))  # fmt: skip
@command("migrate-setmaxdowntime", "set the longest pause (ms) a live migration may cause")
def cmd_setmaxdowntime(ns: argparse.Namespace) -> int:
    ms = ns.downtime_opt if ns.downtime_opt is not None else ns.downtime
    if ms is None or ms <= 0:
        raise _usage("migrate-setmaxdowntime DOMAIN MS (a positive number of milliseconds)")
    client(ns).set_migration_params(ns.domain, max_downtime_ms=ms)
    return 0


@args(DOMAIN)
@command("migrate-getmaxdowntime", "show the longest pause (ms) a live migration may cause")
def cmd_getmaxdowntime(ns: argparse.Namespace) -> int:
    say(str(client(ns).migration_params(ns.domain)["max_downtime_ms"]))
    return 0


@args(DOMAIN, a("bandwidth", nargs="?", type=int, metavar="MiB/s"),
      a("--bandwidth", dest="bandwidth_opt", type=int, metavar="MiB/s"))  # fmt: skip
@command("migrate-setspeed", "set the migration bandwidth limit (MiB/s)")
def cmd_setspeed(ns: argparse.Namespace) -> int:
    bw = ns.bandwidth_opt if ns.bandwidth_opt is not None else ns.bandwidth
    if bw is None or bw <= 0:
        raise _usage("migrate-setspeed DOMAIN MiB/s (a positive number)")
    client(ns).set_migration_params(ns.domain, max_bandwidth_mib_s=bw)
    return 0


@args(DOMAIN)
@command("migrate-getspeed", "show the migration bandwidth limit (MiB/s)")
def cmd_getspeed(ns: argparse.Namespace) -> int:
    say(str(client(ns).migration_params(ns.domain)["max_bandwidth_mib_s"]))
    return 0


def _usage(text: str) -> Exception:
    from virtkit.errors import ConfigError

    return ConfigError(f"usage: virtkit {text}")
