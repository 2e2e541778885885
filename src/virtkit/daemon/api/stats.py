"""Stats routes: GET /v1/stats (virsh domstats keys) and GET /metrics (Prometheus).

``install(app, svc)`` adds the routes and the request-latency middleware; the
metrics live in a registry of their own (never prometheus-client's global one),
so two daemons in one process (tests) do not collide.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from virtkit.daemon.domains import stats
from virtkit.daemon.service import Service
from virtkit.model.state import State

GROUPS = ",".join(stats.GROUPS)


class DomainStats(BaseModel):
    name: str
    id: int | None
    state: str
    stats: dict[str, int | str]


class StatsOut(BaseModel):
    timestamp: float
    domains: list[DomainStats]


class DomainCollector(Collector):
    """Per-domain series from the latest stats pass (set just before each scrape)."""

    def __init__(self) -> None:
        self.samples: list[stats.Sample] = []

    def collect(self) -> Iterator[Metric]:
        lab = ["domain"]
        state = GaugeMetricFamily("virtkit_domain_state", "1 for the domain's current state",
                                  labels=["domain", "state"])  # fmt: skip
        cpu = CounterMetricFamily("virtkit_domain_cpu_seconds", "QEMU process CPU time", labels=lab)
        rss = GaugeMetricFamily("virtkit_domain_memory_rss_bytes", "QEMU process RSS", labels=lab)
        bal = GaugeMetricFamily("virtkit_domain_balloon_bytes", "guest memory (balloon)",
                                labels=lab)  # fmt: skip
        rd = CounterMetricFamily("virtkit_domain_block_read_bytes", "bytes read by all disks",
                                 labels=lab)  # fmt: skip
        wr = CounterMetricFamily("virtkit_domain_block_write_bytes", "bytes written by all disks",
                                 labels=lab)  # fmt: skip
        rx = CounterMetricFamily("virtkit_domain_net_rx_bytes", "bytes received (tap NICs)",
                                 labels=lab)  # fmt: skip
        tx = CounterMetricFamily("virtkit_domain_net_tx_bytes", "bytes sent (tap NICs)",
                                 labels=lab)  # fmt: skip
        for s in self.samples:
            for st in State:
                state.add_metric([s.name, str(st)], 1.0 if s.state == str(st) else 0.0)
            v = s.stats
            if "cpu.time" not in v:
                continue
            cpu.add_metric([s.name], int(v["cpu.time"]) / 1e9)
            rss.add_metric([s.name], int(v.get("balloon.rss", 0)) * 1024.0)
            bal.add_metric([s.name], int(v.get("balloon.current", 0)) * 1024.0)
            rd.add_metric([s.name], float(_total(v, "block", "rd.bytes")))
            wr.add_metric([s.name], float(_total(v, "block", "wr.bytes")))
            rx.add_metric([s.name], float(_total(v, "net", "rx.bytes")))
            tx.add_metric([s.name], float(_total(v, "net", "tx.bytes")))
        yield from (state, cpu, rss, bal, rd, wr, rx, tx)


def _total(v: dict[str, int | str], group: str, key: str) -> int:
    n = int(v.get(f"{group}.count", 0))
    return sum(int(v.get(f"{group}.{i}.{key}", 0)) for i in range(n))


class Latency:
    """ASGI middleware: observe each HTTP request's duration by method and route template."""

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = int(msg["status"])
            await send(msg)

        try:
            await self.app(scope, receive, send_)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or ("<unmatched>" if status == 404 else "?")
            self.histogram.labels(scope.get("method", "?"), template).observe(
                time.perf_counter() - t0
            )


def router(svc: Service, registry: CollectorRegistry, domains: DomainCollector) -> APIRouter:
    r = APIRouter(tags=["stats"])

    @r.get("/v1/stats", response_model=StatsOut)
    async def get_stats(
        domain: Annotated[list[str] | None, Query(description="domain names (default all)")] = None,
        groups: Annotated[str | None, Query(description="comma-separated: " + GROUPS)] = None,
        active: Annotated[bool, Query(description="running domains only")] = False,
    ) -> dict[str, Any]:
        ts, samples = await stats.collect(svc, domain, stats.parse_groups(groups),
                                          active_only=active)  # fmt: skip
        return {"timestamp": ts, "domains": [s.__dict__ for s in samples]}

    prom: dict[int | str, dict[str, Any]] = {
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}
    }

    @r.get("/metrics", response_class=Response, responses=prom)
    async def metrics() -> Response:
        _, domains.samples = await stats.collect(svc, None, {"state", "cpu", "balloon", "block",
                                                             "interface"})  # fmt: skip
        try:
            body = generate_latest(registry)
        finally:
            domains.samples = []
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return r


def install(app: FastAPI, svc: Service) -> None:
    """Add /v1/stats, /metrics and the latency middleware to ``app``."""
    registry = CollectorRegistry(auto_describe=True)
    domains = DomainCollector()
    registry.register(domains)
    hist = Histogram("virtkit_api_request_seconds", "daemon API request latency",
                     ["method", "route"], registry=registry)  # fmt: skip
    app.add_middleware(Latency, histogram=hist)
    app.include_router(router(svc, registry, domains))
