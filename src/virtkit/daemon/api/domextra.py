"""API routes: clone, save/restore/managedsave, domblklist/domblkinfo/blockresize, and
undefine with storage. Service logic lives in daemon/{clone,saverestore,blockops,undefine}.py.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from virtkit.daemon.api import schemas as s
from virtkit.daemon.auth.roles import allowed_dirs, check_paths
from virtkit.daemon.domains import blockops, clone, saverestore, undefine
from virtkit.daemon.service import Service


def router(svc: Service) -> APIRouter:
    r = APIRouter()

    @r.post("/v1/domains/{name}/clone", response_model=s.CloneResult, status_code=201,
            tags=["domains"])  # fmt: skip
    async def clone_domain(name: str, body: s.CloneRequest) -> dict[str, Any]:
        check_paths(body.files, allowed_dirs(svc))  # remote callers: only inside pools
        res = await clone.clone(svc, name, body.name, body.files, auto=body.auto_clone,
                                linked=body.linked)  # fmt: skip
        return {"domain": svc.summary(svc.entry(res.name)), "disks": res.disks,
                "original_overlays": res.original_overlays}  # fmt: skip

    @r.post("/v1/domains/{name}/save", response_model=s.SaveResult, tags=["lifecycle"])
    async def save(name: str, body: s.SaveRequest) -> dict[str, Any]:
        check_paths([body.file], allowed_dirs(svc))
        return asdict(await saverestore.save(svc, name, Path(body.file), paused=body.paused))

    @r.post("/v1/restore", response_model=s.DomainSummary, tags=["lifecycle"])
    async def restore(body: s.RestoreRequest) -> dict[str, Any]:
        check_paths([body.file], allowed_dirs(svc))
        return svc.summary(await saverestore.restore(svc, Path(body.file), body.paused))

    @r.post("/v1/domains/{name}/managedsave", response_model=s.SaveResult, tags=["lifecycle"])
    async def managedsave(name: str, paused: bool | None = None) -> dict[str, Any]:
        return asdict(await saverestore.save(svc, name, None, paused=paused))

    @r.delete("/v1/domains/{name}/managedsave", status_code=204, tags=["lifecycle"])
    async def managedsave_remove(name: str) -> None:
        await saverestore.managed_save_remove(svc, name)

    @r.get("/v1/domains/{name}/blocks", response_model=list[s.BlockDevice], tags=["storage"])
    async def blocks(name: str) -> list[dict[str, Any]]:
        return blockops.block_list(svc, name)

    @r.get("/v1/domains/{name}/blocks/{target}", response_model=s.BlockInfo, tags=["storage"])
    async def block_info(name: str, target: str) -> dict[str, Any]:
        return await blockops.block_info(svc, name, target)

    @r.post("/v1/domains/{name}/blocks/{target}/resize", response_model=s.BlockInfo,
            tags=["storage"])  # fmt: skip
    async def block_resize(name: str, target: str, body: s.ResizeRequest) -> dict[str, Any]:
        return await blockops.block_resize(svc, name, target, body.size_bytes, body.shrink)

    @r.post("/v1/domains/{name}/undefine", response_model=s.UndefineResult, tags=["domains"])
    async def undefine_with_storage(name: str, body: s.UndefineRequest) -> dict[str, Any]:
        res = await undefine.undefine(
            svc, name, remove_all_storage=body.remove_all_storage, storage=body.storage,
            managed_save=body.managed_save, nvram=body.nvram,
        )  # fmt: skip
        return asdict(res)

    return r
