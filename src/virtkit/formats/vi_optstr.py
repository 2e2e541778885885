"""virt-install's sub-option grammar: ``--disk /a.qcow2,size=5,bus=virtio``.

Split like virt-install's ``_parse_optstr_tuples``: commas separate items,
shell-style quotes group (``--extra-args`` is a plain option, but
``--location 'http://h/x?a=1,2',kernel=k`` needs them) and a backslash escapes
the next character. Leading items without ``=`` fill the option's "first"
keys (``--vcpus 2`` means ``vcpus=2``); later bare items are flags (``--boot
hd,cdrom,uefi``) whose value is ``None``.
"""

from __future__ import annotations

import difflib
import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from virtkit.errors import ConfigError

TRUE = ("on", "yes", "true", "1")
FALSE = ("off", "no", "false", "0")


def split_items(option: str, text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True)
    lexer.commenters = ""
    lexer.whitespace = ","
    lexer.whitespace_split = True
    try:
        return [item for item in lexer if item]
    except ValueError as exc:  # "No closing quotation", "No escaped character"
        raise ConfigError(f"{option} {text!r}: {exc}; close the quote or escape it") from None


@dataclass
class SubOpts:
    """The parsed items of one option occurrence, consumed key by key."""

    option: str
    items: list[tuple[str, str | None]]
    valid: Sequence[str]
    used: set[int] = field(default_factory=set)

    def names(self) -> list[str]:
        return [k for k, _ in self.items]

    def has(self, key: str) -> bool:
        return key in self.names()

    def get(self, *keys: str) -> str | None:
        """The last value given for any of ``keys`` (aliases), marking them used."""
        found: str | None = None
        for i, (k, v) in enumerate(self.items):
            if k in keys:
                self.used.add(i)
                if v is None:
                    raise ConfigError(f"{self.option}: {k} needs a value ({k}=...)")
                found = v
        return found

    def flag(self, *keys: str) -> bool | None:
        """A boolean: a bare key means on; on/off/yes/no/true/false/1/0 otherwise."""
        found: bool | None = None
        for i, (k, v) in enumerate(self.items):
            if k not in keys:
                continue
            self.used.add(i)
            if v is None or v.lower() in TRUE:
                found = True
            elif v.lower() in FALSE:
                found = False
            else:
                raise ConfigError(f"{self.option}: {k}={v!r} must be on or off")
        return found

    def take_bare(self, names: Sequence[str]) -> list[str]:
        """Bare flag items among ``names``, in the order given (``--boot hd,cdrom``)."""
        out = []
        for i, (k, v) in enumerate(self.items):
            if k in names and v is None:
                self.used.add(i)
                out.append(k)
        return out

    def finish(self) -> None:
        """Reject every item nobody consumed: name the key and list the valid ones."""
        for i, (k, v) in enumerate(self.items):
            if i in self.used:
                continue
            shown = k if v is None else f"{k}={v}"
            hint = difflib.get_close_matches(k, list(self.valid), n=1)
            maybe = f" (did you mean {hint[0]}?)" if hint else ""
            if v is None and not k.replace("-", "").replace(".", "").isalnum():
                maybe += (
                    " — a value containing commas must be quoted: "
                    "'key=\"a,b\"' (double quotes inside the shell's single quotes)"
                )
            raise ConfigError(
                f"{self.option}: unknown sub-option {shown!r}{maybe}; "
                f"valid keys are: {', '.join(self.valid)}"
            )


def parse(
    option: str,
    text: str,
    *,
    valid: Sequence[str],
    first: Sequence[str] = (),
) -> SubOpts:
    """Split ``text`` and name the leading bare items after ``first``."""
    pending = list(first)
    items: list[tuple[str, str | None]] = []
    raws = split_items(option, text)
    if not raws:
        raise ConfigError(f"{option}: empty value; give {option} VALUE[,key=value...]")
    for raw in raws:
        if "=" in raw:
            key, value = raw.split("=", 1)
            pending = []
        elif pending:
            key, value = pending.pop(0), raw
        else:
            key, value = raw, None
        items.append((key, value))
    return SubOpts(option, items, valid)


def to_int(option: str, key: str, value: str, *, low: int, high: int) -> int:
    try:
        n = int(value, 10)
    except ValueError:
        raise ConfigError(f"{option}: {key}={value!r} is not a whole number") from None
    if not low <= n <= high:
        raise ConfigError(f"{option}: {key}={n} is out of range; use {low} to {high}")
    return n


def to_float(option: str, key: str, value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise ConfigError(f"{option}: {key}={value!r} is not a number") from None
    if not math.isfinite(x):
        raise ConfigError(f"{option}: {key}={value!r} is not a finite number")
    return x


def check_choice(option: str, key: str, value: str, choices: Sequence[str]) -> str:
    low = value.lower()
    if low not in choices:
        raise ConfigError(
            f"{option}: {key}={value!r} is not supported; use one of: " + ", ".join(choices)
        )
    return low
