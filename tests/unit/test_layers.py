"""Import contract: dependencies between layers point one way, down (DESIGN "Layers").

Every module under src/virtkit (and bench/) is parsed with `ast`; every
`virtkit.X` import -- at module level, inside functions, under TYPE_CHECKING --
is mapped to its layer. A module may import its own layer, the base, and any
layer of a LOWER rank; importing a higher rank, or a peer of the same rank, fails
with file:line and the rule broken. Known upward imports are listed, with the
reason, in ALLOWED; an entry that no longer matches anything fails too, so the
list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "virtkit"

# Rank of each top-level part of virtkit, low to high. Same rank = peers, which
# must not import each other (give them an order here and in DESIGN first).
BASE = 0
RANKS: dict[str, int] = {
    # base: may be imported by every layer, imports no layer
    "virtkit": BASE,  # the package itself (__version__)
    "errors": BASE,
    "paths": BASE,
    "fsutil": BASE,
    "revert": BASE,  # the revert stack of every multi-step operation
    # pure data, then formats over it
    "model": 1,
    "formats": 2,
    # pure QEMU argv / caps / QMP wrappers, and host facts
    "qemu": 3,
    "host": 3,
    # side effects on disks and networks; guests/ builds the test/demo guest
    # images (apt-get download, cpio, ISO) and needs only the base
    "storage": 4,
    "network": 4,
    "guests": 4,
    "runtime": 5,
    "daemon": 6,
    "client": 7,
    # the CLI and the web manager are the top: they use the client / the API
    "cli": 8,
    "web": 8,
    # bench/ (outside src) drives everything; nothing in virtkit imports it
    "bench": 9,
}

# (importing file relative to the repo root, imported module) -> why it is allowed.
# Each is an upward import that exists today; new ones must not be added here
# lightly: move the shared code down instead.
ALLOWED: dict[tuple[str, str], str] = {
    # daemon -> client: a daemon dialing a peer daemon (migration) reuses the
    # CLI's TLS conventions (tls_target, client_context). Should move down, e.g.
    # to a base tls module both use.
    ("src/virtkit/daemon/migration/peer.py", "virtkit.client.tls"): "peer TLS reuses client's",
    # daemon -> web: the daemon serves the built front end, which it finds as
    # the package data of virtkit.web (no Python code is imported).
    ("src/virtkit/daemon/api/web.py", "virtkit.web"): "static files as package data",
}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "bench":
        return "bench"
    if parts[0] != "virtkit":
        return None
    return parts[1] if len(parts) > 1 else "virtkit"


def _own_layer(path: Path) -> str:
    rel = path.relative_to(ROOT)
    if rel.parts[0] == "bench":
        return "bench"
    top = rel.relative_to("src/virtkit").parts[0].removesuffix(".py")
    return "virtkit" if top == "__init__" else top


def _package(path: Path) -> list[str]:
    """The dotted package a module's relative imports resolve against."""
    rel = path.relative_to(ROOT)
    parts = list(rel.parts[2:] if rel.parts[0] == "src" else rel.parts)
    return parts[:-1] if parts[0] == "bench" else ["virtkit", *parts[1:-1]]


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_bytes(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = _package(path)
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join([*pkg, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            if base in ("virtkit", "bench"):  # from virtkit import paths
                found += [(node.lineno, f"{base}.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, base))
    return found


def _modules() -> list[Path]:
    files = sorted(SRC.rglob("*.py")) + sorted((ROOT / "bench").rglob("*.py"))
    return [f for f in files if "__pycache__" not in f.parts]


def _violations() -> tuple[list[str], set[tuple[str, str]]]:
    broken: list[str] = []
    used: set[tuple[str, str]] = set()
    for path in _modules():
        rel = path.relative_to(ROOT).as_posix()
        own = _own_layer(path)
        if own not in RANKS:
            broken.append(f"{rel}: layer {own!r} has no rank in RANKS (add it, and to DESIGN)")
            continue
        for line, module in _imports(path):
            target = _layer(module)
            if target is None or target == own:
                continue
            if target not in RANKS:
                broken.append(f"{rel}:{line}: imports {module}: layer {target!r} has no rank")
                continue
            mine, theirs = RANKS[own], RANKS[target]
            if theirs == BASE or theirs < mine:
                continue
            if (rel, module) in ALLOWED:
                used.add((rel, module))
                continue
            if own != "bench" and target == "bench":
                rule = "virtkit never imports bench/"
            elif mine == BASE:
                rule = f"the base ({own}) imports no layer"
            elif theirs == mine:
                rule = f"{own} and {target} are peers (rank {mine}): neither imports the other"
            else:
                rule = f"{own} (rank {mine}) must not import {target} (rank {theirs})"
                rule += ": imports point down"
            broken.append(f"{rel}:{line}: imports {module}: {rule}")
    return broken, used


def test_every_layer_has_a_rank() -> None:
    tops = {p.name.removesuffix(".py") for p in SRC.iterdir() if p.suffix == ".py" or p.is_dir()}
    tops -= {"__pycache__", "__init__"}
    assert tops - RANKS.keys() == set()


def test_imports_point_down() -> None:
    broken, used = _violations()
    stale = [f"{f}: {m} not imported any more: drop it" for f, m in ALLOWED.keys() - used]
    assert broken + stale == []
