"""--network bridge=NAME: a tap on an existing bridge; a missing bridge is a clear error.

The test makes its own bridge and a peer in a network namespace it creates (veth), so
traffic never leaves this machine.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon, tiny_yaml
from tests.integration.test_survival import console_roundtrip

pytestmark = pytest.mark.qemu


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def bridge() -> Iterator[tuple[str, str]]:
    tag = uuid.uuid4().hex[:6]
    br, ns, veth = f"vkbr{tag}", f"vkns{tag}", f"vkv{tag}"
    ip("link", "add", br, "type", "bridge")
    ip("link", "set", br, "up")
    ip("netns", "add", ns)
    try:
        ip("link", "add", veth, "type", "veth", "peer", "name", "peer0", "netns", ns)
        ip("link", "set", veth, "master", br, "up")
        ip("-n", ns, "addr", "add", "10.251.7.1/24", "dev", "peer0")
        ip("-n", ns, "link", "set", "peer0", "up")
        yield br, ns
    finally:
        subprocess.run(["ip", "link", "del", veth], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", br], capture_output=True)


def test_guest_on_bridge_reaches_peer(
    daemon: Daemon, tiny: object, tmp_path: Path, bridge: tuple[str, str]
) -> None:
    br, _ns = bridge
    f = tmp_path / "b.yaml"
    f.write_text(
        tiny_yaml(tiny, "bridged", extra=f"accel: tcg\nnics:\n  - type: bridge\n    source: {br}\n")
    )
    daemon.cli("define", str(f))
    daemon.cli("start", "bridged")
    taps = [n for n in os.listdir(f"/sys/class/net/{br}/brif") if n.startswith("vk") and "n0" in n]
    assert len(taps) == 1, os.listdir(f"/sys/class/net/{br}/brif")
    daemon.wait_console("bridged", "tiny# ")
    console_roundtrip(
        daemon,
        "bridged",
        "ip addr add 10.251.7.2/24 dev eth0; ip link set eth0 up; "
        "ping -c 2 -W 5 10.251.7.1 && echo PING-$((1+1))-OK",
        "PING-2-OK",
    )
    daemon.cli("destroy", "bridged")
    time.sleep(0.2)
    assert not os.path.exists(f"/sys/class/net/{taps[0]}"), "tap left behind"


def test_missing_bridge_is_a_clear_error(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(
        tiny_yaml(
            tiny, "nobr", extra="accel: tcg\nnics:\n  - type: bridge\n    source: vknosuch0\n"
        )
    )
    daemon.cli("define", str(f))
    r = daemon.cli("start", "nobr", check=False)
    assert r.returncode == 2
    assert "bridge 'vknosuch0' does not exist" in r.stderr and "ip link add" in r.stderr
    assert daemon.cli("domstate", "nobr").stdout.strip() == "shut off"
