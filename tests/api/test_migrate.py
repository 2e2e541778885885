"""Migration routes in process (no QEMU): refusals on both sides, job views, parameters.
Responses are validated against the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable

from tests.api.conftest import UUIDS, Api, Scenario

Run = Callable[[Scenario], None]


async def define(c: Api, name: str) -> None:
    await c.define({"config": {"name": name, "nics": [{}]}})


def test_migrate_refusals(api: Run) -> None:
    async def scenario(c: Api) -> None:
        body = {"dest_uri": "unix:///nowhere/virtkitd.sock", "live": True}
        await c.error("POST", "/v1/domains/nope/migrate", 404, "not-found", json=body)
        await define(c, "web")
        msg = await c.error("POST", "/v1/domains/web/migrate", 409, "state", json=body)
        assert "not running" in msg
        bad = {"dest_uri": "qemu+ssh://host/system"}
        msg = await c.error("POST", "/v1/domains/web/migrate", 400, "config", json=bad)
        assert "virtkit+tcp://HOST[:PORT]/system" in msg
        self_uri = {"dest_uri": f"unix://{c.svc.paths.socket}"}
        msg = await c.error("POST", "/v1/domains/web/migrate", 400, "config", json=self_uri)
        assert "this daemon" in msg
        slow = {"dest_uri": "unix:///x", "bandwidth_mib_s": 0}
        await c.error("POST", "/v1/domains/web/migrate", 400, "config", json=slow)

    api(scenario)


def test_job_and_params_without_a_running_guest(api: Run) -> None:
    async def scenario(c: Api) -> None:
        await define(c, "web")
        assert await c.get("/v1/domains/web/job") == {"current": None, "completed": None}
        msg = await c.error("DELETE", "/v1/domains/web/job", 409, "state")
        assert "no active job" in msg and "--completed" in msg
        await c.error("GET", "/v1/domains/nope/job", 404, "not-found")
        await c.error("GET", "/v1/domains/web/migration-params", 409, "state")
        put = {"max_downtime_ms": 100}
        await c.error("PUT", "/v1/domains/web/migration-params", 409, "state", json=put)
        await c.error("PUT", "/v1/domains/web/migration-params", 400, "config",
                      json={"max_downtime_ms": 0})  # fmt: skip

    api(scenario)


def test_destination_refusals(api: Run) -> None:
    async def scenario(c: Api) -> None:
        await define(c, "web")
        # another domain of that name (another uuid) is defined here
        spec = {"domain": {"name": "web", "uuid": UUIDS[500], "accel": "tcg"}}
        msg = await c.error("POST", "/v1/migrations/incoming", 400, "config", json=spec)
        assert "another domain named 'web'" in msg
        # the uuid belongs to another domain here
        uuid = c.svc.entry("web").domain.uuid
        spec = {"domain": {"name": "db", "uuid": uuid, "accel": "tcg"}}
        msg = await c.error("POST", "/v1/migrations/incoming", 400, "config", json=spec)
        assert "is used by domain 'web'" in msg
        await c.error("POST", "/v1/migrations/incoming", 400, "config",
                      json={"domain": {"name": "x"}, "surprise": 1})  # fmt: skip
        # finish/abort only touch a domain that is being received
        msg = await c.error("POST", "/v1/migrations/incoming/web/finish", 409, "state",
                            json={"persistent": False})  # fmt: skip
        assert "no incoming migration" in msg
        await c.error("DELETE", "/v1/migrations/incoming/web", 409, "state")
        await c.error("DELETE", "/v1/migrations/incoming/nope", 404, "not-found")
        assert "web" in c.svc.entries  # nothing was removed

    api(scenario)
