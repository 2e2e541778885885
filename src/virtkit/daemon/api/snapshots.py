"""Snapshot routes: /v1/domains/{name}/snapshots[...]."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from virtkit.daemon.domains import snapshots as snap
from virtkit.daemon.service import Service


class SnapshotRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=64)
    disk_only: bool = False
    description: str = Field("", max_length=4096)


class SnapshotOut(BaseModel):
    name: str
    domain: str
    parent: str | None
    created: float
    description: str
    kind: str
    state: str
    current: bool
    children: list[str]
    location: str


def router(svc: Service) -> APIRouter:
    r = APIRouter(tags=["snapshots"])

    @r.get("/v1/domains/{name}/snapshots", response_model=list[SnapshotOut])
    async def list_(name: str) -> list[dict[str, Any]]:
        return snap.list_snapshots(svc, name)

    @r.post("/v1/domains/{name}/snapshots", response_model=SnapshotOut, status_code=201)
    async def create(name: str, body: SnapshotRequest) -> dict[str, Any]:
        return await snap.create(svc, name, body.name, disk_only=body.disk_only,
                                 description=body.description)  # fmt: skip

    @r.get("/v1/domains/{name}/snapshots/{snapshot}", response_model=SnapshotOut)
    async def info(name: str, snapshot: str) -> dict[str, Any]:
        for s in snap.list_snapshots(svc, name):
            if s["name"] == snapshot or (snapshot == "@current" and s["current"]):
                return s
        snap.get(svc, name, None if snapshot == "@current" else snapshot)  # raises NotFound
        raise AssertionError("unreachable")

    @r.post("/v1/domains/{name}/snapshots/{snapshot}/revert", response_model=SnapshotOut)
    async def revert(name: str, snapshot: str) -> dict[str, Any]:
        return await snap.revert(svc, name, None if snapshot == "@current" else snapshot)

    @r.delete("/v1/domains/{name}/snapshots/{snapshot}", status_code=204)
    async def delete(name: str, snapshot: str) -> None:
        await snap.delete(svc, name, None if snapshot == "@current" else snapshot)

    return r
