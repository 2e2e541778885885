"""Live migration between two daemons on this host (unix:// URIs, stream on 127.0.0.1):
a guest printing a counter on its serial console keeps counting on the destination, with
and without --copy-storage-all; a refused or aborted migration, and a source or
destination daemon killed mid-way, leave the guest running on the source only."""

from __future__ import annotations

import re
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


@pytest.fixture
def dest() -> Iterator[Daemon]:
    base = Path(tempfile.mkdtemp(prefix="vkd", dir="/tmp"))
    d = Daemon(base)
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
                                          tmp_path: Path) -> None:  # fmt: skip
    boot_counting(daemon, tiny, tmp_path, "mig")
    daemon.cli("migrate-setmaxdowntime", "mig", "250")
    assert daemon.cli("migrate-getmaxdowntime", "mig").stdout.strip() == "250"
    r = daemon.cli("migrate", "mig", uri(dest), "--live", "--verbose")
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
    img = qcow2(tmp_path, "cs")
    boot_counting(daemon, tiny, tmp_path, "cs", f"disks:\n  - path: {img}\n")
    console_roundtrip(daemon, "cs", "echo DISKMARK-42 | dd of=/dev/vda conv=fsync 2>/dev/null; "
                      "echo WROTE-OK", "WROTE-OK")  # fmt: skip
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
    dest.cli("destroy", "cs")
    assert "cs" in dest.cli("list", "--all", "--name").stdout  # persistent over there


def test_failed_migrations_leave_the_guest_on_the_source(
    daemon: Daemon, dest: Daemon, tiny: object, tmp_path: Path
) -> None:
    """Refused by the destination, aborted (domjobabort), the source daemon killed and
    restarted, the destination daemon killed and restarted: one guest, still running here."""
    boot_counting(daemon, tiny, tmp_path, "ab")
    # refused: the destination has another domain of that name
    other = tmp_path / "other.yaml"
    other.write_text(tiny_yaml(tiny, "ab", extra="accel: tcg\n"))
    dest.cli("define", str(other))
    r = daemon.cli("migrate", "ab", uri(dest), "--live", check=False)
    assert r.returncode == 2 and "another domain named 'ab'" in r.stderr
    assert state(daemon, "ab") == "running (booted)"
    dest.cli("undefine", "ab")
    # aborted mid-way
    p = slow_migration(daemon, dest, "ab")
    assert "ab" in dest.cli("list", "--name").stdout  # prepared over there, paused
    daemon.cli("domjobabort", "ab")
    _, err = p.communicate(timeout=30)
    assert p.returncode == 4 and "cancelled" in err, err
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


def slow_migration(daemon: Daemon, dest: Daemon, name: str) -> subprocess.Popen[str]:
    """A migration throttled to 1 MiB/s (it cannot finish during the test), under way."""
    p = subprocess.Popen(
        [sys.executable, "-m", "virtkit.cli", "-c", uri(daemon), "migrate", name, uri(dest),
         "--live", "--bandwidth", "1"], env=daemon.env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_phase(daemon, name, "Data processed")
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
