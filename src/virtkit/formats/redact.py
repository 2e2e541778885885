"""Secrets never leave the daemon: what API output and logs show instead of them.

Secrets are the VNC password (``graphics.password``) and cloud-init passwords. They
are stored (the daemon needs them) but every export (dumpconfig, install dry runs,
dumpxml) drops them, like libvirt without ``--security-info``, and log lines have
them masked (the QMP library logs every command at DEBUG level, set_password too).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from virtkit.model.domain import Domain

MASK = "***"
_SECRET_KEYS = "password|passwd|root_password|secret|chpasswd"
_QUOTED = re.compile(rf"""(['"]?(?:{_SECRET_KEYS})['"]?\s*[:=]\s*)(['"])(?:\\.|(?!\2).)*\2""",
                     re.IGNORECASE)  # fmt: skip
_BARE = re.compile(rf"""((?:{_SECRET_KEYS})=)(?!(?:on|off)\b)[^\s,'"]+""", re.IGNORECASE)


def public_mapping(dom: Domain) -> dict[str, Any]:
    """The exported form of ``dom``: as stored, without its secrets."""
    data = dom.model_dump(mode="json", exclude_defaults=True)
    graphics = data.get("graphics")
    if isinstance(graphics, dict):
        graphics.pop("password", None)
    return data


def redact_text(text: str) -> str:
    """``text`` with the values of password-like keys masked (log lines)."""
    text = _QUOTED.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}{m.group(2)}", text)
    return _BARE.sub(lambda m: f"{m.group(1)}{MASK}", text)


class SecretFilter(logging.Filter):
    """A logging filter that masks secrets in every record it passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except (TypeError, ValueError):
            return True
        clean = redact_text(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True
