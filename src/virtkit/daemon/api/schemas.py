"""Request and response bodies of the API (they make the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from virtkit.model.install import InstallSpec


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    error: str = Field(description="stable error code: config, not-found, state, busy, ...")
    message: str = Field(description="what went wrong and what to do next")
    details: dict[str, Any] | None = None


class Version(BaseModel):
    version: str
    mode: str
    state_dir: str


class DefineRequest(_In):
    text: str | None = Field(None, max_length=1 << 20, description="YAML or JSON domain file")
    config: dict[str, Any] | None = Field(None, description="domain as a JSON object")
    source: str = Field("domain", max_length=4096, description="file name, for error messages")


class AutostartRequest(_In):
    enabled: bool


class DomainSummary(BaseModel):
    id: int | None
    name: str
    uuid: str
    state: str
    reason: str
    autostart: bool
    persistent: bool


class StartResult(DomainSummary):
    accel: str
    warning: str


class DomainInfo(DomainSummary):
    vcpus: int
    max_vcpus: int
    memory_mib: int
    max_memory_mib: int
    cpu_time_s: float
    rss_kib: int
    accel: str | None
    accel_note: str
    pid: int | None
    machine: str
    operation: str | None


class EventOut(BaseModel):
    seq: int
    ts: float
    domain: str
    type: str
    detail: str


class InstallRequest(_In):
    spec: InstallSpec
    dry_run: bool = False


class InstallResponse(BaseModel):
    domain: dict[str, Any]
    install_boot: bool
    warnings: list[str]
    created: list[str]
    root_password: str | None = Field(None, description="generated root password, shown once")
