"""`install --disk size=N` (no path=) puts the new disk in the daemon's own ``default``
pool, under its state directory, decided by the daemon (issue 12, finding 4): two daemons
with different state directories do not collide on one hard-coded image directory, and
`undefine --remove-all-storage` deletes the disk (it is a managed volume)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import Daemon

pytestmark = pytest.mark.qemu


def test_new_disk_lands_in_each_daemons_default_pool(daemon: Daemon, tiny: object) -> None:
    other = Daemon(Path(tempfile.mkdtemp(prefix="vk", dir="/tmp")))
    other.start()
    boot = f"kernel={tiny.kernel},initrd={tiny.initrd},kernel_args=console=ttyS0"  # type: ignore[attr-defined]
    try:
        for d in (daemon, other):  # the same guest name on both
            r = d.cli("install", "--name", "nd", "--memory", "256", "--boot", boot,
                      "--disk", "size=0.01", "--network", "none", "--graphics", "none",
                      "--noautoconsole")  # fmt: skip
            img = d.state_dir / "images" / "nd.qcow2"
            assert f"Created disk {img}" in r.stderr, r.stderr
        for d in (daemon, other):
            img = d.state_dir / "images" / "nd.qcow2"
            assert img.is_file()
            assert str(img) in d.cli("domblklist", "nd").stdout
            assert "nd.qcow2" in d.cli("vol-list", "default").stdout  # a volume of the pool
            d.cli("destroy", "nd")
            out = d.cli("undefine", "nd", "--remove-all-storage")
            assert "not managed" not in out.stdout + out.stderr
            assert not img.exists()
            assert "nd.qcow2" not in d.cli("vol-list", "default").stdout
            # the name is free again: a second install gets the same file name
            d.cli("install", "--name", "nd", "--memory", "256", "--boot", boot,
                  "--disk", "size=0.01", "--network", "none", "--graphics", "none",
                  "--noautoconsole")  # fmt: skip
            assert img.is_file()
            d.cli("destroy", "nd")
            d.cli("undefine", "nd", "--remove-all-storage")
            assert not img.exists()
    finally:
        other.cleanup()
        subprocess.run(["rm", "-rf", str(other.base)], check=False)
