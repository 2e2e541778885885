"""Live migration between two daemons on this host (unix:// URIs, stream on 127.0.0.1):
a guest printing a counter on its serial console keeps counting on the destination, with
and without --copy-storage-all; a refused or aborted migration, and a source or
destination daemon killed mid-way, leave the guest running on the source only."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon, qemu_pids, tiny_yaml
from tests.integration.test_survival import console_roundtrip

pytestmark = pytest.mark.qemu

COUNTER = "i=0; while true; do i=$((i+1)); echo CNT-$i-; sleep 1; done &"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def pki() -> Iterator[Path]:
    """A CA, the destination's server certificate and a client certificate for the source."""
    base = Path(tempfile.mkdtemp(prefix="vkpki"))
    for argv in (("init",), ("server", "--host", "127.0.0.1"),
                 ("client", "--name", "source", "--out", str(base / "client"))):  # fmt: skip
        cmd = [sys.executable, "-m", "virtkit.cli", "pki", argv[0], "--dir", str(base / "ca")]
        r = subprocess.run([*cmd, *argv[1:]], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    yield base
    subprocess.run(["rm", "-rf", str(base)], check=False)


@pytest.fixture
def dest(pki: Path) -> Iterator[Daemon]:
    """The destination daemon: its Unix socket, and a TLS listener on 127.0.0.1."""
    base = Path(tempfile.mkdtemp(prefix="vkd", dir="/tmp"))
    d = Daemon(base)
    d.env.update(VIRTKIT_LISTEN_TLS=f"127.0.0.1:{free_port()}", VIRTKIT_TLS_DIR=str(pki / "ca"))
    d.start()
    try:
        yield d
    finally:
        d.cleanup()
        subprocess.run(["rm", "-rf", str(base)], check=False)


def uri(d: Daemon) -> str:
    return f"unix://{d.socket}"


def boot_counting(daemon: Daemon, tiny: object, tmp_path: Path, name: str,
                  extra: str = "") -> None:  # fmt: skip
    f = tmp_path / f"{name}.yaml"
    f.write_text(tiny_yaml(tiny, name, extra=f"accel: tcg\n{extra}"))
    daemon.cli("define", str(f))
    daemon.cli("start", name)
    daemon.wait_console(name, "tiny# ")
    console_roundtrip(daemon, name, COUNTER, "CNT-2-")


def counters(d: Daemon, name: str) -> list[int]:
    text = d.console_log(name).read_text(errors="replace")
    return [int(n) for n in re.findall(r"CNT-(\d+)-", text)]


def assert_counter_continued(src: Daemon, dst: Daemon, name: str) -> None:
    before = max(counters(src, name))
    dst.wait_console(name, f"CNT-{before + 3}-", timeout=30)
    after = counters(dst, name)
    # the guest kept its memory: the first number printed over there follows ours
    assert before - 1 <= min(after) <= before + 2, (before, after[:5])


def state(d: Daemon, name: str) -> str:
    return d.cli("domstate", "--reason", name).stdout.strip()


def test_live_migration_counter_continues(daemon: Daemon, dest: Daemon, tiny: object,
                                          tmp_path: Path, pki: Path) -> None:  # fmt: skip
    boot_counting(daemon, tiny, tmp_path, "mig")
    daemon.cli("migrate-setmaxdowntime", "mig", "250")
    assert daemon.cli("migrate-getmaxdowntime", "mig").stdout.strip() == "250"
    # there over the destination's TLS listener (client certificate), back over its socket
    tls = f"virtkit+tls://{dest.env['VIRTKIT_LISTEN_TLS']}/system?pki={pki / 'client'}"
    r = daemon.cli("migrate", "mig", tls, "--live", "--verbose")
    assert "Domain 'mig' migrated to" in r.stdout and "Migration: [100 %]" in r.stderr
    assert state(daemon, "mig") == "shut off (migrated)"  # persistent here: still defined
    assert state(dest, "mig") == "running (migrated)"
    assert_counter_continued(daemon, dest, "mig")
    info = daemon.cli("domjobinfo", "mig", "--completed").stdout
    assert "Job type:         Completed" in info and "Total downtime:" in info
    assert daemon.cli("domjobinfo", "mig").stdout == "Job type:         None\n"
    # and back: the source's inactive definition (same uuid) receives it; the destination
    # had it transiently (no --persistent), so it is gone from there afterwards
    dest.cli("migrate", "mig", uri(daemon), "--live")
    assert state(daemon, "mig") == "running (migrated)"
    assert "mig" not in dest.cli("list", "--all", "--name").stdout
    n = max(counters(daemon, "mig") + counters(dest, "mig"))
    daemon.wait_console("mig", f"CNT-{n + 2}-", timeout=20)
    daemon.cli("destroy", "mig")


def qcow2(tmp_path: Path, name: str) -> Path:
    img = tmp_path / f"{name}.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "32M"], check=True)
    return img


def test_copy_storage_all_persistent_undefinesource(
    daemon: Daemon, dest: Daemon, tiny: object, tmp_path: Path
) -> None:
    """Local disks copied (NBD + mirror), including a hot-plugged one; the destination
    reproduces the hot-plugged disk, NIC, vCPU and DIMM (same slots, queues, ids)."""
    img = qcow2(tmp_path, "cs")
    extra = f"vcpus: 1\nmax_vcpus: 2\nmax_memory_mib: 512\ndisks:\n  - path: {img}\n"
    boot_counting(daemon, tiny, tmp_path, "cs", extra)
    console_roundtrip(daemon, "cs", "echo DISKMARK-42 | dd of=/dev/vda conv=fsync 2>/dev/null; "
                      "echo WROTE-OK", "WROTE-OK")  # fmt: skip
    hot = qcow2(tmp_path, "hot")
    daemon.cli("attach-disk", "cs", str(hot), "vdb", "--subdriver", "qcow2", "--live")
    daemon.cli("attach-interface", "cs", "user", "--live")
    daemon.cli("setvcpus", "cs", "2", "--live")
    dimm = tmp_path / "dimm.yaml"
    dimm.write_text("memory:\n  size_mib: 128\n")
    daemon.cli("attach-device", "cs", str(dimm), "--live")
    r = daemon.cli("migrate", "cs", uri(dest), "--live", "--copy-storage-all", "--persistent",
                   "--undefinesource", "--auto-converge")  # fmt: skip
    assert "migrated" in r.stdout
    assert "cs" not in daemon.cli("list", "--all", "--name").stdout  # --undefinesource
    assert state(dest, "cs") == "running (migrated)"
    assert_counter_continued(daemon, dest, "cs")
    # the copy: another file, with what the guest wrote before the move
    copied = dest.state_dir / "images" / "cs-vda.qcow2"
    assert str(copied) in dest.cli("dumpconfig", "cs").stdout  # --persistent, new path
    console_roundtrip(dest, "cs", "echo READ-$(head -c 11 /dev/vda)-END", "READ-DISKMARK-42-END")
    assert (dest.state_dir / "images" / "cs-vdb.qcow2").exists()  # the hot-plugged one too
    console_roundtrip(dest, "cs", "echo DEV-$(nproc)-$(ls /sys/block | grep -c ^vd)-"
                      "$(ls /sys/class/net | grep -c ^eth)-END", "DEV-2-2-1-END")  # fmt: skip
    dest.cli("destroy", "cs")
    assert "cs" in dest.cli("list", "--all", "--name").stdout  # persistent over there


def test_failed_migrations_leave_the_guest_on_the_source(
    daemon: Daemon, dest: Daemon, tiny: object, tmp_path: Path
) -> None:
    """Refused by the destination, aborted (domjobabort), the source daemon killed and
    restarted, the destination daemon killed and restarted: one guest, still running here."""
    img = qcow2(tmp_path, "ab")
    boot_counting(daemon, tiny, tmp_path, "ab", f"disks:\n  - path: {img}\n")
    # refused: the destination has another domain of that name
    other = tmp_path / "other.yaml"
    other.write_text(tiny_yaml(tiny, "ab", extra="accel: tcg\n"))
    dest.cli("define", str(other))
    r = daemon.cli("migrate", "ab", uri(dest), "--live", check=False)
    assert r.returncode == 2 and "another domain named 'ab'" in r.stderr
    assert state(daemon, "ab") == "running (booted)"
    dest.cli("undefine", "ab")
    # aborted while RAM moves (the disk copy is in sync by then)
    p = slow_migration(daemon, dest, "ab", "--copy-storage-all", phase="Memory total:     2")
    assert "ab" in dest.cli("list", "--name").stdout  # prepared over there, paused
    assert (dest.state_dir / "images" / "ab-vda.qcow2").exists()
    daemon.cli("domjobabort", "ab")
    _, err = p.communicate(timeout=30)
    assert p.returncode == 4 and "cancelled" in err, err
    assert not (dest.state_dir / "images" / "ab-vda.qcow2").exists()  # its copy is gone
    assert state(daemon, "ab").startswith("running")
    assert "ab" not in dest.cli("list", "--all", "--name").stdout
    assert not qemu_pids(str(dest.run_dir))
    info = daemon.cli("domjobinfo", "ab", "--completed").stdout
    assert "Job type:         Cancelled" in info
    still_counting(daemon, "ab")
    source_daemon_killed(daemon, dest, "ab")
    destination_daemon_killed(daemon, dest, "ab")


def still_counting(d: Daemon, name: str) -> None:
    n = max(counters(d, name))
    d.wait_console(name, f"CNT-{n + 2}-", timeout=20)


def slow_migration(daemon: Daemon, dest: Daemon, name: str, *flags: str,
                   phase: str = "Data processed") -> subprocess.Popen[str]:  # fmt: skip
    """A migration throttled to 1 MiB/s (it cannot finish during the test), under way."""
    p = subprocess.Popen(
        [sys.executable, "-m", "virtkit.cli", "-c", uri(daemon), "migrate", name, uri(dest),
         "--live", "--bandwidth", "1", *flags], env=daemon.env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_phase(daemon, name, phase)
    return p


def source_daemon_killed(daemon: Daemon, dest: Daemon, name: str) -> None:
    p = slow_migration(daemon, dest, name)
    daemon.kill9()
    _, err = p.communicate(timeout=30)
    assert p.returncode == 6, err  # the daemon went away under the CLI
    daemon.start()  # finds the migration in the runtime record: cancel, abort there, resume
    deadline = time.monotonic() + 30
    while name in dest.cli("list", "--all", "--name").stdout and time.monotonic() < deadline:
        time.sleep(0.2)
    assert name not in dest.cli("list", "--all", "--name").stdout
    assert state(daemon, name).startswith("running")
    still_counting(daemon, name)


def destination_daemon_killed(daemon: Daemon, dest: Daemon, name: str) -> None:
    p = slow_migration(daemon, dest, name)
    dest.kill9()
    dest.start()  # an unfinished incoming migration: its QEMU is killed, the source resumes
    _, err = p.communicate(timeout=60)
    assert p.returncode != 0 and "keeps running here" in err, err
    assert state(daemon, name).startswith("running")
    assert name not in dest.cli("list", "--all", "--name").stdout
    assert not qemu_pids(str(dest.run_dir))
    still_counting(daemon, name)


def wait_phase(d: Daemon, name: str, marker: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = d.cli("domjobinfo", name).stdout
        if marker in out:
            return out
        time.sleep(0.2)
    raise AssertionError(f"{marker!r} not in domjobinfo: {out}")
