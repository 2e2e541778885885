"""A migration job as ``domjobinfo`` shows it: progress from QEMU's query-migrate and the
block mirror jobs, the phase virtkit is in, and how it ended.

Jobs are kept per service (the last one of each domain stays readable after the
domain has left this host: ``domjobinfo --completed``).
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from virtkit.errors import StateError, VirtkitError

if TYPE_CHECKING:
    from virtkit.daemon.service import Service


class JobType(StrEnum):
    NONE = "none"
    UNBOUNDED = "unbounded"  # running (virsh's word)
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass
class Job:
    name: str
    destination: str
    started_mono: float = field(default_factory=time.monotonic)
    type: str = JobType.UNBOUNDED
    phase: str = "preparing"
    qemu: dict[str, Any] = field(default_factory=dict)  # the last query-migrate answer
    disks: dict[str, tuple[int, int]] = field(default_factory=dict)  # target: (done, total)
    error: dict[str, Any] | None = None
    elapsed_ms: int | None = None  # set when the job ends
    abort_requested: bool = False
    postcopy_started: bool = False
    paused_by_timeout: bool = False

    @property
    def active(self) -> bool:
        return self.type == JobType.UNBOUNDED

    def end(self, kind: str, error: VirtkitError | None = None) -> None:
        self.type = kind
        self.phase = "done"
        self.elapsed_ms = int((time.monotonic() - self.started_mono) * 1000)
        if error is not None:
            self.error = error.to_dict()

    def view(self) -> dict[str, Any]:
        return job_view(self)


def job_view(job: Job) -> dict[str, Any]:
    q = job.qemu
    ram: dict[str, Any] = q.get("ram", {})
    elapsed = job.elapsed_ms
    if elapsed is None:
        elapsed = int((time.monotonic() - job.started_mono) * 1000)
    mem_done, mem_left = int(ram.get("transferred", 0)), int(ram.get("remaining", 0))
    mem_total = int(ram.get("total", 0))
    disk_done = sum(d for d, _ in job.disks.values())
    disk_total = sum(t for _, t in job.disks.values())
    if q.get("status") == "completed":
        mem_left, disk_done = 0, disk_total
    data_total = mem_total + disk_total
    data_left = mem_left + disk_total - disk_done
    return {
        "type": job.type, "operation": "outgoing migration", "phase": job.phase,
        "destination": job.destination, "status": str(q.get("status", "")),
        "elapsed_ms": elapsed,
        "data_processed_bytes": mem_done + disk_done, "data_remaining_bytes": data_left,
        "data_total_bytes": data_total,
        "memory_processed_bytes": mem_done, "memory_remaining_bytes": mem_left,
        "memory_total_bytes": mem_total,
        "memory_bandwidth_bytes_s": int(float(ram.get("mbps", 0)) * 1e6 / 8),
        "dirty_rate_pages_s": int(ram.get("dirty-pages-rate", 0)),
        "page_size_bytes": int(ram.get("page-size", 4096)),
        "iteration": int(ram.get("dirty-sync-count", 0)),
        "constant_pages": int(ram.get("duplicate", 0)),
        "normal_pages": int(ram.get("normal", 0)),
        "normal_bytes": int(ram.get("normal-bytes", 0)),
        "disk_processed_bytes": disk_done, "disk_total_bytes": disk_total,
        "disk_remaining_bytes": disk_total - disk_done,
        "expected_downtime_ms": _opt_int(q.get("expected-downtime")),
        "downtime_ms": _opt_int(q.get("downtime")),
        "setup_time_ms": _opt_int(q.get("setup-time")),
        "postcopy": job.postcopy_started, "paused_by_timeout": job.paused_by_timeout,
        "error": job.error,
    }  # fmt: skip


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


_JOBS: weakref.WeakKeyDictionary[Service, dict[str, Job]] = weakref.WeakKeyDictionary()


def jobs(svc: Service) -> dict[str, Job]:
    return _JOBS.setdefault(svc, {})


def current(svc: Service, name: str) -> Job | None:
    job = jobs(svc).get(name)
    return job if job is not None and job.active else None


def require_current(svc: Service, name: str) -> Job:
    job = current(svc, name)
    if job is None:
        svc.entry(name)  # NotFoundError for an unknown domain
        raise StateError(
            f"domain {name!r} has no active job; `virtkit domjobinfo {name} --completed` "
            "shows the last one",
            current="no job", required="migration in progress",
        )  # fmt: skip
    return job
