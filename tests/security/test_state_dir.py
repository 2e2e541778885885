"""The state directory is the daemon's alone: owner-only modes from creation and after an
upgrade, the VNC password sealed (a copy of virtkit.db does not reveal it), and one
daemon per state directory even when run directories differ (issue 12)."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon, _answers
from virtkit.daemon.store import SCHEMA, Store

SECRET = "Vq9!kx2w"
VNC_DOMAIN = f"name: v\nmemory_mib: 64\ngraphics:\n  type: vnc\n  password: '{SECRET}'\n"


@pytest.fixture
def base() -> Iterator[Path]:
    b = Path(tempfile.mkdtemp(prefix="vk", dir="/tmp"))
    yield b
    subprocess.run(["rm", "-rf", str(b)], check=False)


def start_file_logging(d: Daemon) -> None:
    """Like Daemon.start, but the daemon logs to STATE/log/virtkitd.log (its file handler)."""
    d.run_dir.mkdir(parents=True, exist_ok=True)
    with open(d.base / "daemon.stderr", "ab") as err:
        d.proc = subprocess.Popen([sys.executable, "-m", "virtkit.daemon"], env=d.env,
                                  stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                  start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 30
    while not _answers(d.socket):
        assert d.proc.poll() is None, (d.base / "daemon.stderr").read_text()
        assert time.monotonic() < deadline, "daemon did not come up"
        time.sleep(0.02)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def state_files(d: Daemon) -> list[Path]:
    return [p for p in d.state_dir.rglob("*") if p.is_file()]


def test_new_state_dir_is_owner_only_and_db_has_no_password(base: Path) -> None:
    d = Daemon(base)
    try:
        start_file_logging(d)
        f = base / "v.yaml"
        f.write_text(VNC_DOMAIN)
        d.cli("define", str(f))
        d.cli("list", "--all")
        for p in (d.state_dir, d.state_dir / "log", d.state_dir / "cache"):
            assert mode(p) == 0o700, p
        names = {p.name for p in state_files(d)}
        assert {"virtkit.db", "virtkit.db-wal", "virtkit.db-shm", "virtkitd.log"} <= names
        assert "secrets.key" in names and "virtkitd.lock" in names
        for p in state_files(d):
            assert mode(p) & 0o077 == 0, (p, oct(mode(p)))
        for name in ("virtkit.db", "virtkit.db-wal"):  # a copy of them alone tells nothing
            assert SECRET.encode() not in (d.state_dir / name).read_bytes(), name
        d.stop()
        d.start()  # the next daemon opens it again: the password is still there
        store = Store(d.state_dir / "virtkit.db")
        [dom] = store.load_domains()
        assert dom.config["graphics"]["password"] == SECRET
        store.close()
    finally:
        d.cleanup()


def test_upgrade_fixes_modes_and_seals_plaintext_password(base: Path) -> None:
    """An older virtkit's state directory: 0755 dirs, 0644 files, a plaintext password."""
    d = Daemon(base)
    log_dir = d.state_dir / "log"
    log_dir.mkdir(parents=True)
    d.state_dir.chmod(0o755)
    log_dir.chmod(0o755)
    db = sqlite3.connect(d.state_dir / "virtkit.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(SCHEMA)
    config = {"name": "v", "memory_mib": 64, "graphics": {"type": "vnc", "password": SECRET}}
    uuid = "0b8f6e0e-7f43-4b8c-9a57-1d1f2a3b4c5d"
    db.execute("INSERT INTO domains (name, uuid, config, created, updated) VALUES (?,?,?,?,?)",
               ("v", uuid, json.dumps(config), 1.0, 1.0))  # fmt: skip
    old_log = log_dir / "v.log"
    old_log.write_text("old QEMU log\n")
    for p in state_files(d):
        p.chmod(0o644)
    db.close()
    try:
        start_file_logging(d)
        for p in (d.state_dir, log_dir):
            assert mode(p) == 0o700, p
        for p in state_files(d):
            assert mode(p) & 0o077 == 0, (p, oct(mode(p)))
        log = (log_dir / "virtkitd.log").read_text()
        assert "state directory permissions" in log and f"{old_log}: mode 0644 -> 0600" in log
        assert "sealed the plaintext VNC passwords" in log
        d.cli("dominfo", "v")
        for p in state_files(d):
            assert SECRET.encode() not in p.read_bytes(), p
        store = Store(d.state_dir / "virtkit.db")
        assert store.load_domains()[0].config["graphics"]["password"] == SECRET
        store.close()
    finally:
        d.cleanup()


def test_second_daemon_on_the_same_state_dir_is_refused(base: Path) -> None:
    first = Daemon(base / "a")
    second = Daemon(base / "b")  # another run directory, the same state directory
    second.env["VIRTKIT_STATE_DIR"] = str(first.state_dir)
    try:
        first.start()
        assert first.proc is not None
        with pytest.raises(RuntimeError) as err:
            second.start()
        assert second.proc is not None and second.proc.returncode == 6
        msg = str(err.value)
        assert f"another virtkitd (pid {first.proc.pid})" in msg, msg
        assert str(first.state_dir) in msg and "VIRTKIT_STATE_DIR" in msg, msg
        assert not second.socket.exists()
        assert _answers(first.socket)
        first.cli("list", "--all")
        first.stop()
        second.start()  # once the first is gone, the state directory is free
        second.cli("list", "--all")
    finally:
        second.proc = second.proc if second.proc and second.proc.poll() is None else None
        second.cleanup()
        first.cleanup()
