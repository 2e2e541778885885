"""The checked-in OpenAPI document of the daemon API.

    python -m virtkit.daemon.api.openapi      # regenerate openapi.json next to this file

tests/api/test_openapi.py fails when the app and the checked-in file disagree.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from virtkit.paths import Paths

OPENAPI_JSON = Path(__file__).with_name("openapi.json")


def render(doc: dict[str, Any]) -> str:
    """The exact text of the checked-in file for ``doc``."""
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def generate() -> dict[str, Any]:
    """The OpenAPI document of ``create_app``, built against a throwaway state directory."""
    from virtkit.daemon.api.app import create_app
    from virtkit.daemon.service import Service

    async def build(base: Path) -> dict[str, Any]:
        paths = Paths("session", base / "state", base / "run")
        paths.ensure()
        svc = Service(paths)
        try:
            return create_app(svc).openapi()
        finally:
            svc.store.close()

    with tempfile.TemporaryDirectory(prefix="virtkit-openapi-") as tmp:
        return asyncio.run(build(Path(tmp)))


def main() -> None:
    OPENAPI_JSON.write_text(render(generate()))
    print(f"wrote {OPENAPI_JSON}")


if __name__ == "__main__":
    main()
