"""vncdisplay and the websocket -> VNC proxy on real QEMU: loopback TCP and a Unix socket.

The proxy is reached here over the daemon's Unix socket, as `virtkit viewer` would hand
it to a browser: one token per connection, the RFB greeting comes through."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import unix_connect

from tests.conftest import Daemon, tiny_yaml

pytestmark = pytest.mark.qemu


def api(daemon: Daemon, method: str, path: str) -> dict[str, object]:
    out = subprocess.run(["curl", "-sS", "-X", method, "--unix-socket", str(daemon.socket),
                          f"http://localhost{path}"], capture_output=True, text=True,
                         check=True, timeout=30).stdout  # fmt: skip
    doc: dict[str, object] = json.loads(out)
    return doc


def rfb_greeting(daemon: Daemon, name: str) -> bytes:
    session = api(daemon, "POST", f"/v1/domains/{quote(name)}/vnc/session")
    uri = f"ws://localhost{session['path']}"
    binary: Any = ["binary"]
    with unix_connect(str(daemon.socket), uri, subprotocols=binary, compression=None) as ws:
        assert ws.subprotocol == "binary"
        data = ws.recv(timeout=20)
    assert isinstance(data, bytes)
    with pytest.raises(InvalidStatus):  # the token was used up
        unix_connect(str(daemon.socket), uri, compression=None).close()
    return data


def test_vncdisplay_and_proxy(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    for name, graphics in (("vt", "{type: vnc}"), ("vs", "{type: vnc, listen: socket}")):
        f = tmp_path / f"{name}.yaml"
        f.write_text(tiny_yaml(tiny, name, extra=f"accel: tcg\ngraphics: {graphics}\n"))
        daemon.cli("define", str(f))
        daemon.cli("start", name)
    tcp = daemon.cli("vncdisplay", "vt").stdout.strip()
    assert re.fullmatch(r"127\.0\.0\.1:\d+", tcp), tcp
    sock = daemon.cli("vncdisplay", "vs").stdout.strip()
    assert sock.startswith(str(daemon.run_dir)) and sock.endswith("/vnc.sock"), sock
    assert Path(sock).is_socket()
    for name in ("vt", "vs"):
        assert rfb_greeting(daemon, name).startswith(b"RFB 003.00")
    url = daemon.cli("viewer", "vs", "--print").stdout.strip()
    assert "/ui/login?token=" in url and url.endswith("next=/ui/%23/domain/vs/display")
    r = daemon.cli("vncdisplay", "nosuch", check=False)
    assert r.returncode == 3
    daemon.cli("destroy", "vs")
    r = daemon.cli("viewer", "vs", "--print", check=False)
    assert r.returncode == 4 and "not running" in r.stderr
