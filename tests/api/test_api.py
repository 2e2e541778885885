"""The daemon API in-process (no QEMU): define/list/info/config/undefine/autostart,
errors with their statuses, body limits, events. Every response is validated
against the checked-in OpenAPI document (see conftest.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import pytest

import virtkit
from tests.api.conftest import MACS, UUIDS, Api, Scenario, validate
from virtkit.daemon.locks import DomainKey

Run = Callable[[Scenario], None]

YAML = "name: web\nmemory_mib: 256\nvcpus: 1\nmax_vcpus: 2\n"


def test_version(api: Run) -> None:
    async def scenario(c: Api) -> None:
        body = await c.get("/v1/version")
        assert body == {
            "version": virtkit.__version__,
            "mode": "session",
            "state_dir": str(c.svc.paths.state_dir),
        }

    api(scenario)


def test_define_yaml_then_list_info_config(api: Run) -> None:
    async def scenario(c: Api) -> None:
        created = await c.define_yaml(YAML)
        assert created == {
            "id": None,
            "name": "web",
            "uuid": UUIDS[0],
            "state": "shut off",
            "reason": "unknown",
            "autostart": False,
            "persistent": True,
        }
        assert await c.get("/v1/domains") == []
        assert await c.get("/v1/domains", params={"all": "true"}) == [created]
        info = await c.get("/v1/domains/web")
        assert info["name"] == "web"
        assert (info["vcpus"], info["max_vcpus"]) == (1, 2)
        assert (info["memory_mib"], info["max_memory_mib"]) == (256, 256)
        assert info["pid"] is None
        assert info["accel"] is None
        assert info["machine"] == "q35"
        assert info["operation"] is None
        config = await c.get("/v1/domains/web/config")
        assert config == {"name": "web", "uuid": UUIDS[0], "memory_mib": 256, "max_vcpus": 2}

    api(scenario)


def test_define_json_config_fills_macs_and_targets(api: Run) -> None:
    async def scenario(c: Api) -> None:
        disk = c.image("db.qcow2")
        config = {"name": "db", "disks": [{"path": disk}], "nics": [{}, {"model": "e1000"}]}
        created = await c.define({"config": config})
        assert created["name"] == "db"
        stored = await c.get("/v1/domains/db/config")
        assert stored["disks"] == [
            {"path": disk, "format": "qcow2", "bus": "virtio", "target": "vda"}
        ]
        assert [n.get("mac") for n in stored["nics"]] == MACS[:2]

    api(scenario)


def test_define_json_text(api: Run) -> None:
    async def scenario(c: Api) -> None:
        created = await c.define({"text": json.dumps({"name": "j1", "memory_mib": 128})})
        assert created["name"] == "j1"
        assert (await c.get("/v1/domains/j1"))["memory_mib"] == 128

    api(scenario)


def test_redefine_with_same_uuid_updates(api: Run) -> None:
    async def scenario(c: Api) -> None:
        await c.define_yaml(YAML)
        await c.define_yaml(f"name: web\nuuid: {UUIDS[0]}\nmemory_mib: 512\n")
        assert (await c.get("/v1/domains/web"))["memory_mib"] == 512
        assert len(await c.get("/v1/domains", params={"all": "true"})) == 1

    api(scenario)


def test_list_order_and_all(api: Run) -> None:
    async def scenario(c: Api) -> None:
        for name in ("c", "a", "b"):
            await c.define({"config": {"name": name}})
        names = [d["name"] for d in await c.get("/v1/domains", params={"all": "true"})]
        assert names == ["a", "b", "c"]

    api(scenario)


def test_undefine(api: Run) -> None:
    async def scenario(c: Api) -> None:
        await c.define_yaml(YAML)
        resp = await c.call("DELETE", "/v1/domains/web", expect=204)
        assert resp.content == b""
        await c.error("GET", "/v1/domains/web", 404, "not-found")
        assert await c.get("/v1/domains", params={"all": "true"}) == []
        # The name is free again.
        await c.define_yaml(YAML)

    api(scenario)


def test_autostart(api: Run) -> None:
    async def scenario(c: Api) -> None:
        await c.define_yaml(YAML)
        url = "/v1/domains/web/autostart"
        on = (await c.call("PUT", url, json_body={"enabled": True}, expect=200)).json()
        assert on["autostart"] is True
        assert (await c.get("/v1/domains/web"))["autostart"] is True
        off = (await c.call("PUT", url, json_body={"enabled": False}, expect=200)).json()
        assert off["autostart"] is False
        msg = await c.error("PUT", url, 400, "config", json_body={"enabled": "maybe"})
        assert "enabled" in msg
        msg = await c.error("PUT", url, 400, "config", json_body={"enable": True})
        assert "enable" in msg

    api(scenario)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("name: -bad\n", ["name", "invalid domain name '-bad'"]),
        ("name: 'a/b'\n", ["name", "invalid domain name 'a/b'"]),
        ("name: web\nmemory_mib: 0\n", ["memory_mib", "greater than or equal to 16"]),
        ("name: web\nmemroy_mib: 512\n", ["memroy_mib", "unknown field"]),
        ("name: web\nvcpus: 100000\n", ["vcpus", "less than or equal to 1024"]),
        ("name: web\nnics:\n  - mac: 01:00:5e:00:00:01\n", ["nics.0.mac", "multicast"]),
        (
            "name: web\nboot:\n  kernel: /nonexistent/vmlinuz\n",
            ["kernel /nonexistent/vmlinuz", "do not exist"],
        ),
        ("name: web\ndisks:\n  - path: /nonexistent/a.img\n", ["disk image /nonexistent/a.img"]),
        ("memory_mib: 512\n", ["name: required field is missing"]),
        ("[1, 2]\n", ["expected a mapping"]),
        ("name: [\n", ["not valid YAML or JSON"]),
    ],
)
def test_define_errors(api: Run, text: str, words: list[str]) -> None:
    async def scenario(c: Api) -> None:
        msg = await c.error(
            "POST", "/v1/domains", 400, "config", json_body={"text": text, "source": "bad.yaml"}
        )
        for word in words:
            assert word in msg
        assert await c.get("/v1/domains", params={"all": "true"}) == []

    api(scenario)


def test_define_error_in_json_config_names_the_field(api: Run) -> None:
    async def scenario(c: Api) -> None:
        msg = await c.error(
            "POST",
            "/v1/domains",
            400,
            "config",
            json_body={"config": {"name": "x", "vcpu": 2}, "source": "api"},
        )
        assert msg.startswith("api: invalid domain definition")
        assert "vcpu: unknown field" in msg

    api(scenario)


def test_define_duplicate_name(api: Run) -> None:
    async def scenario(c: Api) -> None:
        await c.define_yaml(YAML)
        msg = await c.error("POST", "/v1/domains", 400, "config", json_body={"text": YAML})
        assert "'web' already exists" in msg
        other = f"name: web\nuuid: {UUIDS[500]}\n"
        msg = await c.error("POST", "/v1/domains", 400, "config", json_body={"text": other})
        assert "already exists" in msg

    api(scenario)


def test_define_duplicate_uuid(api: Run) -> None:
    async def scenario(c: Api) -> None:
        await c.define_yaml(YAML)
        msg = await c.error(
            "POST",
            "/v1/domains",
            400,
            "config",
            json_body={"text": f"name: other\nuuid: {UUIDS[0]}\n"},
        )
        assert f"uuid {UUIDS[0]} is already used by domain 'web'" in msg

    api(scenario)


@pytest.mark.parametrize(
    "body",
    [{}, {"text": 5}, {"config": "name: x"}, {"txt": "name: x"}, {"source": "x" * 5000}],
    ids=["empty", "text-int", "config-str", "unknown-key", "long-source"],
)
def test_define_bad_request_bodies(api: Run, body: dict[str, object]) -> None:
    async def scenario(c: Api) -> None:
        await c.error("POST", "/v1/domains", 400, "config", json_body=body)

    api(scenario)


def test_define_not_json(api: Run) -> None:
    async def scenario(c: Api) -> None:
        await c.error(
            "POST",
            "/v1/domains",
            400,
            "config",
            content=b"name: web",
            headers={"content-type": "application/json"},
        )

    api(scenario)


VERBS = [
    ("GET", "/v1/domains/{}"),
    ("GET", "/v1/domains/{}/config"),
    ("DELETE", "/v1/domains/{}"),
    ("PUT", "/v1/domains/{}/autostart"),
    ("POST", "/v1/domains/{}/start"),
    ("POST", "/v1/domains/{}/shutdown"),
    ("POST", "/v1/domains/{}/reboot"),
    ("POST", "/v1/domains/{}/reset"),
    ("POST", "/v1/domains/{}/destroy"),
    ("POST", "/v1/domains/{}/suspend"),
    ("POST", "/v1/domains/{}/resume"),
]


@pytest.mark.parametrize(("method", "url"), VERBS, ids=[f"{m} {u}" for m, u in VERBS])
def test_unknown_domain_is_404(api: Run, method: str, url: str) -> None:
    async def scenario(c: Api) -> None:
        await c.define_yaml(YAML)  # another domain exists
        body = {"enabled": True} if url.endswith("autostart") else None
        msg = await c.error(method, url.format("nosuch"), 404, "not-found", json_body=body)
        assert "'nosuch' not found" in msg
        assert "virtkit list --all" in msg

    api(scenario)


STOPPED_VERBS = ["shutdown", "destroy", "suspend", "resume", "reboot", "reset"]


@pytest.mark.parametrize("verb", STOPPED_VERBS)
def test_verb_on_stopped_domain_is_409(api: Run, verb: str) -> None:
    async def scenario(c: Api) -> None:
        await c.define_yaml(YAML)
        resp = await c.call("POST", f"/v1/domains/web/{verb}", expect=409)
        body = resp.json()
        assert body["error"] == "state"
        assert "it is not running" in body["message"]
        assert "virtkit start web" in body["message"]
        assert body["details"] == {"current": "shut off", "required": "running"}
        # Nothing changed, and the lock was released.
        assert (await c.get("/v1/domains/web"))["operation"] is None
        assert (await c.get("/v1/domains/web"))["state"] == "shut off"

    api(scenario)


def test_busy_domain_is_409_naming_the_operation(api: Run) -> None:
    async def scenario(c: Api) -> None:
        await c.define_yaml(YAML)
        async with c.svc.locks.hold(DomainKey("web"), "migrate"):
            assert (await c.get("/v1/domains/web"))["operation"] == "migrate"
            msg = await c.error("POST", "/v1/domains/web/destroy", 409, "busy")
            assert "busy" in msg
            assert "migrate" in msg

    api(scenario)


def test_query_parameter_errors(api: Run) -> None:
    async def scenario(c: Api) -> None:
        await c.define_yaml(YAML)
        msg = await c.error(
            "POST", "/v1/domains/web/shutdown", 400, "config", params={"wait_s": "-1"}
        )
        assert "wait_s" in msg
        await c.error("GET", "/v1/events", 400, "config", params={"after": "-5"})
        await c.error("GET", "/v1/events", 400, "config", params={"limit": "0"})
        await c.error("GET", "/v1/domains", 400, "config", params={"all": "perhaps"})

    api(scenario)


def test_body_over_1_mib_is_413(api: Run) -> None:
    async def scenario(c: Api) -> None:
        text = "name: big\n# " + "x" * (1 << 20) + "\n"
        msg = await c.error("POST", "/v1/domains", 413, "config", json_body={"text": text})
        assert "1 MiB" in msg
        assert await c.get("/v1/domains", params={"all": "true"}) == []

    api(scenario)


def test_chunked_body_over_1_mib_is_refused(api: Run) -> None:
    async def scenario(c: Api) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"text": "'
            for _ in range(40):
                yield b"x" * 65536
            yield b'"}'

        resp = await c.call(
            "POST", "/v1/domains", content=chunks(), headers={"content-type": "application/json"}
        )
        assert resp.status_code in (400, 413)
        assert resp.json()["error"] == "config"
        assert await c.get("/v1/domains", params={"all": "true"}) == []

    api(scenario)


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_deeply_nested_json_is_4xx(api: Run, depth: int) -> None:
    async def scenario(c: Api) -> None:
        nested = b'{"config": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"
        resp = await c.call(
            "POST", "/v1/domains", content=nested, headers={"content-type": "application/json"}
        )
        assert 400 <= resp.status_code < 500, resp.text[:500]
        assert resp.json()["error"] == "config"

    api(scenario)


def test_deeply_nested_yaml_text_is_4xx(api: Run) -> None:
    async def scenario(c: Api) -> None:
        text = "name: x\ntitle: " + "[" * 50_000 + "]" * 50_000 + "\n"
        resp = await c.call("POST", "/v1/domains", json_body={"text": text})
        assert 400 <= resp.status_code < 500, resp.text[:500]
        assert resp.json()["error"] == "config"

    api(scenario)


def test_events(api: Run) -> None:
    async def scenario(c: Api) -> None:
        assert await c.get("/v1/events") == []
        await c.define_yaml(YAML)
        await c.define({"config": {"name": "db"}})
        await c.call("DELETE", "/v1/domains/web", expect=204)
        events = await c.get("/v1/events")
        assert [(e["domain"], e["type"], e["detail"]) for e in events] == [
            ("web", "defined", "added"),
            ("db", "defined", "added"),
            ("web", "undefined", "removed"),
        ]
        seqs = [e["seq"] for e in events]
        assert seqs == sorted(seqs) and len(set(seqs)) == 3
        after_first = await c.get("/v1/events", params={"after": seqs[0]})
        assert [e["seq"] for e in after_first] == seqs[1:]
        assert await c.get("/v1/events", params={"after": seqs[-1]}) == []
        only_web = await c.get("/v1/events", params={"domain": "web"})
        assert [e["type"] for e in only_web] == ["defined", "undefined"]
        first = await c.get("/v1/events", params={"limit": 1})
        assert [e["seq"] for e in first] == seqs[:1]
        # A long poll with nothing new returns an empty list after its timeout.
        assert await c.get("/v1/events", params={"after": seqs[-1], "wait_s": 0.05}) == []

    api(scenario)


def test_unknown_route_and_method_give_error_bodies(api: Run) -> None:
    async def scenario(c: Api) -> None:
        for method, url, status in (("GET", "/v1/nosuch", 404), ("PATCH", "/v1/domains", 405)):
            resp = await c.client.request(method, url)
            assert resp.status_code == status
            validate(resp.json(), "components", "schemas", "ErrorBody")

    api(scenario)


def test_moderately_nested_config_is_a_config_error(api: Run) -> None:
    async def scenario(c: Api) -> None:
        nested: object = 1
        for _ in range(200):
            nested = {"a": nested}
        msg = await c.error(
            "POST",
            "/v1/domains",
            400,
            "config",
            json_body={"config": {"name": "x", "boot": nested}},
        )
        assert "boot.a: unknown field" in msg

    api(scenario)
