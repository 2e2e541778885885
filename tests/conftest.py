"""Shared fixtures: a real daemon in a private state directory, and the tiny guest."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest


def _answers(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


def daemon_pids(run_dir: str) -> list[int]:
    """virtkit daemons whose environment points at ``run_dir`` (auto-started ones too)."""
    want = f"VIRTKIT_RUN_DIR={run_dir}".encode()
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            if b"virtkit.daemon" not in (p / "cmdline").read_bytes():
                continue
            if want in (p / "environ").read_bytes().split(b"\0"):
                out.append(int(p.name))
        except OSError:
            continue
    return out


def qemu_pids(marker: str) -> list[int]:
    """PIDs of QEMU processes whose command line contains ``marker``."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes()
        except OSError:
            continue
        if b"qemu-system" in cmd.split(b"\0", 1)[0] and marker.encode() in cmd:
            out.append(int(p.name))
    return out


@dataclass
class Daemon:
    """A virtkitd subprocess with its own state and runtime directories."""

    base: Path
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    netns: str | None = None  # run the daemon (and CLI calls) inside this network namespace

    def __post_init__(self) -> None:
        self.env = dict(os.environ)
        self.env.update(
            VIRTKIT_STATE_DIR=str(self.state_dir),
            VIRTKIT_RUN_DIR=str(self.run_dir),
            VIRTKIT_LOG_LEVEL="DEBUG",
            VIRTKIT_UI_LISTEN="127.0.0.1:0",  # each test daemon's web UI on a port of its own
        )
        self.env.pop("VIRTKIT_DEFAULT_URI", None)

    @property
    def state_dir(self) -> Path:
        return self.base / "state"

    @property
    def run_dir(self) -> Path:
        return self.base / "run"

    @property
    def socket(self) -> Path:
        return self.run_dir / "virtkitd.sock"

    def console_log(self, name: str) -> Path:
        return self.state_dir / "log" / f"{name}.console.log"

    @property
    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns] if self.netns else []

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        err = open(self.base / "daemon.stderr", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "virtkit.daemon", "--log-stderr"],
            env=self.env, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
            start_new_session=True,
        )  # fmt: skip
        err.close()
        deadline = time.monotonic() + 30
        while not _answers(self.socket):
            if self.proc.poll() is not None:
                raise RuntimeError("daemon died: " + (self.base / "daemon.stderr").read_text())
            if time.monotonic() > deadline:
                raise RuntimeError("daemon did not come up")
            time.sleep(0.02)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def kill9_during(self, delay: float, *argv: str) -> None:
        """Run ``virtkit ARGV``, kill -9 the daemon ``delay`` s later, start it again."""
        cli = subprocess.Popen([*self.prefix, sys.executable, "-m", "virtkit.cli", *argv],
                               env=self.env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(delay)
        self.kill9()
        cli.wait(30)
        self.start()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def cli(self, *args: str, input: str | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:  # fmt: skip
        r = subprocess.run(
            [*self.prefix, sys.executable, "-m", "virtkit.cli", *args], env=self.env, input=input,
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if check and r.returncode != 0:
            raise AssertionError(
                f"virtkit {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
            )
        return r

    def wait_console(self, name: str, marker: str, timeout: float = 90, start: int = 0) -> str:
        """Wait until ``marker`` appears in the domain's console log after byte ``start``."""
        path = self.console_log(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                text = path.read_bytes()[start:].decode(errors="replace")
            except OSError:
                text = ""
            if marker in text:
                return text
            time.sleep(0.1)
        raise AssertionError(
            f"{marker!r} not seen on {name}'s console in {timeout} s:\n{text[-3000:]}"
        )

    def console_size(self, name: str) -> int:
        try:
            return self.console_log(name).stat().st_size
        except OSError:
            return 0

    def cleanup(self) -> None:
        self.stop()
        # a CLI call that found no daemon (the test had killed it) starts one itself
        for pid in daemon_pids(str(self.run_dir)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in qemu_pids(str(self.run_dir)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    # Short base path: Unix socket paths must stay under 108 bytes.
    base = Path(tempfile.mkdtemp(prefix="vk", dir="/tmp"))
    d = Daemon(base)
    d.start()
    try:
        yield d
    finally:
        d.cleanup()
        subprocess.run(["rm", "-rf", str(base)], check=False)


@pytest.fixture(scope="session")
def tiny() -> object:
    """The tiny guest (kernel + initramfs built from Debian packages, cached)."""
    from virtkit.guests.tiny import ensure_tiny

    return ensure_tiny()


def tiny_yaml(tiny: object, name: str, *, cmdline: str = "console=ttyS0", extra: str = "") -> str:
    return (
        f"name: {name}\nmemory_mib: 256\n"
        f"boot:\n  kernel: {tiny.kernel}\n  initrd: {tiny.initrd}\n"  # type: ignore[attr-defined]
        f'  cmdline: "{cmdline}"\n{extra}'
    )
