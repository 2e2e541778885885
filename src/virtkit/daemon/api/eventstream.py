"""GET /v1/events/stream: the event bus as server-sent events, as things happen.

Each event is one SSE message whose ``id`` is its sequence number and whose data
is the event as JSON (the same object GET /v1/events lists). ``since=N`` starts
after sequence number N; without it the stream starts with the next new event.
A reconnecting EventSource sends ``Last-Event-ID`` and gets everything after it
that the store still holds (the newest 10,000 events): nothing is missed.
A comment line every ``heartbeat_s`` keeps proxies and dead peers honest.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from virtkit.daemon.service import Service

STREAM_DOC = (
    "text/event-stream: `id: <seq>` and `data: <EventOut as JSON>` per event; "
    "`: keepalive` comments in between"
)


def router(svc: Service) -> APIRouter:
    r = APIRouter(tags=["events"])

    @r.get(
        "/v1/events/stream",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                         "description": STREAM_DOC}},
    )  # fmt: skip
    async def stream(
        request: Request,
        since: int | None = Query(None, ge=0, description="start after this sequence number"),
        domain: str | None = None,
        heartbeat_s: float = Query(15.0, gt=0, le=300),
    ) -> StreamingResponse:
        last = request.headers.get("last-event-id", "")
        after = int(last) if last.isdigit() else since
        if after is None:
            after = svc.bus.last_seq()
        return StreamingResponse(
            _events(svc, after, domain, heartbeat_s),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return r


async def _events(svc: Service, after: int, domain: str | None,
                  heartbeat_s: float) -> AsyncGenerator[str, None]:  # fmt: skip
    yield f"retry: 2000\n: after {after}\n\n"
    while True:
        found = await svc.bus.wait(after, domain, heartbeat_s)
        if not found:
            yield ": keepalive\n\n"
            continue
        parts = []
        for e in found:
            after = e.seq
            parts.append(f"id: {e.seq}\ndata: {json.dumps(e.__dict__)}\n\n")
        yield "".join(parts)
