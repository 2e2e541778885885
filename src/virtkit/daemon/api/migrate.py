"""Migration routes: the source's job (migrate, domjobinfo, domjobabort, max downtime and
speed) and the destination's side that another daemon calls (prepare, finish, abort).

Logic lives in daemon/migration/source.py (source), migrate_in.py (destination), migrate_job.py.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from virtkit.daemon.api import schemas as s
from virtkit.daemon.migration import dest as migrate_in
from virtkit.daemon.migration import source as migrate
from virtkit.daemon.migration.job import jobs
from virtkit.daemon.service import Service


class _Req(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MigrateRequest(_Req):
    dest_uri: str = Field(min_length=1, max_length=4096)
    live: bool = True
    persistent: bool = False
    undefine_source: bool = False
    copy_storage_all: bool = False
    auto_converge: bool = False
    postcopy: bool = False
    bandwidth_mib_s: int | None = Field(default=None, ge=1, le=1 << 30)
    timeout_s: float | None = Field(default=None, gt=0, le=86400)


class JobInfo(BaseModel):
    type: str
    operation: str
    phase: str
    destination: str
    status: str
    elapsed_ms: int
    data_processed_bytes: int
    data_remaining_bytes: int
    data_total_bytes: int
    memory_processed_bytes: int
    memory_remaining_bytes: int
    memory_total_bytes: int
    memory_bandwidth_bytes_s: int
    dirty_rate_pages_s: int
    page_size_bytes: int
    iteration: int
    constant_pages: int
    normal_pages: int
    normal_bytes: int
    disk_processed_bytes: int
    disk_remaining_bytes: int
    disk_total_bytes: int
    expected_downtime_ms: int | None = None
    downtime_ms: int | None = None
    setup_time_ms: int | None = None
    postcopy: bool = False
    paused_by_timeout: bool = False
    error: s.ErrorBody | None = None


class JobState(BaseModel):
    current: JobInfo | None = None
    completed: JobInfo | None = None


class MigrationParams(BaseModel):
    max_downtime_ms: int
    max_bandwidth_mib_s: int


class SetParamsRequest(_Req):
    max_downtime_ms: int | None = Field(default=None, ge=1, le=2_000_000)
    max_bandwidth_mib_s: int | None = Field(default=None, ge=1, le=1 << 30)


class PrepareRequest(_Req):
    domain: dict[str, Any]
    listen_host: str = Field(default="127.0.0.1", max_length=255)
    postcopy: bool = False
    copy_storage: dict[str, int] = Field(default_factory=dict)  # target: size in bytes
    layout: dict[str, Any] = Field(default_factory=dict)  # qemu/layout.py: PCI slots, DIMMs


class PrepareResult(BaseModel):
    name: str
    uri: str
    nbd_host: str
    nbd_port: int | None = None
    disks: dict[str, str]


class FinishRequest(_Req):
    persistent: bool = False
    paused: bool = False  # the guest was paused on the source: it stays paused
    config: dict[str, Any] | None = None


def router(svc: Service) -> APIRouter:
    r = APIRouter(tags=["migration"])
    base = "/v1/domains/{name}"

    @r.post(base + "/migrate", response_model=JobInfo, status_code=202)
    async def migrate_domain(name: str, body: MigrateRequest) -> dict[str, Any]:
        opts = migrate.MigrateOptions(**body.model_dump())
        return migrate.start(svc, name, opts).view()

    @r.get(base + "/job", response_model=JobState)
    async def job_info(name: str) -> dict[str, Any]:
        job = jobs(svc).get(name)
        if job is None:
            svc.entry(name)  # 404 for a domain never seen
            return {"current": None, "completed": None}
        view = job.view()
        return {"current": view if job.active else None,
                "completed": None if job.active else view}  # fmt: skip

    @r.delete(base + "/job", response_model=JobInfo)
    async def job_abort(name: str) -> dict[str, Any]:
        return await migrate.abort(svc, name)

    @r.get(base + "/migration-params", response_model=MigrationParams)
    async def get_params(name: str) -> dict[str, Any]:
        return await migrate.get_params(svc, name)

    @r.put(base + "/migration-params", response_model=MigrationParams)
    async def set_params(name: str, body: SetParamsRequest) -> dict[str, Any]:
        return await migrate.set_params(svc, name, body.max_downtime_ms,
                                        body.max_bandwidth_mib_s)  # fmt: skip

    @r.post("/v1/migrations/incoming", response_model=PrepareResult, status_code=201)
    async def prepare(body: PrepareRequest) -> dict[str, Any]:
        return await migrate_in.prepare(svc, body.model_dump())

    @r.post("/v1/migrations/incoming/{name}/finish", response_model=s.DomainSummary)
    async def finish(name: str, body: FinishRequest) -> dict[str, Any]:
        return await migrate_in.finish(svc, name, body.persistent, body.config, body.paused)

    @r.delete("/v1/migrations/incoming/{name}", status_code=204)
    async def abort_incoming(name: str) -> None:
        await migrate_in.abort(svc, name)

    return r
