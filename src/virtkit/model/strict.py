"""Strict scalar types for every model: a number is a number, a flag is a flag.

pydantic's lax mode turns ``true`` into 1, ``1.0`` into 1 and ``"64"`` into 64; a domain
file with ``vcpus: true`` would then define a guest the user did not write. Strict mode
would also refuse enums given as strings (``bus: virtio``), which files must keep, so
:class:`StrictModel` checks only the int, float and bool fields (and lists, sets and
dicts of them), before pydantic converts anything, and names field and expected type:
``vcpus: expected an integer, got true``.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Union

from pydantic import BaseModel, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

_WORDS = {int: "an integer", float: "a number", bool: "a boolean (true or false)"}


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _fits(kind: type, value: Any) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, int | float) and not isinstance(value, bool)  # float


def _check(tp: Any, value: Any) -> str | None:
    """What ``value`` should have been, if it is a wrong scalar for annotation ``tp``."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _check(typing.get_args(tp)[0], value)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        scalars = [a for a in args if a in _WORDS]
        if scalars and len(scalars) == len(args):
            if any(_fits(a, value) for a in scalars):
                return None
            return " or ".join(_WORDS[a] for a in scalars)
        if len(args) == 1:
            return _check(args[0], value)
        return None
    if tp in _WORDS:
        return None if _fits(tp, value) else _WORDS[tp]
    if origin in (list, set, frozenset, tuple) and isinstance(value, list | tuple | set):
        items = [a for a in typing.get_args(tp) if a is not Ellipsis]
        if len(items) == 1:
            for item in value:
                want = _check(items[0], item)
                if want is not None:
                    return f"a list of items that are each {want}"
        return None
    if origin is dict and isinstance(value, dict):
        kv = typing.get_args(tp)
        if len(kv) == 2:
            for item in value.values():
                want = _check(kv[1], item)
                if want is not None:
                    return f"a mapping to {want}"
    return None


class StrictModel(BaseModel):
    """Base of the model classes: refuses lax conversions of numbers and booleans."""

    @field_validator("*", mode="before")
    @classmethod
    def _strict_scalars(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name is None:
            return value
        field = cls.model_fields.get(info.field_name)
        if field is None:
            return value
        want = _check(field.annotation, value)
        if want is not None:
            raise PydanticCustomError(
                "strict_type", "expected {want}, got {got}", {"want": want, "got": _shown(value)}
            )
        return value
