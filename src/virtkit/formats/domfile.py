"""Our own domain file format (YAML or JSON) <-> model.

The file maps 1:1 onto ``virtkit.model.domain.Domain``. Unknown fields are an
error naming the field; every validation failure is reported with its field path.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from pydantic import ValidationError

from virtkit.errors import ConfigError
from virtkit.model.domain import Domain

MAX_FILE_BYTES = 1 << 20


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2's plain scalars: no base-60 numbers (unquoted
    52:54:00:12:34:56 is a MAC) and only true/false are booleans (a domain named
    `off`, `no` or `yes` stays a name)."""


_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_BOOL_TAG = "tag:yaml.org,2002:bool"
_BOOL_12 = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, re.compile("(?!.*:)" + rx.pattern, rx.flags) if tag in _NUMBER_TAGS
         else _BOOL_12 if tag == _BOOL_TAG else rx)
        for tag, rx in resolvers
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}  # fmt: skip


def describe_validation(err: ValidationError, source: str) -> str:
    """Turn pydantic's report into lines that name the field and the problem."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = str(e["msg"]).removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field (remove it, or check its spelling)"
        elif e["type"] == "missing":
            msg = "required field is missing"
        lines.append(f"  {loc}: {msg}")
    return f"{source}: invalid domain definition:\n" + "\n".join(lines)


def parse_mapping(text: str, source: str) -> dict[str, Any]:
    if len(text.encode()) > MAX_FILE_BYTES:
        raise ConfigError(f"{source}: file is larger than 1 MiB; a domain definition is smaller")
    stripped = text.lstrip()
    try:
        data = json.loads(text) if stripped.startswith("{") else yaml.load(text, _Loader)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{source}: not valid YAML or JSON: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to be a domain definition") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a mapping of fields (name: ..., memory_mib: ...), "
            f"got {type(data).__name__}"
        )
    return data


def domain_from_mapping(data: dict[str, Any], source: str = "domain") -> Domain:
    try:
        return Domain.model_validate(data)
    except ValidationError as err:
        raise ConfigError(describe_validation(err, source)) from None


def domain_from_text(text: str, source: str = "domain") -> Domain:
    """Parse YAML or JSON text into a validated Domain (raises ConfigError)."""
    return domain_from_mapping(parse_mapping(text, source), source)


def domain_to_mapping(dom: Domain) -> dict[str, Any]:
    """The stored/exported form: defaults left out so files stay short."""
    return dom.model_dump(mode="json", exclude_defaults=True)


def domain_to_yaml(dom: Domain) -> str:
    return yaml.safe_dump(domain_to_mapping(dom), sort_keys=False)
