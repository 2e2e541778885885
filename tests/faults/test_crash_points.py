"""The daemon killed in the middle of define, hotplug and snapshot (real QEMU, TCG).

define is one store transaction: a kill -9 at any moment leaves the domain fully there
or not at all. attach-disk and snapshot-create are several steps; the daemon is made to
die at each step (VIRTKIT_CRASH_AT, daemon/intents.py: ``os._exit`` there, as a kill -9
would) and the restarted daemon must finish or undo the operation: one QEMU still
running, the store saying what QEMU and the images really hold, an event naming it.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Daemon, qemu_pids, tiny_yaml
from tests.integration.test_survival import console_roundtrip

pytestmark = pytest.mark.qemu


def crash_at(daemon: Daemon, point: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Restart the daemon armed to die at ``point``; run the CLI call that gets there;
    check the daemon died (137, not a clean error); start it again, unarmed."""
    daemon.kill9()
    daemon.env["VIRTKIT_CRASH_AT"] = point
    try:
        daemon.start()
    finally:
        del daemon.env["VIRTKIT_CRASH_AT"]
    r = daemon.cli(*argv, check=False)
    assert daemon.proc is not None
    assert daemon.proc.wait(30) == 137, (point, r.stdout, r.stderr)
    assert r.returncode != 0
    daemon.proc = None
    daemon.start()
    return r


def recovered(daemon: Daemon) -> list[str]:
    return [ln for ln in daemon.cli("event", "--all").stdout.splitlines() if "recovered" in ln]


def tags(img: Path) -> list[str]:
    out = subprocess.run(["qemu-img", "snapshot", "-l", "-U", str(img)], capture_output=True,
                         text=True, check=True).stdout.splitlines()[2:]  # fmt: skip
    return [ln.split()[1] for ln in out if len(ln.split()) > 1]


def test_kill9_during_define_leaves_all_or_nothing(daemon: Daemon, tmp_path: Path) -> None:
    f = tmp_path / "d.yaml"
    f.write_text("name: dd\nmemory_mib: 64\nvcpus: 1\n")
    for delay in (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5):
        daemon.kill9_during(delay, "define", str(f))
        names = daemon.cli("list", "--all", "--name").stdout.split()
        assert names.count("dd") <= 1, names
        db = sqlite3.connect(daemon.state_dir / "virtkit.db")
        try:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            rows = db.execute("SELECT count(*) FROM domains WHERE name='dd'").fetchone()[0]
        finally:
            db.close()
        assert rows == names.count("dd"), (delay, rows, names)
        if names:  # all of it: a complete, usable definition
            assert "Max memory:     65536 KiB" in daemon.cli("dominfo", "dd").stdout
            daemon.cli("undefine", "dd")
    daemon.cli("define", str(f))  # and nothing half-made blocks the name afterwards
    assert daemon.cli("list", "--all", "--name").stdout.split() == ["dd"]


def boot(daemon: Daemon, tiny: object, tmp_path: Path, name: str, disks: int = 1) -> list[Path]:
    imgs = [tmp_path / f"{name}-{i}.qcow2" for i in range(disks)]
    for img in imgs:
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "32M"], check=True)
    spec = "".join(f"  - path: {img}\n" for img in imgs)
    f = tmp_path / f"{name}.yaml"
    f.write_text(tiny_yaml(tiny, name, extra=f"accel: tcg\ndisks:\n{spec}"))
    daemon.cli("define", str(f))
    daemon.cli("start", name)
    daemon.wait_console(name, "tiny# ")
    return imgs


def still_running(daemon: Daemon, name: str, word: str) -> None:
    assert len(qemu_pids(str(daemon.run_dir))) == 1
    assert daemon.cli("domstate", name).stdout.strip() == "running"
    console_roundtrip(daemon, name, f"echo {word}-$((40+2))", f"{word}-42")


def test_crash_during_attach_disk_is_undone_or_completed(
    daemon: Daemon, tiny: object, tmp_path: Path
) -> None:
    boot(daemon, tiny, tmp_path, "hp")
    extra = tmp_path / "extra.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(extra), "16M"], check=True)
    add = ("attach-disk", "hp", str(extra), "vdb", "--subdriver", "qcow2", "--live")

    # died after blockdev-add, before device_add: the nodes go, the guest has no vdb
    crash_at(daemon, "attach-disk:nodes", *add)
    still_running(daemon, "hp", "A")
    assert "vdb" not in daemon.cli("domblklist", "hp").stdout
    assert "rolled back" in recovered(daemon)[-1]
    daemon.cli(*add)  # node names free again: the same attach works now
    daemon.cli("detach-disk", "hp", "vdb", "--live")
    for _ in range(100):  # the guest acknowledges the unplug
        if "vdb" not in daemon.cli("domblklist", "hp").stdout:
            break
        time.sleep(0.1)

    # died after QEMU plugged it, before the record said so: kept (the guest may use it)
    vdc = ("attach-disk", "hp", str(extra), "vdc", "--subdriver", "qcow2", "--live")
    crash_at(daemon, "attach-disk:plugged", *vdc)
    still_running(daemon, "hp", "B")
    assert "vdc" in daemon.cli("domblklist", "hp").stdout
    assert "completed" in recovered(daemon)[-1]
    console_roundtrip(daemon, "hp", "ls /sys/block | tr '\\n' ' '; echo LS-$((1+1))", "LS-2")
    seen = daemon.console_log("hp").read_text(errors="replace").split("LS-")[-2]
    assert seen.split("\n")[-1].split() == ["vda", "vdb"], seen  # the guest names it vdb
    daemon.cli("destroy", "hp")
    assert not qemu_pids(str(daemon.run_dir))


def test_crash_during_snapshot_create(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    a, b = boot(daemon, tiny, tmp_path, "sn", disks=2)

    # internal, running: QEMU finishes the snapshot job on its own; it is recorded
    crash_at(daemon, "snapshot-create:job", "snapshot-create-as", "sn", "s1")
    still_running(daemon, "sn", "C")
    assert daemon.cli("snapshot-list", "sn", "--name").stdout.split() == ["s1"]
    assert tags(a) == ["s1"] and tags(b) == ["s1"]
    assert "completed" in recovered(daemon)[-1]

    # external, running, died between blockdev-add and blockdev-snapshot of the first
    # disk: completed (both disks switched to their overlays, live and in the config)
    crash_at(daemon, "snapshot-create:overlay", "snapshot-create-as", "sn", "e1", "--disk-only")
    still_running(daemon, "sn", "D")
    got = daemon.cli("snapshot-list", "sn", "--name").stdout.split()
    assert got == ["s1", "e1"], recovered(daemon)
    blk = daemon.cli("domblklist", "sn").stdout
    overlays = [tmp_path / "sn-0.e1.qcow2", tmp_path / "sn-1.e1.qcow2"]
    assert all(str(o) in blk for o in overlays), blk
    live = daemon.cli("qemu-monitor-command", "sn", '{"execute": "query-block"}').stdout
    assert all(str(o) in live for o in overlays), live
    assert "completed" in recovered(daemon)[-1]
    daemon.cli("destroy", "sn")

    # internal, shut off, died after the first of two disks: the lone tag is removed
    crash_at(daemon, "snapshot-create:disk", "snapshot-create-as", "sn", "s2")
    assert daemon.cli("snapshot-list", "sn", "--name").stdout.split() == ["s1", "e1"]
    assert "s2" not in tags(overlays[0]) and "s2" not in tags(overlays[1])
    assert "rolled back" in recovered(daemon)[-1]
    assert daemon.cli("domstate", "sn").stdout.strip() == "shut off"
    daemon.cli("snapshot-create-as", "sn", "s2")  # and the same snapshot works now
    assert tags(overlays[0]) == ["s2"] and tags(overlays[1]) == ["s2"]
