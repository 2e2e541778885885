"""API route of ``qemu-monitor-command`` (admin only; see daemon/domains/monitorcmd.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from virtkit.daemon.service import Service


class MonitorRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    command: str = Field(max_length=65536, description="QMP JSON, or an HMP line with hmp")
    hmp: bool = False


class MonitorReply(BaseModel):
    reply: Any = Field(description="QEMU's 'return' value (HMP: the text it printed)")


def router(svc: Service) -> APIRouter:
    r = APIRouter()

    @r.post("/v1/domains/{name}/monitor", response_model=MonitorReply, tags=["domains"])
    async def monitor(name: str, body: MonitorRequest) -> dict[str, Any]:
        from virtkit.daemon.domains.monitorcmd import monitor_command

        return {"reply": await monitor_command(svc, name, body.command, body.hmp)}

    return r
