"""The checked-in OpenAPI document is what the app generates, and valid OpenAPI 3.1."""

from __future__ import annotations

import json
from typing import Any

from openapi_spec_validator import validate
from openapi_spec_validator.validation.validators import OpenAPIV31SpecValidator

from virtkit.daemon.api.openapi import OPENAPI_JSON, generate, render

REGEN = "python -m virtkit.daemon.api.openapi"


def checked_in() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(OPENAPI_JSON.read_text())
    return doc


def test_checked_in_document_is_current() -> None:
    generated = generate()
    assert checked_in() == generated, f"the API changed: run `{REGEN}` and commit openapi.json"
    assert OPENAPI_JSON.read_text() == render(generated), f"not in canonical form: run `{REGEN}`"


def test_valid_openapi_3_1() -> None:
    doc = checked_in()
    assert doc["openapi"].startswith("3.1.")
    validate(doc, cls=OpenAPIV31SpecValidator)


def test_every_operation_documents_errors_as_error_body() -> None:
    doc = checked_in()
    ref = {"$ref": "#/components/schemas/ErrorBody"}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            default = op["responses"]["default"]
            assert default["content"]["application/json"]["schema"] == ref, (method, path)
            ok = [s for s in op["responses"] if s.startswith("2")]
            assert len(ok) == 1, (method, path)


def test_expected_operations() -> None:
    ops = {(m.upper(), p) for p, item in checked_in()["paths"].items() for m in item}
    verbs = ["start", "shutdown", "reboot", "reset", "destroy", "suspend", "resume"]
    expected = {
        ("GET", "/v1/version"),
        ("GET", "/v1/domains"),
        ("POST", "/v1/domains"),
        ("GET", "/v1/domains/{name}"),
        ("DELETE", "/v1/domains/{name}"),
        ("GET", "/v1/domains/{name}/config"),
        ("PUT", "/v1/domains/{name}/autostart"),
        ("GET", "/v1/events"),
        *{("POST", f"/v1/domains/{{name}}/{v}") for v in verbs},
    }
    assert expected <= ops
