"""`virtkit event --loop` prints a real guest's start and shutdown as they happen, and a
client that comes back with its last sequence number misses nothing."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import Daemon, tiny_yaml

pytestmark = pytest.mark.qemu


class Follower:
    """`virtkit event --loop ...` in the background; its lines as they arrive."""

    def __init__(self, daemon: Daemon, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "virtkit.cli", "event", "--loop", *args], env=daemon.env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
        )  # fmt: skip
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put((time.monotonic(), line.rstrip("\n")))

    def wait_for(self, needle: str, timeout: float = 60) -> tuple[float, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                when, line = self.lines.get(timeout=0.2)
            except queue.Empty:
                assert self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else ""
                continue
            self.seen.append(line)
            if needle in line:
                return when, line
        raise AssertionError(f"{needle!r} not printed within {timeout} s; got {self.seen}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def test_event_loop_shows_start_and_shutdown_as_they_happen(
    daemon: Daemon, tiny: object, tmp_path: Path
) -> None:
    f = tmp_path / "ev1.yaml"
    f.write_text(tiny_yaml(tiny, "ev1", extra="accel: tcg\n"))
    daemon.cli("define", str(f))
    follow = Follower(daemon, "--domain", "ev1", "--timestamp")
    other = Follower(daemon)  # all domains
    try:
        time.sleep(1.0)  # the followers are connected (they print only what comes next)
        assert follow.lines.empty(), "--loop without --after must not replay the history"
        daemon.cli("start", "ev1")
        t_seen, line = follow.wait_for("'started' for domain 'ev1'")
        assert line[:4].isdigit() and "event #" in line  # --timestamp: a date first
        other.wait_for("'started' for domain 'ev1'")
        daemon.wait_console("ev1", "tiny# ")
        t_asked = time.monotonic()
        daemon.cli("shutdown", "ev1")
        t_seen, _ = follow.wait_for("'shutdown-requested' for domain 'ev1'")
        assert t_seen - t_asked < 10, "events must arrive as they happen, not at a poll"
        t_seen, line = follow.wait_for("'stopped' for domain 'ev1'")
        assert "shutdown" in line
        seqs = [int(ln.split("event #", 1)[1].split()[0]) for ln in follow.seen if "event #" in ln]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    finally:
        follow.stop()
        other.stop()

    # Resume from the last number seen: everything after it, nothing before it.
    first = seqs[0]
    again = Follower(daemon, "--domain", "ev1", "--after", str(first))
    try:
        _, line = again.wait_for("'stopped' for domain 'ev1'", timeout=20)
        replayed = [int(ln.split("event #", 1)[1].split()[0]) for ln in again.seen]
        assert replayed == seqs[1:]
    finally:
        again.stop()
    out = daemon.cli("event", "--domain", "ev1", "--after", str(first)).stdout
    assert [ln.split("event #", 1)[1].split()[0] for ln in out.splitlines()] == [
        str(s) for s in seqs[1:]
    ]


def test_event_loop_survives_a_daemon_restart(daemon: Daemon, tmp_path: Path) -> None:
    follow = Follower(daemon)
    try:
        time.sleep(1.0)
        daemon.cli("define", "-", input="name: r1\nmemory_mib: 64\n")
        follow.wait_for("'defined' for domain 'r1'")
        daemon.stop()
        daemon.start()  # the follower reconnects with its last sequence number
        daemon.cli("undefine", "r1")
        follow.wait_for("'undefined' for domain 'r1'", timeout=30)
    finally:
        follow.stop()
