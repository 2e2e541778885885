"""HTTP API of storage pools and volumes (virsh pool-* / vol-*).

Volume content moves in chunks so no request holds more than a few MiB:
``GET .../content?offset=&length=`` reads (<= 8 MiB per call); an upload is
``POST .../upload`` (announce the size), ``PUT /v1/uploads/{id}?offset=`` per chunk
(<= 1 MiB, the API's body limit), then ``POST /v1/uploads/{id}/commit`` which
replaces the volume atomically (``DELETE`` aborts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Query, Request, Response

from virtkit.daemon.api import schemas as s
from virtkit.daemon.service import Service
from virtkit.daemon.storage.pools import PoolManager, manager

_BINARY = {"schema": {"type": "string", "format": "binary"}}
P = "/v1/pools/{pool}"
V = "/v1/pools/{pool}/volumes/{vol}"


def router(svc: Service) -> APIRouter:
    r = APIRouter(responses={"default": {"model": s.ErrorBody, "description": "error"}})

    def m() -> PoolManager:
        return manager(svc)

    # -- pools -------------------------------------------------------------------------------

    @r.get("/v1/pools", response_model=list[s.PoolInfo], tags=["storage"])
    async def list_pools(all: bool = False) -> list[dict[str, Any]]:
        mgr = m()
        return [mgr.pool_view(p) for p in mgr.db.pools() if all or p.active]

    @r.post("/v1/pools", response_model=s.PoolInfo, status_code=201, tags=["storage"])
    async def define_pool(body: s.PoolDefineRequest) -> dict[str, Any]:
        from virtkit.daemon.auth.roles import REMOTE, ROLE, require_admin

        if ROLE.get() == REMOTE:  # a pool decides which host paths remote callers reach
            require_admin("defining a storage pool")
        out: dict[str, Any] = m().define(body.name, body.type, body.target)
        return out

    @r.get(P, response_model=s.PoolInfo, tags=["storage"])
    async def pool_info(pool: str) -> dict[str, Any]:
        mgr = m()
        out: dict[str, Any] = mgr.pool_view(mgr.pool(pool))
        return out

    @r.delete(P, status_code=204, tags=["storage"])
    async def undefine_pool(pool: str) -> None:
        await m().undefine(pool)

    @r.put(P + "/autostart", response_model=s.PoolInfo, tags=["storage"])
    async def pool_autostart(pool: str, body: s.AutostartRequest) -> dict[str, Any]:
        out: dict[str, Any] = m().set_autostart(pool, body.enabled)
        return out

    for verb in ("start", "destroy", "build", "refresh"):
        _pool_action(r, m, verb)

    @r.get("/v1/volume-lookup", response_model=s.VolumeInfo, tags=["storage"])
    async def lookup(path: str = Query(max_length=4096)) -> dict[str, Any]:
        mgr = m()
        pool, name = mgr.lookup_path(path)
        out: dict[str, Any] = await mgr.vol_info(pool, name)
        return out

    # -- volumes -----------------------------------------------------------------------------

    @r.get(P + "/volumes", response_model=list[s.VolumeInfo], tags=["storage"])
    async def list_volumes(pool: str, details: bool = False) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = await m().vol_list(pool, details)
        return out

    @r.post(P + "/volumes", response_model=s.VolumeInfo, status_code=201, tags=["storage"])
    async def create_volume(pool: str, body: s.VolumeCreateRequest) -> dict[str, Any]:
        out: dict[str, Any] = await m().vol_create(
            pool, body.name, body.capacity, body.format, body.allocation, body.backing_vol,
            body.backing_vol_format,
        )  # fmt: skip
        return out

    @r.get(V, response_model=s.VolumeInfo, tags=["storage"])
    async def volume_info(pool: str, vol: str) -> dict[str, Any]:
        out: dict[str, Any] = await m().vol_info(pool, vol)
        return out

    @r.delete(V, status_code=204, tags=["storage"])
    async def delete_volume(pool: str, vol: str) -> None:
        await m().vol_delete(pool, vol)

    @r.post(V + "/resize", response_model=s.VolumeInfo, tags=["storage"])
    async def resize_volume(pool: str, vol: str, body: s.VolumeResizeRequest) -> dict[str, Any]:
        out: dict[str, Any] = await m().vol_resize(pool, vol, body.capacity, body.delta,
                                                   body.shrink)  # fmt: skip
        return out

    @r.post(V + "/clone", response_model=s.VolumeInfo, status_code=201, tags=["storage"])
    async def clone_volume(pool: str, vol: str, body: s.VolumeCloneRequest) -> dict[str, Any]:
        out: dict[str, Any] = await m().vol_clone(pool, vol, body.name)
        return out

    @r.get(V + "/content", response_class=Response, tags=["storage"],
           responses={200: {"content": {"application/octet-stream": _BINARY},
                            "description": "the bytes; fewer than asked at the end"}})  # fmt: skip
    async def read_volume(
        pool: str, vol: str, offset: int = Query(0, ge=0),
        length: int = Query(4 << 20, ge=1, le=8 << 20),
    ) -> Response:  # fmt: skip
        data = await m().read(pool, vol, offset, length)
        return Response(data, media_type="application/octet-stream")

    @r.post(V + "/upload", response_model=s.UploadStatus, status_code=201, tags=["storage"])
    async def upload_begin(pool: str, vol: str, body: s.UploadRequest) -> dict[str, Any]:
        out: dict[str, Any] = m().upload_begin(pool, vol, body.size)
        return out

    @r.put("/v1/uploads/{upload}", response_model=s.UploadStatus, tags=["storage"],
           openapi_extra={"requestBody": {"required": True, "content": {
               "application/octet-stream": _BINARY}}})  # fmt: skip
    async def upload_chunk(upload: str, request: Request,
                           offset: int = Query(ge=0)) -> dict[str, Any]:  # fmt: skip
        data = await request.body()
        out: dict[str, Any] = m().upload_chunk(upload, offset, data)
        return out

    @r.post("/v1/uploads/{upload}/commit", response_model=s.VolumeInfo, tags=["storage"])
    async def upload_commit(upload: str) -> dict[str, Any]:
        out: dict[str, Any] = await m().upload_commit(upload)
        return out

    @r.delete("/v1/uploads/{upload}", status_code=204, tags=["storage"])
    async def upload_abort(upload: str) -> None:
        m().upload_abort(upload)

    return r


def _pool_action(r: APIRouter, m: Callable[[], PoolManager], verb: str) -> None:
    async def action(pool: str) -> dict[str, Any]:
        out: dict[str, Any] = await getattr(m(), verb)(pool)
        return out

    action.__name__ = f"pool_{verb}"
    r.post(P + f"/{verb}", response_model=s.PoolInfo, tags=["storage"], name=f"pool_{verb}",
           operation_id=f"pool_{verb}_v1_pools__pool__{verb}_post")(action)  # fmt: skip
